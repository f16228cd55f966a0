"""Bring the whole system up on an embedded default, run the HIS DAG, keep it running until Ctrl-C.

embedded PostgreSQL (Airflow metadata + warehouse) → one login per service (certpipe.warehouse.logins) →
warehouse migrations (as the owner) → sandbox source systems → Airflow (api-server, scheduler, dag-processor,
triggerer; LocalExecutor) → connections and variables → trigger `his_pull` and wait for it → print the UI address
and where the login is. `stop` ends everything it started.

Security (docs/security.md): every port on 127.0.0.1; secrets in 0600 files under .state/secrets (never printed);
logs 0600; bucket files 0640 (umask 027); each process gets only the secrets it needs (Airflow: its own; the
registrar API: its DB login and signing key; the sandbox: none); Airflow's log servers are not started (tasks log
to local files the api-server reads).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("CERTPIPE_STATE_DIR", ROOT / ".state"))
PG_PORT = int(os.environ.get("CERTPIPE_PG_PORT", "54329"))
API_PORT = int(os.environ.get("CERTPIPE_API_PORT", "8080"))
SANDBOX_PORT = int(os.environ.get("CERTPIPE_SANDBOX_PORT", "8765"))
REGISTRAR_PORT = int(os.environ.get("CERTPIPE_REGISTRAR_PORT", "8090"))
HOSPITALS = [
    ("01020", "Bệnh viện thí điểm Hà Nội"),
    ("79034", "Bệnh viện thí điểm TP. Hồ Chí Minh"),
    ("96025", "Bệnh viện thí điểm Cà Mau"),
]
PIDS = STATE / "pids.json"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


_T0 = time.monotonic()


def say(msg: str) -> None:
    print(f"[certpipe {time.monotonic() - _T0:5.0f}s] {msg}", flush=True)


SECRETS = STATE / "secrets"
# what every process needs to run Python from this checkout; nothing secret
BASE_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "TZ",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "TMPDIR",
    "XDG_RUNTIME_DIR",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)


def _secret(name: str) -> str:
    from certpipe.warehouse.logins import write_secret

    p = STATE / name
    if not p.exists():
        write_secret(p, secrets.token_urlsafe(32))
    p.chmod(0o600)
    return p.read_text().strip()


def base_env(**extra: str) -> dict:
    """A process environment with no secret but `extra`."""
    return {**{k: os.environ[k] for k in BASE_ENV if k in os.environ}, **extra}


def admin_password_file() -> Path:
    """The Airflow UI's admin password: generated here into a 0600 file that Airflow reads (so Airflow never
    generates one and never prints it to its log)."""
    from certpipe.warehouse.logins import write_secret

    p = SECRETS / "airflow_passwords.json"
    if not p.exists():
        write_secret(p, json.dumps({"admin": secrets.token_urlsafe(18)}) + "\n")
    p.chmod(0o600)
    return p


def airflow_env(pg_url_airflow: str) -> dict:
    home = STATE / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    # the operator's own Airflow settings pass through; ours (below) win for what security depends on
    env = base_env(**{k: v for k, v in os.environ.items() if k.startswith("AIRFLOW__")})
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Asia/Ho_Chi_Minh",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{API_PORT}/execution/",
            "AIRFLOW__CORE__FERNET_KEY": _fernet(),
            "AIRFLOW__API_AUTH__JWT_SECRET": _secret("jwt_secret"),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{API_PORT}",
            "AIRFLOW__API__PORT": str(API_PORT),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(admin_password_file()),
            "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS": "0o600",
            "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS": "0o700",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg_url_airflow.replace("postgresql://", "postgresql+psycopg://"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
            "GX_ANALYTICS_ENABLED": "false",
        }
    )
    return env


def _fernet() -> str:
    p = STATE / "fernet_key"
    if not p.exists():
        from cryptography.fernet import Fernet

        from certpipe.warehouse.logins import write_secret

        write_secret(p, Fernet.generate_key().decode())
    p.chmod(0o600)
    return p.read_text().strip()


def _start(name: str, cmd: list[str], env: dict) -> subprocess.Popen:
    logs = STATE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    logs.chmod(0o700)
    path = logs / f"{name}.log"
    out = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
    path.chmod(0o600)  # also a log created before
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    pids = json.loads(PIDS.read_text()) if PIDS.exists() else {}
    pids[name] = proc.pid
    PIDS.write_text(json.dumps(pids))
    return proc


def _wait_http(url: str, timeout: float, what: str, procs: dict | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        for name, p in (procs or {}).items():
            if p.poll() is not None:
                raise SystemExit(f"{name} exited early; see {STATE / 'logs' / (name + '.log')}")
        time.sleep(1)
    raise SystemExit(f"{what} did not come up within {timeout:.0f} s")


def seed_airflow(env: dict, warehouse_url: str, sandbox_url: str, quality_url: str | None = None) -> None:
    """Connections (warehouse as the ingestion login, Data quality page as its read-only login, one per hospital)
    and the hospitals Variable, stored in the metadata DB (passwords encrypted with the Fernet key)."""

    from certpipe.warehouse.logins import write_secret
    from devtools.connections import pg_connection

    conns = {
        "warehouse_db": pg_connection(warehouse_url, description="Certificate warehouse (embedded), ingestion login")
    }
    if quality_url:
        conns["warehouse_quality"] = pg_connection(
            quality_url, description="Certificate warehouse, Data quality page (read-only login)"
        )
    for code, name in HOSPITALS:
        conns[f"his_{code}"] = {
            "conn_type": "http",
            "host": f"{sandbox_url}/his/{code}",
            "login": code,
            "password": f"sandbox-{code}",
            "description": f"HIS feed: {name} (sandbox)",
        }
    conns["bhxh_default"] = {
        "conn_type": "http",
        "host": f"{sandbox_url}/bhxh",
        "login": "bhxh-sandbox",
        "password": "sandbox-bhxh",
        "description": "BHXH certificate database (sandbox)",
    }
    conns["secserver_default"] = {
        "conn_type": "http",
        "host": f"{sandbox_url}/secserver",
        "login": "H46",
        "password": "sandbox-session",
        "description": "Our security server, national portal directory (sandbox)",
    }
    variables = {
        "his_hospitals": json.dumps([{"facility": c, "name": n} for c, n in HOSPITALS], ensure_ascii=False),
        "bhxh_provinces": json.dumps(sorted({c[:2] for c, _ in HOSPITALS})),
    }
    variables["certpipe_inbox_url"] = (STATE / "bucket").resolve().as_uri()  # Excel inbox (solution 3)
    write_secret(STATE / "connections.json", json.dumps(conns, ensure_ascii=False))
    (STATE / "variables.json").write_text(json.dumps(variables, ensure_ascii=False))
    for args in (
        ["connections", "import", "--overwrite", str(STATE / "connections.json")],
        ["variables", "import", "-a", "overwrite", str(STATE / "variables.json")],
    ):
        subprocess.run([sys.executable, "-m", "airflow", *args], env=env, check=True, capture_output=True)


def _password() -> str:
    return json.loads(admin_password_file().read_text())["admin"]


def run_his_pull(api: str, password: str, timeout: float = 600) -> str:
    token = httpx.post(f"{api}/auth/token", json={"username": "admin", "password": password}, timeout=30).json()[
        "access_token"
    ]
    h = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 180
    while httpx.get(f"{api}/api/v2/dags/his_pull", headers=h, timeout=10).status_code != 200:
        if time.monotonic() > deadline:
            raise SystemExit("his_pull was not parsed within 180 s; see .state/logs/dag-processor.log")
        time.sleep(2)
    runs_url = f"{api}/api/v2/dags/his_pull/dagRuns"
    known = {r["dag_run_id"] for r in httpx.get(runs_url, headers=h, timeout=10).json()["dag_runs"]}
    httpx.patch(f"{api}/api/v2/dags/his_pull", headers=h, json={"is_paused": False}, timeout=10).raise_for_status()
    # Unpausing makes the scheduler run the latest 15-minute slot; trigger a run only if it does not.
    deadline = time.monotonic() + timeout
    run_id, triggered = None, False
    while time.monotonic() < deadline:
        new = [r for r in httpx.get(runs_url, headers=h, timeout=10).json()["dag_runs"] if r["dag_run_id"] not in known]
        if new:
            run = min(new, key=lambda r: r["queued_at"] or "")
            if run_id != run["dag_run_id"]:
                run_id = run["dag_run_id"]
                say(f"his_pull run {run_id} started; waiting for it to finish")
            if run["state"] in ("success", "failed"):
                return run["state"]
        elif not triggered and time.monotonic() > deadline - timeout + 5:
            httpx.post(runs_url, headers=h, timeout=10, json={"logical_date": None}).raise_for_status()
            triggered = True
        time.sleep(2)
    return "timeout"


def prepare_inbox() -> Path:
    """Excel inbox (solution 3): the watched folder, the template where hospitals get it, one inbox per hospital."""
    from airflow.sdk import ObjectStoragePath

    from certpipe.sources.excel import inbox as excel

    bucket = STATE / "bucket"
    bucket.mkdir(parents=True, exist_ok=True)
    excel.prepare(ObjectStoragePath(bucket.resolve().as_uri() + "/"), [c for c, _ in HOSPITALS])
    return bucket


def unpause(api: str, password: str, dag_id: str, timeout: float = 120) -> None:
    token = httpx.post(f"{api}/auth/token", json={"username": "admin", "password": password}, timeout=30).json()[
        "access_token"
    ]
    h = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + timeout
    while httpx.get(f"{api}/api/v2/dags/{dag_id}", headers=h, timeout=10).status_code != 200:
        if time.monotonic() > deadline:
            say(f"{dag_id} was not parsed within {timeout:.0f} s; unpause it in the UI")
            return
        time.sleep(2)
    httpx.patch(f"{api}/api/v2/dags/{dag_id}", headers=h, json={"is_paused": False}, timeout=10).raise_for_status()
    say(f"{dag_id} unpaused (runs every 3 minutes)")


def print_summary(warehouse_url: str, since: float) -> None:
    import psycopg

    with psycopg.connect(warehouse_url) as c:
        rows = c.execute(
            "SELECT source_ref, kind, sum(received), sum(stored), sum(updated), sum(unchanged), "
            "sum(refused) FROM wh.ingest_batch WHERE source = 'his' AND created_at >= to_timestamp(%s) "
            "GROUP BY 1, 2 ORDER BY 1, 2",
            (since,),
        ).fetchall()
    say("hospital kind  received stored updated unchanged refused")
    for r in rows:
        say(f"{r[0]:8} {r[1]:4} {r[2]:9} {r[3]:6} {r[4]:7} {r[5]:9} {r[6]:7}")


def web_logins(warehouse_url: str) -> tuple[str, str, str]:
    """A sample station credential (the Hà Nội pilot hospital, kept in .state/station_credential while it is valid)
    and registrar / supervisor tokens for the sandbox data (Hà Nội, 12 h: the longest a token may live),
    each also in a 0600 file under .state."""
    import psycopg
    from psycopg.rows import dict_row

    from registrar.auth import issue_token
    from registrar.web import stations
    from registrar.web.console import issue_supervisor_token

    path = STATE / "station_credential"
    credential = path.read_text().strip() if path.exists() else ""
    with psycopg.connect(warehouse_url, row_factory=dict_row) as c:
        valid = stations.authenticate(c, credential) is not None
    if not valid:
        credential = stations.add(warehouse_url, HOSPITALS[0][0], HOSPITALS[0][1])
    secret = _secret("registrar_jwt_secret")
    office = "UBND phường Ba Đình (sandbox)"
    token = issue_token("hn.hotich1", office, "01", secret=secret, ttl=dt.timedelta(hours=12))
    supervisor = issue_supervisor_token("hn.lanhdao", office, "01", secret=secret, hours=12)
    for name, value in (
        ("station_credential", credential),
        ("registrar_token", token),
        ("supervisor_token", supervisor),
    ):
        (STATE / name).write_text(value + "\n")
        (STATE / name).chmod(0o600)
    return credential, token, supervisor


def up(wait: bool = True) -> int:
    from certpipe import warehouse
    from certpipe.warehouse import logins as pglogins
    from devtools.embedded_pg import EmbeddedPostgres

    t0, started = time.monotonic(), time.time()
    os.umask(0o027)  # files we and our children create: group-readable at most (bucket 0640), never world
    STATE.mkdir(parents=True, exist_ok=True)
    STATE.chmod(0o750)
    SECRETS.mkdir(parents=True, exist_ok=True)
    SECRETS.chmod(0o700)
    if PIDS.exists():
        stop(quiet=True)
    pg = EmbeddedPostgres(STATE / "pg", PG_PORT).start()
    say(f"PostgreSQL 127.0.0.1:{PG_PORT} (embedded, durable: fsync on, scram-sha-256, data in {STATE / 'pg'})")
    logins = pglogins.provision(pg.url, SECRETS, "warehouse", "airflow")
    for db, owner in (("warehouse", pglogins.OWNER), ("airflow", pglogins.AIRFLOW)):
        if n := pglogins.adopt(pg.url_for(db), owner):
            say(f"{n} objects of {db} made before the service logins handed to {owner}")
    airflow_url = logins[pglogins.AIRFLOW].dsn(pg.url, "airflow")
    warehouse.migrate(logins[pglogins.OWNER].dsn(pg.url, "warehouse"))
    warehouse_url = logins[pglogins.INGEST].dsn(pg.url, "warehouse")
    say(f"warehouse migrated (as {pglogins.OWNER}); one login per service, passwords in {SECRETS}")
    bucket = prepare_inbox()
    say(f"Excel inbox bucket {bucket}: template in template/, hospitals drop files in inbox/<facility>/")
    env = airflow_env(airflow_url)
    procs = {
        "sandbox": _start(
            "sandbox",
            [sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(SANDBOX_PORT)],
            base_env(),
        )
    }
    sandbox_url = f"http://127.0.0.1:{SANDBOX_PORT}"
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    say("Airflow metadata database migrated")
    seed_airflow(env, warehouse_url, sandbox_url, logins[pglogins.QUALITY].dsn(pg.url, "warehouse"))
    for name in COMPONENTS:
        # the scheduler forks the task processes: preload the task libraries there once
        module = "devtools.airflow_preload" if name == "scheduler" else "airflow"
        cmd = [sys.executable, "-m", module, name]
        if name == "api-server":
            cmd += ["--port", str(API_PORT), "--host", "127.0.0.1"]
        elif name in ("scheduler", "triggerer"):
            cmd += ["--skip-serve-logs"]  # no log server on 0.0.0.0: the api-server reads the local task logs
        procs[name] = _start(name, cmd, env)
    # registrar API (docs/registrar-api.md): its own login (row-level security), signing key; nothing of Airflow's
    procs["registrar-api"] = _start(
        "registrar-api",
        [sys.executable, "-m", "registrar", "--host", "127.0.0.1", "--port", str(REGISTRAR_PORT)],
        base_env(
            CERTPIPE_REGISTRAR_DB_URL=logins[pglogins.REGISTRAR].dsn(pg.url, "warehouse"),
            CERTPIPE_REGISTRAR_JWT_SECRET=_secret("registrar_jwt_secret"),
        ),
    )
    api = f"http://127.0.0.1:{API_PORT}"
    _wait_http(f"{sandbox_url}/healthz", 60, "sandbox", procs)
    _wait_http(f"http://127.0.0.1:{REGISTRAR_PORT}/healthz", 60, "registrar API", procs)
    _wait_http(f"{api}/api/v2/monitor/health", 180, "Airflow api-server", procs)
    password = _password()
    state = run_his_pull(api, password)
    say(f"his_pull finished: {state}")
    unpause(api, password, "excel_inbox")
    print_summary(warehouse_url, started)
    say(f"up in {time.monotonic() - t0:.0f} s")
    say(f"Airflow UI: {api}  (login: admin; password in {admin_password_file()})")
    say(f"sandbox source systems: {sandbox_url}   warehouse: 127.0.0.1:{PG_PORT}/warehouse (logins: {SECRETS})")
    say(f"registrar API: http://127.0.0.1:{REGISTRAR_PORT}/docs  (signing key: {STATE / 'registrar_jwt_secret'})")
    credential, token, _ = web_logins(logins[pglogins.OWNER].dsn(pg.url, "warehouse"))  # station admin: owner
    say(
        f"hospital look-up station: http://127.0.0.1:{REGISTRAR_PORT}/station  (station credential, entered once "
        f"on its setup page: {credential} ; also in {STATE / 'station_credential'})"
    )
    say(
        f"registrar console: http://127.0.0.1:{REGISTRAR_PORT}/console  (login: the registrar token of Hà Nội, 12 h, "
        f"in {STATE / 'registrar_token'}; a supervisor's in {STATE / 'supervisor_token'}):"
    )
    print(token, flush=True)
    say(f"logs: {STATE / 'logs'}   stop: ./dev stop (or Ctrl-C here)")
    if not wait:
        return 0 if state == "success" else 1
    try:
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while all(p.poll() is None for p in procs.values()):
            time.sleep(2)
        say("a component exited; stopping everything")
    except KeyboardInterrupt:
        pass
    stop()
    return 0


def stop(quiet: bool = False) -> int:
    from devtools.embedded_pg import EmbeddedPostgres

    pids = json.loads(PIDS.read_text()) if PIDS.exists() else {}
    for name, pid in pids.items():
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        if not quiet:
            say(f"stopping {name}")
    deadline = time.monotonic() + 20
    for pid in pids.values():
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.3)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    PIDS.unlink(missing_ok=True)
    EmbeddedPostgres(STATE / "pg", PG_PORT).stop()
    if not quiet:
        say("stopped")
    return 0
