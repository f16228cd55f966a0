"""The Excel inbox bench through the DAG (devtools/bench_excel_dag.py) at a tiny size: every file answered
through real excel_inbox DAG runs, and the figures printed. Counts only, never timings."""

from __future__ import annotations

from devtools import bench_excel_dag

FILES, ROWS = 3, 50


def test_every_dropped_file_gets_its_result_through_the_dag(pg_server, airflow_db):
    r = bench_excel_dag.run(pg_server.admin_url, FILES, ROWS)
    assert r["answered"] == FILES and r["left"] == 0
    assert r["statuses"] == {"done": FILES}
    assert r["received"] == FILES * ROWS
    assert all(x["state"] == "success" for x in r["runs"])
    assert 0 < r["latency_median_s"] <= r["latency_max_s"] < r["worst_case_s"]
    assert r["peak_mib"] > 0

    text = bench_excel_dag.report(r)
    for label in ("files per minute", "rows per second", "drop -> result per file", "peak RSS", "worst case"):
        assert label in text
    assert f"files answered: {FILES}/{FILES}" in text
