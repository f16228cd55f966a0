"""Smoke test of the Excel steps of devtools.bench on a small file: counts only, never timings."""

from __future__ import annotations

from devtools import bench, bench_excel

N = 300


def test_excel_bench_steps_agree(pg_server):
    results = bench_excel.run(
        pg_server.admin_url, N, lambda name, dsn, n, b: bench_excel.STEPS[name](dsn, n, b), log=lambda m: None
    )
    assert {k: r["records"] for k, r in results.items()} == {
        "excel_read": N,
        "excel_read_streamed": N,
        "excel_end_to_end": N,
        "pandas_read_excel_openpyxl": N,
    }
    counts = results["excel_end_to_end"]["counts"]
    assert sum(counts.values()) == N and counts["stored"] > N * 0.9
    fake = {
        "copy_baseline": {"records": 1, "seconds": 1.0, "peak_mib": 1},
        "generate": {"records": 1, "seconds": 1.0},
        **{
            s: {"records": 1, "seconds": 1.0, "peak_mib": 1, "gx_init": 1.0}
            for s in ("first_load", "unchanged_rerun", "changed_10pct")
        },
    }
    rows, targets = bench.report(fake, {}, 1, results)
    steps = [r["step"] for r in rows]
    assert "excel_read" in steps and "excel_end_to_end" in steps and "pandas_read_excel_openpyxl" in steps
    assert any(t["target"].startswith("Excel reading") for t in targets)
