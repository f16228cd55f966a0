"""Throughput and memory bench of the ingestion core (a backfill of synthetic birth certificates).

    python -m devtools.bench [--quick] [--records N] [--batch-size B] [--pg-url URL] [--json PATH]

Not a test: prints a table of figures and the targets met or missed. PostgreSQL comes from --pg-url,
else CERTPIPE_BENCH_PG_URL, else an embedded server in a temp dir. A fresh database is created and
migrated. Each measured step runs in its own spawned child (so its peak RSS is its own); the child
regenerates the records from the fixed seed, batch by batch, and only the work of the step is timed.
The database carries over between steps, so they run in order. Output holds counts only.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT / "plugins", ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from itertools import islice  # noqa: E402

SEED = 42
KIND = "GCS"
SOURCE = "bench"
DEFAULT_N = 1_000_000
DEFAULT_BATCH = 50_000
CHANGED_EVERY, INVALID_EVERY = 10, 100  # changed: i % 10 == 0; invalid: i % 100 == 0 (a subset of changed)

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TQDM_DISABLE", "1")


# ---------------------------------------------------------------- data

def records(n: int, seed: int = SEED) -> Iterator[dict]:
    from sandbox.generate import generate_bulk_births

    return generate_bulk_births(n, seed)


def change(i: int, rec: dict) -> dict:
    """The changed_10pct version of record `i`: 10 % heavier by 1 g, 1 % with an invalid sex code."""
    if i % CHANGED_EVERY:
        return rec
    rec = dict(rec)
    w = rec.get("CAN_NANG_CON") or ""
    rec["CAN_NANG_CON"] = str(int(w) + 1) if w.isdigit() else w + "1"
    if i % INVALID_EVERY == 0:
        rec["GIOI_TINH_CON"] = "9"
    return rec


def batches(n: int, size: int, *, changed: bool = False, seed: int = SEED) -> Iterator[tuple[int, list[dict]]]:
    """(offset, records) per batch; generation happens here, outside the timed work."""
    it = records(n, seed)
    offset = 0
    while chunk := list(islice(it, size)):
        if changed:
            chunk = [change(offset + j, r) for j, r in enumerate(chunk)]
        yield offset, chunk
        offset += len(chunk)


def expected_changed(n: int, bad: set[int]) -> dict:
    """Outcome counts the changed_10pct step must report, given the indices refused at first load."""
    invalid = {i for i in range(0, n, INVALID_EVERY)}
    changed = {i for i in range(0, n, CHANGED_EVERY)} - invalid - bad
    refused = len(bad | invalid)
    return {"stored": 0, "updated": len(changed), "unchanged": n - len(changed) - refused, "refused": refused}


# ---------------------------------------------------------------- steps (each returns counts and timed seconds)

def step_generate(dsn: str, n: int, batch_size: int) -> dict:
    t = time.perf_counter()
    recs = list(records(n))
    return {"records": len(recs), "seconds": time.perf_counter() - t}


def step_copy_baseline(dsn: str, n: int, batch_size: int) -> dict:
    """Raw COPY of (cert_key, record jsonb) into an empty keyed table: the machine's own limit."""
    from certpipe import warehouse
    from certpipe.ingest import cert_key

    secs, done = 0.0, 0
    with warehouse.connect(dsn) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy")
        conn.execute("CREATE TABLE bench_copy (cert_key text PRIMARY KEY, record jsonb NOT NULL)")
        conn.commit()
        for _, chunk in batches(n, batch_size):
            t = time.perf_counter()
            with conn.cursor().copy("COPY bench_copy (cert_key, record) FROM STDIN") as copy:
                for rec in chunk:
                    copy.write_row((cert_key(KIND, rec), json.dumps(rec, ensure_ascii=False, sort_keys=True,
                                                                    separators=(",", ":"))))
            conn.commit()
            secs += time.perf_counter() - t
            done += len(chunk)
        conn.execute("DROP TABLE bench_copy")
        conn.commit()
    return {"records": done, "seconds": secs}


