"""Smoke test of devtools.bench on a tiny backfill: outcome counts only, never timings."""

from __future__ import annotations

import os

from devtools import bench, bench_peers

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

        # the peers, on the same records and database: the pandas + GX one refuses what the core refuses where
        # the suites overlap, and only that; dlt stores every record (it validates nothing)
        pandas = bench_peers.step_peer_pandas_gx_upsert(dsn, N, BATCH)
        core = bench_peers.core_refusals(dsn, N, BATCH)
        assert 0 < len(pandas["refused"]) < len(core)
        assert bench_peers.refusal_check(pandas, core).startswith("[    ok]")
        dlt = bench_peers.step_peer_dlt_merge(dsn, N, BATCH)
        with warehouse.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM peer_pandas.certificate").fetchone()[0] == N - len(
                pandas["refused"]
            )
            assert conn.execute("SELECT count(*) FROM peer_dlt.certificate").fetchone()[0] == dlt["records"] == N
    finally:
        pg_server.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def test_backfill_records_beyond_the_generators_facilities():
    """10 M records need more facilities than the generator's own (2.4 M certificate numbers): the bench adds
    some in the same provinces; up to 1 M the records stay the generator's own."""
    from itertools import islice

    big = list(islice(bench.records(10_000_000), 100))
    assert len({r["MA_GCS"] for r in big}) == 100
    from sandbox.generate import generate_bulk_births

    same = generate_bulk_births(1_000_000, bench.SEED)
    assert list(islice(bench.records(1_000_000), 100)) == list(islice(same, 100))
