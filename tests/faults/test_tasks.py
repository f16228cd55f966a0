"""A task's process SIGKILLed mid work (a HIS batch's ingest, an Excel file between its chunks), and the bucket's
disk full while a result workbook is written. The killed process is a real subprocess running the task's code;
the next attempt runs the same code."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from certpipe import config
from tests.faults.conftest import advisory_held, no_stuck_sessions, wait_until, worker
from tests.faults.test_postgres import GCS_LOCK, q


@pytest.fixture
def his_big(sandbox_url, monkeypatch):
    httpx.post(
        f"{sandbox_url}/_control/reset", json={"seed": 9, "births": 2000, "deaths": 5, "facilities": ["01020"]}
    ).raise_for_status()
    monkeypatch.setenv(
        "AIRFLOW_CONN_HIS_01020",
        json.dumps(
            {"conn_type": "http", "host": f"{sandbox_url}/his/01020", "login": "01020", "password": "sandbox-01020"}
        ),
    )
    (h,) = config.hospitals([{"facility": "01020", "name": "BV", "attempts": 2, "backoff": 0.05, "timeout": 30}])
    return h


def test_task_killed_mid_his_batch(warehouse_dsn, his_big, sandbox_url, fault_row):
    fault_row(
        "task process SIGKILL",
        "HIS batch (ingest step, inside the upsert)",
        "the killed session's transaction rolled back (0 certificates, 0 outcomes, lock freed); the retry ingests "
        "the landed batch once; every record acknowledged once; watermark moved once",
    )
    from certpipe.sources.his.pull import acknowledge, extract, ingest_landed

    batch = extract(his_big, "GCS", warehouse_dsn)
    proc = worker("his-ingest", json.dumps({"batch": batch, "dsn": warehouse_dsn}))
    wait_until(lambda: advisory_held(warehouse_dsn, GCS_LOCK) or proc.poll() is not None, 90, "the upsert")
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    wait_until(lambda: not advisory_held(warehouse_dsn, GCS_LOCK), 30, "the killed session's lock to go")
    assert q(warehouse_dsn, "SELECT count(*) FROM wh.certificate") == [(0,)]
    assert q(warehouse_dsn, "SELECT count(*) FROM wh.batch_record") == [(0,)]
    done = ingest_landed(batch, warehouse_dsn)
    acknowledge(his_big, batch, warehouse_dsn)
    assert done["stored"] + done["updated"] + done["unchanged"] + done["refused"] == batch["received"]
    assert q(warehouse_dsn, "SELECT count(*) FROM wh.batch_record") == [(batch["received"],)]
    assert q(warehouse_dsn, "SELECT status FROM wh.ingest_batch") == [("acknowledged",)]
    acks = httpx.get(f"{sandbox_url}/_control/his/01020/acks").json()
    # every landed record answered once (chunked calls), all for this one batch
    assert sum(len(a["results"]) for a in acks["all"]) == batch["received"]
    assert {a["batch"] for a in acks["all"]} == {str(batch["batch_id"])}
    assert (
        len(acks["latest"]) == q(warehouse_dsn, "SELECT count(DISTINCT source_record_id) FROM wh.landing_record")[0][0]
    )
    assert no_stuck_sessions(warehouse_dsn) == []


def _bucket(root: Path):
    from airflow.sdk import ObjectStoragePath

    (root / "inbox" / "01020").mkdir(parents=True, exist_ok=True)
    return ObjectStoragePath(root.as_uri() + "/")


def _files(root: Path, area: str) -> list[str]:
    base = root / area
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()) if base.exists() else []


def _drop_births(root: Path, n: int, seed: int, tmp: Path) -> list[dict]:
    from tests.sources.excel.conftest import births, template_file

    gcs, _ = births(n, seed=seed, bad_ratio=0.05)
    data = template_file(tmp / "src.xlsx", gcs).read_bytes()
    (root / "inbox" / "01020" / "thang-11.xlsx").write_bytes(data)
    return gcs


def _check_done(root: Path, dsn: str, rows: int) -> None:
    import openpyxl

    assert _files(root, "processing") == [] and _files(root, "inbox") == []
    assert len(_files(root, "processed")) == 1
    results = _files(root, "results")
    assert len(results) == 1 and results[0].endswith("-ket-qua.xlsx"), results  # written once, no .part left
    openpyxl.load_workbook(root / "results" / results[0]).close()  # a whole workbook
    assert q(dsn, "SELECT status, attempts > 1 FROM wh.excel_file") == [("done", True)]
    assert q(dsn, "SELECT count(*), count(DISTINCT (batch_id, row_no)) FROM wh.batch_record") == [(rows, rows)]
    n, d = q(dsn, "SELECT count(*), count(DISTINCT (kind, cert_key)) FROM wh.certificate")[0]
    assert n == d > 0


def test_task_killed_mid_excel_file(warehouse_dsn, tmp_path, fault_row):
    fault_row(
        "task process SIGKILL",
        "Excel file (between its ingestion chunks)",
        "the next attempt resumes the claim: every row one outcome, no chunk ingested twice, nothing left in "
        "processing/, one whole result workbook (a part left by a kill mid-write removed)",
    )
    from certpipe.sources.excel import inbox

    root = tmp_path / "bucket"
    bucket = _bucket(root)
    gcs = _drop_births(root, 600, 21, tmp_path)
    (fid,) = inbox.scan(bucket, warehouse_dsn, min_age=0, facilities=["01020"])["file_ids"]
    proc = worker(
        "excel",
        json.dumps(
            {
                "url": bucket.as_uri() if hasattr(bucket, "as_uri") else str(bucket),
                "dsn": warehouse_dsn,
                "file_id": fid,
                "chunk": 60,
            }
        ),
    )

    def some_ingested():
        got = q(warehouse_dsn, "SELECT count(*) FILTER (WHERE status = 'ingested'), count(*) FROM wh.ingest_batch")[0]
        return 0 < got[0] < got[1]

    wait_until(lambda: some_ingested() or proc.poll() is not None, 120, "the first chunks to be ingested")
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert q(warehouse_dsn, "SELECT status FROM wh.excel_file") == [("landed",)]
    assert len(_files(root, "processing")) == 1 and _files(root, "results") == []
    wait_until(lambda: no_stuck_sessions(warehouse_dsn) == [], 30, "the killed sessions to end")
    # what a process killed in the middle of writing the result leaves: a hidden part, cut short
    rkey = root / inbox.result_key("01020", fid, "thang-11.xlsx")
    rkey.parent.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha256(rkey.name.encode()).hexdigest()[:12]  # storage.upload's part names
    (rkey.parent / f".{tag}.dead00000000.part").write_bytes(b"PK\x03\x04 cut")
    out = inbox.process(bucket, warehouse_dsn, fid, chunk_rows=60)
    assert out["status"] == "done" and out["received"] == len(gcs)
    _check_done(root, warehouse_dsn, len(gcs))


@contextlib.contextmanager
def small_disk(size_kb: int):
    """A tmpfs of `size_kb` mounted on a fresh directory (needs root); None when mounting is not allowed."""
    d = Path(tempfile.mkdtemp(prefix="certpipe-fullfs-"))
    ok = (
        os.geteuid() == 0
        and shutil.which("mount")
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(d)], capture_output=True, check=False
        ).returncode
        == 0
    )
    try:
        yield d if ok else None
    finally:
        if ok:
            subprocess.run(["umount", "-l", str(d)], check=False)
        shutil.rmtree(d, ignore_errors=True)


def _fill(root: Path, leave: int) -> Path:
    """Take the file system's free space down to about `leave` bytes."""
    filler = root / ".filler"
    st = os.statvfs(root)
    free = st.f_bavail * st.f_frsize
    with filler.open("wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def test_bucket_disk_full_while_writing_the_result(warehouse_dsn, tmp_path, monkeypatch, fault_row):
    from certpipe.sources.excel import inbox, storage

    with small_disk(4096) as disk:
        how = "a 4 MiB tmpfs as the bucket, filled" if disk else "ENOSPC injected in the bucket's writes (no mount)"
        fault_row(
            f"bucket disk full ({how})",
            "Excel result workbook upload",
            "ENOSPC fails the task; no result and no half-written part in results/, the file still in processing/; "
            "with space again the retry writes one whole result, nothing ingested twice",
        )
        root = (disk or tmp_path) / "bucket"
        bucket = _bucket(root)
        gcs = _drop_births(root, 150, 23, tmp_path)
        (fid,) = inbox.scan(bucket, warehouse_dsn, min_age=0, facilities=["01020"])["file_ids"]
        if disk:
            filler = _fill(disk, 4096)
        else:
            real = shutil.copyfileobj

            def full(src, dst, length=0):
                dst.write(src.read(1024))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(storage.shutil, "copyfileobj", full)
        with pytest.raises(OSError, match=os.strerror(errno.ENOSPC)) as err:
            inbox.process(bucket, warehouse_dsn, fid)
        assert err.value.errno == errno.ENOSPC
        assert _files(root, "results") == []  # no half-written result, not even a hidden part
        assert len(_files(root, "processing")) == 1
        assert q(warehouse_dsn, "SELECT status FROM wh.excel_file") == [("ingested",)]
        if disk:
            filler.unlink()
        else:
            monkeypatch.setattr(storage.shutil, "copyfileobj", real)
        out = inbox.process(bucket, warehouse_dsn, fid)
        assert out["status"] == "done" and out["received"] == len(gcs)
        _check_done(root, warehouse_dsn, len(gcs))
