"""Excel inbox part of the bench (`python -m devtools.bench`): reading a template file of N birth certificates.

Steps, each in its own forked child under `devtools.bench` (peak RSS is the step's own), on one file written
beforehand (not timed) in the template's layout, dates as Excel dates, IDs and codes as text:

- excel_read: the reader alone (python-calamine), every record of the file;
- excel_read_streamed: the same with the bounded-memory fallback (openpyxl read-only); informational, so
  left out of `--quick`;
- excel_end_to_end: the whole file through the inbox on a local folder: hash and claim, read, land, ingestion
  core, result workbook, move to processed/;
- pandas_read_excel_openpyxl: `pandas.read_excel(engine="openpyxl")` of the same sheet, for comparison.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FACILITY = "01020"
ENV = "CERTPIPE_BENCH_XLSX"


def write_file(path: Path, n: int, seed: int = 42) -> Path:
    from certpipe.sources.excel import template
    from sandbox.generate import generate_bulk_births

    return template.build(path, {"GCS": generate_bulk_births(n, seed, facilities=[FACILITY])})


def _file() -> Path:
    return Path(os.environ[ENV])


def step_excel_read(dsn: str, n: int, batch_size: int) -> dict:
    from certpipe.sources.excel.reader import read_records

    t = time.perf_counter()
    done = sum(1 for _ in read_records(_file()))
    return {"records": done, "seconds": time.perf_counter() - t, "note": "python-calamine"}


def step_excel_read_streamed(dsn: str, n: int, batch_size: int) -> dict:
    import dataclasses

    from certpipe.sources.excel.reader import Limits, read_records

    t = time.perf_counter()
    done = sum(1 for _ in read_records(_file(), dataclasses.replace(Limits.from_env(), calamine_max_cells=0)))
    return {"records": done, "seconds": time.perf_counter() - t, "note": "openpyxl read-only (bounded memory)"}


def step_excel_end_to_end(dsn: str, n: int, batch_size: int) -> dict:
    from airflow.sdk import ObjectStoragePath

    from certpipe.core.validate import suite_runner
    from certpipe.sources.excel import inbox as excel

    suite_runner("GCS")  # GX context: paid once per worker process, as in the main bench
    with tempfile.TemporaryDirectory(prefix="certpipe-bench-bucket-") as tmp:
        inbox = Path(tmp) / "inbox" / FACILITY
        inbox.mkdir(parents=True)
        shutil.copyfile(_file(), inbox / "bench.xlsx")
        root = ObjectStoragePath(Path(tmp).as_uri() + "/")
        t = time.perf_counter()
        ids = excel.scan(root, dsn, min_age=0, facilities=[FACILITY])["file_ids"]
        res = [excel.process(root, dsn, i) for i in ids]
        secs = time.perf_counter() - t
    r = res[0]
    counts = {k: r.get(k, 0) for k in ("stored", "updated", "unchanged", "refused")}
    return {
        "records": r.get("received", 0),
        "seconds": secs,
        "counts": counts,
        "note": "scan+claim, read, land, ingest, result workbook, move: "
        + " ".join(f"{k}={v:,}" for k, v in counts.items()),
    }


def step_pandas_read_excel(dsn: str, n: int, batch_size: int) -> dict:
    import pandas as pd

    t = time.perf_counter()
    df = pd.read_excel(_file(), sheet_name="Giấy chứng sinh", header=2, engine="openpyxl", dtype=object)
    return {"records": len(df), "seconds": time.perf_counter() - t, "note": "pandas.read_excel(engine='openpyxl')"}


STEPS = {
    "excel_read": step_excel_read,
    "excel_read_streamed": step_excel_read_streamed,
    "excel_end_to_end": step_excel_end_to_end,
    "pandas_read_excel_openpyxl": step_pandas_read_excel,
}


SKIP_QUICK = {"excel_read_streamed"}  # informational only: left out of --quick to keep it under a minute


def write_file_timed(path: Path, n: int) -> float:
    t = time.perf_counter()
    write_file(path, n)
    return time.perf_counter() - t


def file_note(path: Path, written: float) -> str:
    return f"file {path.stat().st_size / 2**20:.1f} MiB, written in {written:.0f} s"


@contextmanager
def file_path() -> Iterator[Path]:
    """Where the file goes (a temp dir, removed afterwards); the steps find it there."""
    with tempfile.TemporaryDirectory(prefix="certpipe-bench-xlsx-") as tmp:
        os.environ[ENV] = str(Path(tmp) / "bench.xlsx")
        yield _file()


def drop_database(admin_url: str, db: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


@contextmanager
def database(admin_url: str, template: str | None = None) -> Iterator[str]:
    """A fresh migrated database of the Excel steps' own (dropped afterwards); yields its DSN. `template`: an
    empty migrated database to copy instead of migrating (no session may be open on it)."""
    import psycopg

    from certpipe import warehouse

    db = f"certpipe_bench_excel_{os.getpid()}"
    dsn = admin_url.rsplit("/", 1)[0] + "/" + db
    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{db}"')
        c.execute(f'CREATE DATABASE "{db}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        if not template:
            warehouse.migrate(dsn)
        yield dsn
    finally:
        drop_database(admin_url, db)


def run(admin_url: str, n: int, run_step, log) -> dict:
    """Write the file, run the steps against a fresh migrated database of their own. Returns step results."""
    with file_path() as path, database(admin_url) as dsn:
        log(f"... excel file ({n:,} rows)")
        note = file_note(path, write_file_timed(path, n))
        results = {}
        for name in STEPS:
            log(f"... {name}")
            results[name] = run_step(name, dsn, n, 0)
    results["excel_read"]["note"] += f"; {note}"
    return results
