"""Bench of the data-quality page: does it answer in under a second on a warehouse with 1,000,000 certificates and
10,000 batches?

    python -m devtools.bench_quality [--quick] [--pg-url URL] [--json PATH]

Fills a fresh, migrated warehouse with SQL (not timed): 1M certificates, 10,000 batches over 180 days from 45
sources (HIS hospitals, BHXH provinces, Excel inbox facilities), one outcome row per record (1M wh.batch_record
rows, ~3 % refused with reasons), one hospital whose refusal rate jumps in the last 10 days, watermarks, an
Excel ledger, DHIS2 events. The summaries of migration 0015 are filled by their triggers as the batches become
acknowledged, as in production. Then it times the page's requests through its FastAPI app (the api-server's
login left out: that is Airflow's), each the median of 5 after one warm-up, and the summary triggers' cost on one
50,000-record batch. `--quick`: 1/10 of everything. Not a test: prints a table; targets met or missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

N_CERTS, N_BATCHES, DAYS = 1_000_000, 10_000, 180
TARGET_S = 1.0
RULES = [
    ("REQUIRED", "HOTEN_NND"),
    ("ID_FORMAT", "SO_CCCD_NND"),
    ("DATE_INVALID", "NGAY_CT"),
    ("CERT_FORMAT", "MA_GCS"),
    ("WEIGHT_RANGE", "CAN_NANG_CON"),
    ("CCCD_SEX", "SO_CCCD_NND"),
    ("COMMUNE_CODE", "MAXA_CU_TRU"),
    ("DUPLICATE_IN_BATCH", "MA_GCS"),
]


def populate(dsn: str, n_certs: int, n_batches: int) -> dict:
    """The warehouse of the bench, in SQL. Returns what was made and how long it took (not part of the figures)."""
    import psycopg

    rules = json.dumps([{"code": c, "field": f, "message": "..."} for c, f in RULES])
    t0 = time.perf_counter()
    per_batch = n_certs // n_batches
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SET synchronous_commit = off")
        c.execute(
            """
            CREATE TEMP TABLE src AS
            SELECT i, CASE WHEN i <= 30 THEN 'his' WHEN i <= 35 THEN 'bhxh' ELSE 'excel' END AS source,
                   CASE WHEN i <= 30 THEN lpad((1000 + i)::text, 5, '0') WHEN i <= 35 THEN lpad(i::text, 2, '0')
                        ELSE lpad((2000 + i)::text, 5, '0') END AS ref
            FROM generate_series(1, 45) i
            """
        )
        # batches: spread over DAYS days up to now, 'landed' first (the triggers count them once acknowledged)
        c.execute(
            """
            INSERT INTO wh.ingest_batch (source, source_ref, kind, status, run_id, created_at, received)
            SELECT s.source, s.ref, CASE WHEN b %% 3 = 0 THEN 'GBT' ELSE 'GCS' END, 'landed',
                   'scheduled__' || to_char(t, 'YYYY-MM-DD"T"HH24:MI:SS') || '+00:00', t, %(per)s
            FROM generate_series(1, %(n)s) b
            JOIN src s ON s.i = 1 + (b * 7919) %% 45,
            LATERAL (SELECT now() - make_interval(secs => (%(n)s - b) * (%(days)s * 86400.0 / %(n)s))) x(t)
            """,
            {"n": n_batches, "per": per_batch, "days": DAYS},
        )
        # one outcome per record; ~3 % refused (hospital 00001: 25 % in the last 10 days), reasons from RULES
        c.execute(
            """
            INSERT INTO wh.batch_record (batch_id, row_no, source_record_id, cert_key, outcome, reasons)
            SELECT b.batch_id, r, 'r' || r, NULL,
                   CASE WHEN h < CASE WHEN b.source_ref = '01001' AND b.created_at > now() - interval '10 days'
                                      THEN 250 ELSE 30 END THEN 'refused'
                        WHEN h < 100 THEN 'updated' WHEN h < 300 THEN 'unchanged' ELSE 'stored' END,
                   CASE WHEN h < CASE WHEN b.source_ref = '01001' AND b.created_at > now() - interval '10 days'
                                      THEN 250 ELSE 30 END
                        THEN jsonb_build_array(%(rules)s::jsonb -> (h %% 8)::int) END
            FROM wh.ingest_batch b, generate_series(1, b.received) r,
                 LATERAL (SELECT abs(hashint8(b.batch_id * 100000 + r)::bigint) %% 1000) x(h)
            """,
            {"rules": rules},
        )
        c.execute(
            """
            UPDATE wh.ingest_batch b SET status = 'acknowledged', ingested_at = b.created_at + interval '5 s',
                   acknowledged_at = b.created_at + interval '9 s', stored = a.stored, updated = a.updated,
                   unchanged = a.unchanged, refused = a.refused, refusals_by_rule = a.rules
            FROM (SELECT batch_id, count(*) FILTER (WHERE outcome = 'stored') AS stored,
                         count(*) FILTER (WHERE outcome = 'updated') AS updated,
                         count(*) FILTER (WHERE outcome = 'unchanged') AS unchanged,
                         count(*) FILTER (WHERE outcome = 'refused') AS refused,
                         COALESCE((SELECT jsonb_object_agg(code, n) FROM (SELECT e->>'code' AS code, count(*) AS n
                                   FROM wh.batch_record r2, jsonb_array_elements(r2.reasons) e
                                   WHERE r2.batch_id = r.batch_id AND r2.outcome = 'refused' GROUP BY 1) q),
                                  '{}') AS rules
                  FROM wh.batch_record r GROUP BY batch_id) a
            WHERE a.batch_id = b.batch_id
            """
        )
        batches_s = time.perf_counter() - t0
        c.execute(
            """
            INSERT INTO wh.certificate (kind, cert_key, facility_code, issued_on, record, content_hash, first_batch_id,
                                        last_batch_id, last_source)
            SELECT 'GCS', lpad(i::text, 7, '0') || '.GCS.01001.25', '01001', date '2025-01-01' + (i %% 365), '{}',
                   decode(md5(i::text), 'hex'), 1, 1, 'his'
            FROM generate_series(1, %(n)s) i
            """,
            {"n": n_certs},
        )
        c.execute(
            """
            INSERT INTO wh.source_watermark (source, source_ref, kind, watermark, updated_at)
            SELECT source, ref, k, now() - make_interval(hours => i), now() - make_interval(hours => i)
            FROM src, unnest(ARRAY['GCS', 'GBT']) k
            """
        )
        c.execute(
            """
            INSERT INTO wh.excel_file
                (content_hash, facility_code, file_name, inbox_key, size_bytes, status, claimed_at)
            SELECT decode(md5('f' || i), 'hex'), lpad((2036 + i % 10)::text, 5, '0'), 'f.xlsx', 'inbox/f.xlsx', 1000,
                   (ARRAY['done', 'done', 'done', 'quarantined', 'claimed', 'landed'])[1 + i % 6],
                   now() - make_interval(mins => i)
            FROM generate_series(1, 5000) i
            """
        )
        c.execute(
            """
            INSERT INTO wh.dhis2_death_event (event_uid, org_unit, commune_code, data_values, last_seen_at)
            SELECT 'E' || lpad(i::text, 10, '0'), 'OU1', '00004', '{}', now() - interval '3 hours'
            FROM generate_series(1, 20000) i
            """
        )
        c.execute("VACUUM ANALYZE")
        made = c.execute(
            "SELECT (SELECT count(*) FROM wh.certificate), (SELECT count(*) FROM wh.ingest_batch), "
            "(SELECT count(*) FROM wh.batch_record), (SELECT count(*) FROM wh.batch_record WHERE outcome = 'refused'), "
            "(SELECT count(*) FROM quality.daily), (SELECT count(*) FROM quality.daily_field)"
        ).fetchone()
    keys = ("certificates", "batches", "batch_records", "refused", "summary_rows", "field_summary_rows")
    return {**dict(zip(keys, made, strict=True)), "batches_s": batches_s, "total_s": time.perf_counter() - t0}


def requests(dsn: str) -> list[tuple[str, str]]:
    import psycopg

    with psycopg.connect(dsn) as c:
        big = c.execute("SELECT batch_id FROM wh.ingest_batch ORDER BY refused DESC LIMIT 1").fetchone()[0]
        run_id = c.execute("SELECT run_id FROM wh.ingest_batch WHERE batch_id = %s", (big,)).fetchone()[0]
    return [
        ("overview, last 14 days", "/"),
        ("overview, 90 days", "/?from=" + _days_ago(89)),
        ("overview, 365 days", "/?from=" + _days_ago(364)),
        ("overview, 90 days, one rule", "/?rule=ID_FORMAT&from=" + _days_ago(89)),
        ("overview, one facility", "/?source=his&facility=01001"),
        ("overview JSON", "/api/overview"),
        ("batch drill-down", f"/batch/{big}"),
        ("DAG-run view", f"/run?dag_id=his_pull&run_id={run_id}"),
        ("operations", "/ops"),
    ]


def _days_ago(n: int) -> str:
    import datetime as dt

    from certpipe import clock

    return (clock.vn_today() - dt.timedelta(days=n)).isoformat()


def time_requests(dsn: str, repeat: int = 5) -> list[dict]:
    from fastapi.testclient import TestClient

    from certpipe.quality.app import create_app

    client = TestClient(create_app(lambda: dsn, authenticate=False))
    out = []
    for label, path in requests(dsn):
        r = client.get(path)  # warm-up (and check)
        if r.status_code != 200:
            raise SystemExit(f"{label}: HTTP {r.status_code}: {r.text[:300]}")
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            client.get(path)
            times.append(time.perf_counter() - t)
        out.append({"request": label, "path": path, "median_s": statistics.median(times), "max_s": max(times)})
    return out


def trigger_cost(dsn: str, rows: int = 50_000) -> dict:
    """Seconds to insert one batch's outcome rows (1 % refused) with and without the summary trigger, rolled back."""
    import psycopg

    sql = (
        "INSERT INTO wh.batch_record (batch_id, row_no, outcome, reasons) SELECT %s, r, "
        "CASE WHEN r %% 100 = 0 THEN 'refused' ELSE 'stored' END, CASE WHEN r %% 100 = 0 THEN "
        '\'[{"code": "REQUIRED", "field": "HOTEN_NND", "message": "..."}]\'::jsonb END FROM generate_series(1, %s) r'
    )
    out = {}
    with psycopg.connect(dsn) as c:
        batch = c.execute(
            "INSERT INTO wh.ingest_batch (source, source_ref, kind) VALUES ('bench', 'x', 'GCS') RETURNING batch_id"
        ).fetchone()[0]
        c.commit()
        for label, disable in (("with", False), ("without", True)):
            best = None
            for _ in range(3):
                with c.transaction(force_rollback=True):
                    if disable:
                        c.execute("ALTER TABLE wh.batch_record DISABLE TRIGGER batch_record_quality")
                    t = time.perf_counter()
                    c.execute(sql, (batch, rows))
                    s = time.perf_counter() - t
                    best = s if best is None else min(best, s)
            out[f"{label}_trigger_s"] = best
    out["rows"] = rows
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devtools.bench_quality", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1/10 scale (100,000 certificates, 1,000 batches)")
    ap.add_argument("--pg-url", default=os.environ.get("CERTPIPE_BENCH_PG_URL"))
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    scale = 10 if a.quick else 1
    n_certs, n_batches = N_CERTS // scale, N_BATCHES // scale

    import logging

    import psycopg

    from certpipe import warehouse
    from devtools.embedded_pg import EmbeddedPostgres, free_port

    logging.disable(logging.WARNING)
    t0 = time.perf_counter()
    db = f"certpipe_bench_quality_{os.getpid()}"
    with contextlib.ExitStack() as stack:
        if a.pg_url:
            admin = a.pg_url
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="certpipe-bench-quality-"))
            pg = EmbeddedPostgres(Path(tmp) / "pg", free_port(), durable=False).start()  # throw-away: relaxed
            stack.callback(pg.destroy)
            admin = pg.url
        dsn = admin.rsplit("/", 1)[0] + "/" + db
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{db}"')
            c.execute(f'CREATE DATABASE "{db}"')
        stack.callback(_drop, admin, db)
        warehouse.migrate(dsn)
        print(f"... populating {n_certs:,} certificates, {n_batches:,} batches", file=sys.stderr, flush=True)
        made = populate(dsn, n_certs, n_batches)
        print(f"... populated in {made['total_s']:.0f} s; timing the page", file=sys.stderr, flush=True)
        timings = time_requests(dsn)
        cost = trigger_cost(dsn)
    worst = max(t["median_s"] for t in timings)
    print(
        f"\nData-quality page bench: {made['certificates']:,} certificates, {made['batches']:,} batches, "
        f"{made['batch_records']:,} outcome rows ({made['refused']:,} refused), {os.cpu_count()} CPUs"
    )
    print(f"summaries: {made['summary_rows']:,} daily rows, {made['field_summary_rows']:,} rule x field rows\n")
    print(f"{'request':34} {'median':>9} {'max':>9}")
    for t in timings:
        print(f"{t['request']:34} {t['median_s'] * 1000:7.0f} ms {t['max_s'] * 1000:7.0f} ms")
    verdict = "met" if worst < TARGET_S else "MISSED"
    print(f"\ntarget: every request < {TARGET_S:.0f} s (median): slowest {worst * 1000:.0f} ms: {verdict}")
    print(
        f"summary triggers on one {cost['rows']:,}-record batch (1 % refused): "
        f"{cost['with_trigger_s'] * 1000:.0f} ms with, {cost['without_trigger_s'] * 1000:.0f} ms without"
    )
    print(f"bench wall-clock: {time.perf_counter() - t0:.0f} s")
    if a.json:
        a.json.write_text(json.dumps({"made": made, "requests": timings, "trigger": cost, "target_s": TARGET_S}))
    return 0 if worst < TARGET_S else 1


def _drop(admin: str, db: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