def _ingest_all(dsn: str, n: int, batch_size: int, changed: bool) -> dict:
    from certpipe import warehouse
    from certpipe.ingest import ingest
    from certpipe.validate import suite_runner

    t = time.perf_counter()
    suite_runner(KIND)  # GX context: paid once per process, reported apart from the rate
    gx_init = time.perf_counter() - t
    totals = {"stored": 0, "updated": 0, "unchanged": 0, "refused": 0}
    secs, done = 0.0, 0
    with warehouse.connect(dsn) as conn:
        for offset, chunk in batches(n, batch_size, changed=changed):
            t = time.perf_counter()
            batch = warehouse.create_batch(conn, source=SOURCE, source_ref=SOURCE, kind=KIND,
                                           meta={"offset": offset})
            conn.commit()
            res = ingest(conn, batch_id=batch, kind=KIND, source=SOURCE, source_ref=SOURCE, records=chunk)
            secs += time.perf_counter() - t
            done += res.received
            for k in totals:
                totals[k] += getattr(res, k)
        first = conn.execute("SELECT min(batch_id) FROM wh.ingest_batch WHERE source = %s", (SOURCE,)).fetchone()[0]
        bad = refused_indices(conn, first, n, batch_size)
    return {"records": done, "seconds": secs, "counts": totals, "bad": len(bad), "gx_init": gx_init}


