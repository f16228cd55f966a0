"""Test environment: a real PostgreSQL (CERTPIPE_TEST_PG_URL, else an embedded server) and an isolated Airflow.

Each test that needs the warehouse gets a fresh database cloned from a migrated template.
"""

from __future__ import annotations

import itertools
import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_TMP = Path(tempfile.mkdtemp(prefix="certpipe-tests-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_TMP / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Asia/Ho_Chi_Minh",
        "GX_ANALYTICS_ENABLED": "false",
        "TQDM_DISABLE": "1",
    }
)

from devtools.embedded_pg import EmbeddedPostgres, free_port  # noqa: E402
from tests import clock  # noqa: E402

_counter = itertools.count()


class PgServer:
    def __init__(self, admin_url: str):
        self.admin_url = admin_url  # postgresql://user@host:port/db

    def url_for(self, db: str) -> str:
        return self.admin_url.rsplit("/", 1)[0] + "/" + db

    def execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as c:
            c.execute(sql)


@pytest.fixture(scope="session")
def pg_server():
    url = os.environ.get("CERTPIPE_TEST_PG_URL")
    if url:
        yield PgServer(url)
        return
    # a throw-away server: relaxed durability (fsync off), stated here; ./dev up keeps PostgreSQL's own
    pg = EmbeddedPostgres(_TMP / "pg", free_port(), durable=False).start()
    try:
        yield PgServer(pg.url)
    finally:
        pg.destroy()


@pytest.fixture(scope="session")
def pg_logins(pg_server):
    """The service logins (certpipe.warehouse.logins) on the test server, passwords in the session's temp dir;
    `pg_logins[name].dsn(url)` is `url` as that login."""
    from certpipe.warehouse import logins

    return logins.ensure_logins(pg_server.admin_url, _TMP / "secrets")


@pytest.fixture(scope="session")
def warehouse_template(pg_server):
    from certpipe import warehouse

    name = f"certpipe_tpl_{os.getpid()}"
    pg_server.execute(f'DROP DATABASE IF EXISTS "{name}"')
    pg_server.execute(f'CREATE DATABASE "{name}"')
    warehouse.migrate(pg_server.url_for(name))
    yield name
    pg_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def warehouse_dsn(pg_server, warehouse_template):
    """A fresh, migrated warehouse database for one test."""
    name = f"certpipe_t{os.getpid()}_{next(_counter)}"
    pg_server.execute(f'CREATE DATABASE "{name}" TEMPLATE "{warehouse_template}"')
    yield pg_server.url_for(name)
    pg_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=clock.INSTANTS, ids=[f"{t}UTC" for t in clock.INSTANTS])
def vn_clock(request, pg_server, warehouse_dsn):
    """Runs the test at each edge of Vietnam's day (tests/clock.py), Python and the test's database alike.
    Take it before `wh` or `api`, so that their connections see the frozen database clock."""
    with clock.frozen(
        clock.instant(request.param), admin_url=pg_server.admin_url, database=warehouse_dsn.rsplit("/", 1)[1]
    ) as frozen:
        yield frozen


@pytest.fixture
def wh(warehouse_dsn):
    from certpipe import warehouse

    with warehouse.connect(warehouse_dsn) as conn:
        yield conn


@pytest.fixture(scope="session")
def airflow_db():
    """An initialised Airflow metadata database (SQLite under the session's temp dir) for dag.test()."""
    import subprocess

    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


@pytest.fixture(scope="session")
def sandbox_url():
    from sandbox.server import run_in_thread

    with run_in_thread(seed=7, births=120, deaths=40) as url:
        yield url


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium driven by Playwright for a test module's browser tests (devtools/browser.py: the
    machine's Chromium, Debian's package installed when missing and possible; otherwise the test fails naming
    what to install). Module-scoped: Playwright's event loop in the main thread must not outlive the browser
    tests (boto/s3fs in later tests lose their credentials next to it)."""
    from devtools import browser

    with browser.launch() as b:
        yield b


def pytest_collection_modifyitems(items):
    for item in items:
        if "vn_clock" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.clock)


def airflow_conn(uri: str, **extra) -> str:
    """An Airflow connection as the JSON form accepted in AIRFLOW_CONN_* variables."""
    import json
    from urllib.parse import urlsplit

    u = urlsplit(uri)
    if u.scheme.startswith("postgres"):
        from devtools.connections import pg_connection

        return json.dumps(pg_connection(uri, extra=extra))
    return json.dumps({"conn_type": "http", "host": uri, "extra": extra})
