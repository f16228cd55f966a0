"""A DAG end to end on CeleryExecutor: a real Redis broker, a real `airflow celery worker` process, the execution
API server and the Celery result backend on the test PostgreSQL, all on loopback.

Processes: `airflow db migrate` (a fresh metadata database), `airflow api-server --apps execution`,
`airflow celery worker` (own queue, so a shared CI Redis is never disturbed), and the trigger:
`dag.test(use_executor=True)`, which hands every task to the CeleryExecutor.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = Path(__file__).resolve().parent / "dags"
TIMEOUT = 100  # seconds for the DAG run, once the worker is up


def _wait(pred, timeout: float, what: str, procs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, p in procs:
            if p.poll() is not None:
                raise AssertionError(f"{name} exited with {p.returncode} while waiting for {what}")
        if pred():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _tail(path: Path, n: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else ""


@pytest.fixture(scope="module")
def celery_stack(pg_server, redis_url, tmp_path_factory):
    from devtools.embedded_pg import free_port

    home = tmp_path_factory.mktemp("celery-airflow")
    db = f"certpipe_af_{os.getpid()}"
    pg_server.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    pg_server.execute(f'CREATE DATABASE "{db}"')
    sa_url = pg_server.url_for(db).replace("postgresql://", "postgresql+psycopg://", 1)
    api_port = free_port()
    queue = f"certpipe-test-{uuid.uuid4().hex[:8]}"
    # A URL without a database number gets db 11 (away from the usual 0); with one, it is used as given.
    broker = redis_url + "/11" if redis_url.count("/") <= 2 else redis_url
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CERTPIPE_TEST"))},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sa_url,
        "AIRFLOW__CELERY__BROKER_URL": broker,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + sa_url,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "CERTPIPE_TEST_CELERY_QUEUE": queue,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex * 2,
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Asia/Ho_Chi_Minh",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "GX_ANALYTICS_ENABLED": "false",
    }
    af = [sys.executable, "-m", "airflow"]
    r = subprocess.run([*af, "db", "migrate"], env=env, capture_output=True, text=True, timeout=150)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    logs = {n: home / f"{n}.log" for n in ("api", "worker")}
    procs = []
    try:
        procs.append(
            (
                "api-server",
                subprocess.Popen(
                    [*af, "api-server", "--apps", "execution", "--host", "127.0.0.1", "--port", str(api_port)],
                    env=env,
                    stdout=logs["api"].open("w"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                ),
            )
        )
        procs.append(
            (
                "celery worker",
                subprocess.Popen(
                    [
                        *af,
                        "celery",
                        "worker",
                        "--queues",
                        queue,
                        "--concurrency",
                        "2",
                        "--without-mingle",
                        "--without-gossip",
                        "--skip-serve-logs",
                    ],
                    env=env,
                    stdout=logs["worker"].open("w"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                ),
            )
        )

        def api_up():
            try:
                return httpx.get(f"http://127.0.0.1:{api_port}/execution/health", timeout=2).status_code < 500
            except httpx.HTTPError:
                return False

        try:
            _wait(api_up, 90, "the execution API server", procs)
            _wait(lambda: "ready." in logs["worker"].read_text(errors="replace"), 90, "the Celery worker", procs)
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- api\n{_tail(logs['api'])}\n--- worker\n{_tail(logs['worker'])}") from e
        yield {"env": env, "db_url": pg_server.url_for(db), "queue": queue, "logs": logs, "procs": procs}
    finally:
        for _, p in procs:  # each in its own session: signal the group (uvicorn / celery pool children too)
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)  # the worker does a warm shutdown on SIGTERM
        for _, p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        pg_server.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        try:  # this run's queue and its kombu bindings; nothing else in the (possibly shared) Redis
            import redis

            client = redis.Redis.from_url(broker)
            client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
            client.close()
        except Exception:
            pass


def test_dag_runs_through_the_celery_worker(celery_stack):
    import psycopg

    s = celery_stack
    r = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("run_dag.py")), "deploy_celery_probe"],
        env=s["env"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    result = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    diag = f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}\n--- worker\n{_tail(s['logs']['worker'])}"
    assert r.returncode == 0 and result, diag
    run = json.loads(result[-1][len("RESULT ") :])
    assert run["state"] == "success", diag

    with psycopg.connect(s["db_url"]) as c:
        tis = c.execute(
            "SELECT task_id, state, queue, hostname FROM task_instance WHERE dag_id = %s AND run_id = %s",
            ("deploy_celery_probe", run["run_id"]),
        ).fetchall()
        # The Celery result backend (db+postgresql) holds one result per task the worker executed; the last one
        # is stored just after the task reported success to the API server, so allow it a moment.
        deadline = time.monotonic() + 20
        while True:
            done = c.execute("SELECT status, count(*) FROM celery_taskmeta GROUP BY status").fetchall()
            c.commit()
            if dict(done).get("SUCCESS") == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
    assert sorted(t[0] for t in tis) == ["check", "schema_count", "where"]
    assert all(state == "success" and queue == s["queue"] and hostname for _, state, queue, hostname in tis), tis
    assert dict(done).get("SUCCESS") == 3, done
    worker_log = s["logs"]["worker"].read_text(errors="replace")
    assert "execute_workload" in worker_log or "succeeded" in worker_log, _tail(s["logs"]["worker"])