def refused_indices(conn, first_batch: int, n: int, batch_size: int) -> set[int]:
    """Global indices refused by the first load (its batches are the first n/batch_size ones)."""
    last = first_batch + -(-n // batch_size) - 1
    rows = conn.execute("SELECT (b.meta->>'offset')::int + r.row_no - 1 FROM wh.batch_record r "
                        "JOIN wh.ingest_batch b USING (batch_id) WHERE r.batch_id BETWEEN %s AND %s "
                        "AND r.outcome = 'refused'", (first_batch, last)).fetchall()
    return {r[0] for r in rows}


def step_first_load(dsn: str, n: int, batch_size: int) -> dict:
    return _ingest_all(dsn, n, batch_size, changed=False)


def step_unchanged_rerun(dsn: str, n: int, batch_size: int) -> dict:
    return _ingest_all(dsn, n, batch_size, changed=False)


def step_changed_10pct(dsn: str, n: int, batch_size: int) -> dict:
    out = _ingest_all(dsn, n, batch_size, changed=True)
    from certpipe import warehouse

    with warehouse.connect(dsn) as conn:
        first = conn.execute("SELECT min(batch_id) FROM wh.ingest_batch WHERE source = %s", (SOURCE,)).fetchone()[0]
        out["expected"] = expected_changed(n, refused_indices(conn, first, n, batch_size))
    return out


STEPS = {"generate": step_generate, "copy_baseline": step_copy_baseline, "first_load": step_first_load,
         "unchanged_rerun": step_unchanged_rerun, "changed_10pct": step_changed_10pct}


def _child(name: str, dsn: str, n: int, batch_size: int) -> dict:
    import logging

    logging.disable(logging.INFO)
    from devtools import bench_excel

    out = (STEPS.get(name) or bench_excel.STEPS[name])(dsn, n, batch_size)
    out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return out


def run_step(name: str, dsn: str, n: int, batch_size: int) -> dict:
    """One step in a fresh spawned process: its peak RSS is the step's own."""
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as ex:
        return ex.submit(_child, name, dsn, n, batch_size).result()


# ---------------------------------------------------------------- DAG import time

_IMPORT_SNIPPET = """
import runpy, sys, time
import airflow.sdk
t = time.perf_counter()
runpy.run_path(sys.argv[1])
print(time.perf_counter() - t)
"""


def dag_import_times(repeat: int = 3) -> dict[str, float]:
    """Median over `repeat` fresh interpreters of runpy.run_path(dag file), airflow.sdk already imported."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)]),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags")}
    out = {}
    with tempfile.TemporaryDirectory(prefix="certpipe-bench-airflow-") as home:
        env.setdefault("AIRFLOW_HOME", home)
        for f in sorted((ROOT / "dags").glob("*.py")):
            runs = []
            for _ in range(repeat):
                p = subprocess.run([sys.executable, "-c", _IMPORT_SNIPPET, str(f)], env=env, cwd=ROOT,
                                   capture_output=True, text=True, check=True)
                runs.append(float(p.stdout.strip().splitlines()[-1]))
            out[f.name] = statistics.median(runs)
    return out


# ---------------------------------------------------------------- report

def _rate(r: dict) -> float | None:
    return r["records"] / r["seconds"] if r.get("seconds") else None


def report(results: dict, imports: dict[str, float], n: int,
           excel: dict | None = None) -> tuple[list[dict], list[dict]]:
    base = _rate(results["copy_baseline"])
    rows = []
    for name, r in results.items():
        rate = _rate(r)
        rows.append({"step": name, "records": r["records"], "seconds": r["seconds"], "records_per_s": rate,
                     "vs_baseline": rate / base if rate and base and name != "generate" else None,
                     "peak_mib": r.get("peak_mib"), "note": r.get("note", "")})
    gx = [r["gx_init"] for r in results.values() if "gx_init" in r]
    rows.append({"step": "gx_init (once per process)", "records": None, "seconds": statistics.median(gx),
                 "records_per_s": None, "vs_baseline": None, "peak_mib": None,
                 "note": "median over the 3 ingest steps; excluded from their rates"})
    pandas = _rate(excel["pandas_read_excel_openpyxl"]) if excel else None
    for name, r in (excel or {}).items():  # Excel inbox: rows/s of one template file (devtools/bench_excel.py)
        rate = _rate(r)
        vs = f"; {rate / pandas:.1f} x pandas" if rate and pandas and not name.startswith("pandas") else ""
        rows.append({"step": name, "records": r["records"], "seconds": r["seconds"], "records_per_s": rate,
                     "vs_baseline": None, "peak_mib": r.get("peak_mib"), "note": r.get("note", "") + vs})
    for f, s in imports.items():
        rows.append({"step": f"import_time {f}", "records": None, "seconds": s, "records_per_s": None,
                     "vs_baseline": None, "peak_mib": None, "note": "median of 3 fresh interpreters"})
    first, rerun = _rate(results["first_load"]), _rate(results["unchanged_rerun"])
    peak = max(results[s]["peak_mib"] for s in ("copy_baseline", "first_load", "unchanged_rerun", "changed_10pct"))
    scale = DEFAULT_N / n
    targets = [
        {"target": "ingestion >= 0.3 x COPY rate", "value": f"{first / base:.2f} x", "met": first >= 0.3 * base},
        {"target": "unchanged re-run >= 2x faster than first load", "value": f"{rerun / first:.2f} x",
         "met": rerun >= 2 * first},
        {"target": "peak memory < 1 GiB for 1,000,000 records",
         "value": f"{peak:.0f} MiB" + ("" if n == DEFAULT_N else f" at {n:,} (batched: not scaled by {scale:g})"),
         "met": peak < 1024},
        *([{"target": "Excel reading >= 10x pandas.read_excel(openpyxl)",
            "value": f"{_rate(excel['excel_read']) / pandas:.1f} x", "met": _rate(excel["excel_read"]) >= 10 * pandas}]
          if excel and pandas else []),
        {"target": "each DAG file imports < 0.5 s", "value": ", ".join(f"{k} {v:.3f} s" for k, v in imports.items()),
         "met": all(v < 0.5 for v in imports.values())},
    ]
    return rows, targets


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_table(rows: list[dict], targets: list[dict], checks: list[str]) -> None:
    head = f"{'step':<26} {'records':>10} {'seconds':>9} {'records/s':>11} {'vs baseline':>11} {'peak MiB':>9}  note"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['step']:<26} {_fmt(r['records'], ',d'):>10} {_fmt(r['seconds'], '.3f'):>9} "
              f"{_fmt(r['records_per_s'], ',.0f'):>11} {_fmt(r['vs_baseline'], '.2f'):>11} "
              f"{_fmt(r['peak_mib'], '.0f'):>9}  {r['note']}")
    print()
    for t in targets:
        print(f"[{'met' if t['met'] else 'MISSED':>6}] {t['target']}: {t['value']}")
    for c in checks:
        print(c)


# ---------------------------------------------------------------- main

def bench(dsn: str, n: int, batch_size: int, log=print) -> dict:
    """Run the steps in order against a migrated, empty warehouse at `dsn`."""
    results = {}
    for name in STEPS:
        log(f"... {name}", file=sys.stderr, flush=True)
        results[name] = run_step(name, dsn, n, batch_size)
    return results


def check_counts(results: dict, n: int) -> list[str]:
    bad = results["first_load"]["bad"]
    checks = []
    want = {"first_load": {"stored": n - bad, "updated": 0, "unchanged": 0, "refused": bad},
            "unchanged_rerun": {"stored": 0, "updated": 0, "unchanged": n - bad, "refused": bad},
            "changed_10pct": results["changed_10pct"]["expected"]}
    for step, exp in want.items():
        got = results[step]["counts"]
        results[step]["note"] = " ".join(f"{k}={v:,}" for k, v in got.items())
        checks.append(f"[{'ok' if got == exp else 'WRONG':>6}] {step} counts" + ("" if got == exp else f": want {exp}"))
    return checks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devtools.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"{DEFAULT_N // 10:,} records")
    ap.add_argument("--records", type=int)
    ap.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    ap.add_argument("--pg-url", default=os.environ.get("CERTPIPE_BENCH_PG_URL"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--excel-rows", type=int, help="rows of the Excel template file (100,000; --quick 10,000)")
    a = ap.parse_args(argv)
    n = a.records or (DEFAULT_N // 10 if a.quick else DEFAULT_N)

    import psycopg

    from certpipe import warehouse
    from devtools.embedded_pg import EmbeddedPostgres, free_port

    tmp = pg = None
    if a.pg_url:
        admin = a.pg_url
    else:
        tmp = tempfile.mkdtemp(prefix="certpipe-bench-")
        pg = EmbeddedPostgres(Path(tmp) / "pg", free_port()).start()
        admin = pg.url
    db = f"certpipe_bench_{os.getpid()}"
    dsn = admin.rsplit("/", 1)[0] + "/" + db
    try:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{db}"')
            c.execute(f'CREATE DATABASE "{db}"')
        warehouse.migrate(dsn)
        results = bench(dsn, n, a.batch_size, log=print)
        from devtools import bench_excel

        excel = bench_excel.run(admin, a.excel_rows or (10_000 if a.quick else 100_000), run_step,
                                log=lambda m: print(m, file=sys.stderr, flush=True))
        print("... import_time", file=sys.stderr, flush=True)
        imports = dag_import_times()
    finally:
        if pg:
            pg.destroy()
            os.rmdir(tmp)
        else:
            with psycopg.connect(admin, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    checks = check_counts(results, n)
    rows, targets = report(results, imports, n, excel)
    print(f"\nIngestion bench: {n:,} GCS records, batches of {a.batch_size:,}, seed {SEED}, "
          f"{os.cpu_count()} CPUs\n")
    print_table(rows, targets, checks)
    if a.json:
        a.json.write_text(json.dumps({"records": n, "batch_size": a.batch_size, "seed": SEED, "steps": rows,
                                      "targets": targets, "checks": checks}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
