"""Peers of the ingestion core in the bench (`python -m devtools.bench`): what a data engineer would otherwise build,
on the same synthetic records, batches and PostgreSQL as the core's first load, each in its own schema.

- peer_pandas_gx_upsert: the usual Airflow task. Each batch becomes a pandas DataFrame (text stripped, blanks as
  missing, integer columns made numeric: the cleaning such a task does), validated with the same
  great-expectations suite as the core (same GX context), and the valid rows are upserted with
  `INSERT ... ON CONFLICT (MA_GCS) DO UPDATE` through psycopg `executemany` into a table with a text column per
  field. No Vietnam rules, no normalisation beyond that, no history, provenance or per-record outcomes.
  `refusal_check` compares what it refuses with the core's first load where the two validate the same thing.
- peer_dlt_merge: dlt loading the same batches into the same database with `write_disposition="merge"` on
  MA_GCS (its defaults otherwise). dlt applies no validation and none of Vietnam's rules. Left out of `--quick`.

Generation of the records is timed and subtracted, as for the core.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator

from devtools import bench

SCHEMA_PANDAS, SCHEMA_DLT = "peer_pandas", "peer_dlt"


def _timed_batches(n: int, batch_size: int, spent: list[float]) -> Iterator[tuple[int, list[dict]]]:
    """bench.batches(), adding the time spent generating to spent[0]."""
    it = bench.batches(n, batch_size)
    while True:
        t = time.perf_counter()
        item = next(it, None)
        spent[0] += time.perf_counter() - t
        if item is None:
            return
        yield item


def _clean(chunk: list[dict], spec):
    """The frame a usual task validates: text stripped, blanks missing, integer columns numeric."""
    import pandas as pd

    df = pd.DataFrame(chunk, dtype=object)
    for col in df.columns:
        df[col] = df[col].str.strip().replace("", None)
    for f in spec.fields:
        if f.type == "int" and f.name in df.columns:
            df[f.name] = pd.to_numeric(df[f.name], errors="coerce")
    return df


def step_peer_pandas_gx_upsert(dsn: str, n: int, batch_size: int) -> dict:
    import psycopg

    from certpipe.core.schema import kind_spec
    from certpipe.core.validate import suite_runner

    spec = kind_spec(bench.KIND)
    runner = suite_runner(bench.KIND)  # the core's GX context and suite
    names = list(spec.names)
    cols = ", ".join(f'"{c}"' for c in names)
    upsert = (
        f"INSERT INTO {SCHEMA_PANDAS}.certificate ({cols}) VALUES ({', '.join(['%s'] * len(names))}) "
        f'ON CONFLICT ("MA_GCS") DO UPDATE SET ' + ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in names if c != "MA_GCS")
    )
    refused: dict[int, list[str]] = {}
    gen, secs, done = [0.0], 0.0, 0
    with psycopg.connect(dsn) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA_PANDAS} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA_PANDAS}")
        conn.execute(
            f"CREATE TABLE {SCHEMA_PANDAS}.certificate ("
            + ", ".join(f'"{c}" text' + (" PRIMARY KEY" if c == "MA_GCS" else "") for c in names)
            + ")"
        )
        conn.commit()
        for offset, chunk in _timed_batches(n, batch_size, gen):
            t = time.perf_counter()
            df = _clean(chunk, spec)
            frame = df.reindex(columns=[f.name for f in runner.columns])
            bad: dict[int, list[str]] = {}
            for _column, rule, rows in runner.failures(frame):
                for i in rows:
                    bad.setdefault(i, []).append(rule)
            good = df.drop(index=list(bad)).reindex(columns=names)
            good = good.astype(object).where(good.notna(), None)
            for f in spec.fields:  # numbers back to text, as the table holds them
                if f.type == "int":
                    good[f.name] = [None if v is None else str(int(v)) for v in good[f.name]]
            with conn.cursor() as cur:
                cur.executemany(upsert, good.itertuples(index=False, name=None))
            conn.commit()
            secs += time.perf_counter() - t
            done += len(chunk)
            refused.update({offset + i: rules for i, rules in bad.items()})
        stored = conn.execute(f"SELECT count(*) FROM {SCHEMA_PANDAS}.certificate").fetchone()[0]
    return {
        "records": done,
        "seconds": secs,
        "refused": refused,
        "generate_s": gen[0],
        "note": f"stored={stored:,} refused={len(refused):,}; GX suite, no Vietnam rules, no history/outcomes",
    }


def step_peer_dlt_merge(dsn: str, n: int, batch_size: int) -> dict:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt

    gen = [0.0]

    @dlt.resource(name="certificate", write_disposition="merge", primary_key="MA_GCS")
    def certificates():
        for _offset, chunk in _timed_batches(n, batch_size, gen):
            yield chunk

    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(dsn)
    credentials = {  # dlt insists on a password; the bench's server trusts loopback connections
        "database": info["dbname"],
        "username": info.get("user", "postgres"),
        "password": info.get("password") or "unused",
        "host": info.get("host", "127.0.0.1"),
        "port": int(info.get("port", 5432)),
    }
    with tempfile.TemporaryDirectory(prefix="certpipe-bench-dlt-") as tmp:
        pipeline = dlt.pipeline(
            pipeline_name="certpipe_bench",
            destination=dlt.destinations.postgres(credentials=credentials),
            dataset_name=SCHEMA_DLT,
            pipelines_dir=tmp,
        )
        t = time.perf_counter()
        pipeline.run(certificates())
        secs = time.perf_counter() - t - gen[0]
    import psycopg

    with psycopg.connect(dsn) as conn:
        stored = conn.execute(f"SELECT count(*) FROM {SCHEMA_DLT}.certificate").fetchone()[0]
    return {
        "records": n,
        "seconds": secs,
        "generate_s": gen[0],
        "note": f"stored={stored:,}; merge on MA_GCS; no validation, no Vietnam rules",
    }


SKIP_QUICK = {"peer_dlt_merge"}  # ~4,000 records/s: it would double the quick run
STEPS = {"peer_pandas_gx_upsert": step_peer_pandas_gx_upsert, "peer_dlt_merge": step_peer_dlt_merge}


def core_refusals(dsn: str, n: int, batch_size: int) -> dict[int, set[str]]:
    """Rule codes of each record the core refused at first load, by global index."""
    from certpipe import warehouse

    with warehouse.connect(dsn) as conn:
        first = conn.execute("SELECT min(batch_id) FROM wh.ingest_batch WHERE source = %s", (bench.SOURCE,)).fetchone()[
            0
        ]
        rows = conn.execute(
            "SELECT (b.meta->>'offset')::int + r.row_no - 1, r.reasons FROM wh.batch_record r "
            "JOIN wh.ingest_batch b USING (batch_id) WHERE r.batch_id BETWEEN %s AND %s AND r.outcome = 'refused'",
            (first, first + -(-n // batch_size) - 1),
        ).fetchall()
    return {i: {r["code"] for r in reasons} for i, reasons in rows}


def refusal_check(peer: dict, core: dict[int, set[str]]) -> str:
    """[ok] when the pandas peer refuses exactly the records the core refuses for a rule of the GX suite."""
    from certpipe.core.validate import _suite_json

    suite_rules = {(e.get("meta") or {}).get("rule") or "CODE_FORMAT" for e in _suite_json(bench.KIND)["expectations"]}
    mine = set(peer["refused"])
    theirs = {i for i, codes in core.items() if codes & suite_rules}
    only_core = len(set(core) - mine)
    ok = mine == theirs
    detail = (
        f"both {len(mine):,} records (GX suite rules); the core refuses {only_core:,} more (Vietnam's rules, "
        "unreadable dates)"
        if ok
        else f"peer {len(mine):,}, core {len(theirs):,}, peer only {len(mine - theirs):,}, "
        f"core only {len(theirs - mine):,}"
    )
    return f"[{'ok' if ok else 'DIFFER':>6}] pandas+GX peer's refusals where the suites overlap: {detail}"
