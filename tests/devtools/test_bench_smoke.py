"""Smoke test of devtools.bench on a tiny backfill: outcome counts only, never timings."""

from __future__ import annotations

import os

from devtools import bench

N, BATCH = 2_000, 1_000


def test_bench_counts(pg_server):
    from certpipe import warehouse

    db = f"certpipe_bench_smoke_{os.getpid()}"
    pg_server.execute(f'DROP DATABASE IF EXISTS "{db}"')
    pg_server.execute(f'CREATE DATABASE "{db}"')
    try:
        dsn = pg_server.url_for(db)
        warehouse.migrate(dsn)
        results = {name: fn(dsn, N, BATCH) for name, fn in bench.STEPS.items()}

        assert results["generate"]["records"] == N
        assert results["copy_baseline"]["records"] == N
        bad = results["first_load"]["bad"]
        assert 0 < bad < N * 0.05  # the generator's own ~1 % bad records
        assert results["first_load"]["counts"] == {"stored": N - bad, "updated": 0, "unchanged": 0, "refused": bad}
        assert results["unchanged_rerun"]["counts"] == {"stored": 0, "updated": 0, "unchanged": N - bad, "refused": bad}
        changed = results["changed_10pct"]
        assert changed["counts"] == changed["expected"]
        assert N // 10 - N // 100 - bad <= changed["counts"]["updated"] <= N // 10 - N // 100
        assert all(c.startswith("[    ok]") for c in bench.check_counts(results, N))
    finally:
        pg_server.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
