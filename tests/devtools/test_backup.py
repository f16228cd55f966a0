"""./dev backup and ./dev restore: a populated warehouse dumped, restored into an empty database on a fresh server
(no roles of ours there yet), every table's row count and checksum the same."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from certpipe import warehouse
from devtools import backup
from tests.conftest import ROOT


@pytest.fixture
def populated(warehouse_dsn):
    from certpipe.sources import ingest_batch
    from sandbox.generate import generate_births, generate_deaths

    with warehouse.connect(warehouse_dsn) as conn:
        for kind, gen in (("GCS", generate_births), ("GBT", generate_deaths)):
            batch = gen(60, facility="01020", seed=17)
            bid = warehouse.create_batch(conn, source="his", source_ref="01020", kind=kind)
            warehouse.land(conn, bid, batch)
            conn.commit()
            ingest_batch(conn, bid, kind=kind, source="his", source_ref="01020")
        cid = conn.execute("SELECT cert_id FROM wh.certificate WHERE kind = 'GCS' ORDER BY 1 LIMIT 1").fetchone()[0]
        conn.execute("UPDATE wh.certificate SET status = 'used', used_at = now() WHERE cert_id = %s", (cid,))
        conn.execute(
            "INSERT INTO wh.registration (cert_id, kind, registration_no, registered_on, office, officer) "
            "VALUES (%s, 'GCS', '1/2026', '2026-11-20', 'UBND', 'hn.hotich1')",
            (cid,),
        )
        conn.commit()
    return warehouse_dsn


def test_backup_restores_into_an_empty_database_with_every_table_identical(populated, tmp_path):
    from devtools.embedded_pg import EmbeddedPostgres, free_port

    dump = tmp_path / "wh.dump"
    cli = [sys.executable, "-m", "devtools.cli"]
    subprocess.run([*cli, "backup", str(dump), "--url", populated], cwd=ROOT, check=True, capture_output=True)
    assert dump.stat().st_mode & 0o077 == 0  # personal data: owner only
    made = backup.table_digests(populated)
    assert made["wh.certificate"]["rows"] > 100 and made["wh.registration"]["rows"] == 1
    assert len(made) >= 15

    other = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="certpipe-restore-")) / "pg", free_port(), durable=False)
    other.start()  # a fresh server: none of the warehouse's roles exist there
    try:
        got = subprocess.run(
            [*cli, "restore", str(dump), "--database", "restored", "--url", other.url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert got.returncode == 0, got.stderr[-3000:]
        assert "every table's count and checksum match" in got.stdout
        assert backup.table_digests(other.url_for("restored")) == made  # every table: rows and checksum
        with psycopg.connect(other.url_for("restored")) as c:  # the registrar's role and its grants came along
            assert c.execute(
                "SELECT has_table_privilege('certpipe_registrar', 'wh.registration', 'INSERT')"
            ).fetchone()[0]
        # a second restore into the now populated database is refused, nothing touched
        again = subprocess.run(
            [*cli, "restore", str(dump), "--database", "restored", "--url", other.url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert again.returncode != 0 and "not empty" in again.stderr
    finally:
        other.destroy()
        shutil.rmtree(other.data_dir.parent, ignore_errors=True)
