"""Fixtures of the data-quality tests: the HIS pull environment of tests/dags (sandbox hospitals, warehouse), and a
real Airflow api-server (SimpleAuthManager, one known user) on the tests' metadata DB with the certpipe plugin."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devtools.embedded_pg import free_port
from tests.conftest import ROOT
from tests.dags.conftest import his_env  # noqa: F401 - re-exported fixture

USER, ROLE = "engineer", "viewer"  # the data engineer on duty: read-only in Airflow


class AirflowServer:
    def __init__(self, url: str, password: str, log: Path):
        self.url, self.user, self.password, self.log = url, USER, password, log


@pytest.fixture
def airflow_ui(his_env, warehouse_dsn, tmp_path, pg_logins):  # noqa: F811 - the fixture imported above
    """`airflow api-server` in its own process on a free port, on the metadata DB the test's dag.test() runs
    wrote to; the warehouse connection `warehouse_quality` in that metadata DB (as in production: not in the
    environment). Stopped after the test."""
    password = secrets.token_urlsafe(12)
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({USER: password}))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env.update(
        {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:{ROLE}",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
        }
    )

    from certpipe.warehouse.logins import QUALITY

    # the page's own read-only login (certpipe_quality_login), with its password: the server checks it
    from devtools.connections import pg_connection

    conn = json.dumps(pg_connection(pg_logins[QUALITY].dsn(warehouse_dsn), password=pg_logins[QUALITY].password))
    subprocess.run(
        [sys.executable, "-m", "airflow", "connections", "delete", "warehouse_quality"], env=env, capture_output=True
    )
    subprocess.run(
        [sys.executable, "-m", "airflow", "connections", "add", "warehouse_quality", "--conn-json", conn],
        env=env,
        check=True,
        capture_output=True,
    )
    log = tmp_path / "api-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--port", str(port), "--host", "127.0.0.1"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"api-server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield AirflowServer(url, password, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
