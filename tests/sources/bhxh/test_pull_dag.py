"""bhxh_pull end to end: dag.test() per data interval against the sandbox BHXH over HTTP and a real PostgreSQL."""

import datetime as dt
import json

import httpx

from tests.sources.bhxh.conftest import (
    CLIENT,
    WINDOWS,
    fault,
    load_windows,
    personal_values,
    run_dag,
    served,
    texts_of_run,
    window_data,
)

PROVINCES = ("01", "96")


def snapshot(wh):
    return wh.execute("SELECT count(*), max(updated_at), sum(version) FROM wh.certificate").fetchone(), wh.execute(
        "SELECT count(*) FROM wh.certificate_version"
    ).fetchone()[0]


def marks(wh):
    return {
        (r, k): m
        for r, k, m in wh.execute("SELECT source_ref, kind, watermark FROM wh.source_watermark WHERE source = 'bhxh'")
    }


def batches(wh):
    return wh.execute(
        "SELECT batch_id, source_ref, kind, status, received, stored, updated, unchanged, refused, "
        "meta->>'window_end' FROM wh.ingest_batch WHERE source = 'bhxh' ORDER BY batch_id"
    ).fetchall()


def labels(run) -> set[tuple[str, str]]:
    """(task, label) of the mapped task instances of a run: the UI shows province codes, not 0, 1, 2."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run.run_id).all()
        return {(ti.task_id.rsplit(".", 1)[-1], ti.rendered_map_index) for ti in tis if ti.map_index >= 0}


def test_catch_up_pulls_every_window_once_and_a_rerun_changes_nothing(bhxh_env, wh):
    data = window_data()
    load_windows(bhxh_env, data)
    runs = [run_dag("bhxh_pull", logical_date=end) for _, end in WINDOWS]  # catch-up: one run per missed hour
    assert [r.state for r in runs] == ["success"] * len(WINDOWS)
    assert labels(runs[0]) == {
        (f"{s}_{k}", p) for s in ("extract", "ingest") for k in ("gcs", "gbt") for p in PROVINCES
    }

    rows = batches(wh)
    assert len(rows) == len(WINDOWS) * len(PROVINCES) * 2
    assert all(r[3] == "ingested" for r in rows)
    valid = {k: {i for i in d["window"] if i not in d["expected"]} for k, d in data.items()}
    expected_refused = {i for d in data.values() for i in d["expected"] if i in d["window"]}
    assert expected_refused
    # every record landed once, in the batch of its own window, and has exactly one outcome
    landed = wh.execute(
        "SELECT l.source_record_id, b.meta->>'window_end' FROM wh.landing_record l "
        "JOIN wh.ingest_batch b USING (batch_id) WHERE b.source = 'bhxh'"
    ).fetchall()
    window_of = {i: w for d in data.values() for i, w in d["window"].items()}
    assert sorted(i for i, _ in landed) == sorted(window_of)
    assert all(dt.datetime.fromisoformat(end) == WINDOWS[window_of[i]][1] for i, end in landed)
    assert wh.execute("SELECT count(*) FROM wh.batch_record").fetchone()[0] == len(landed)
    # counts add up: nothing lost, nothing double-counted
    received, stored, refused = (sum(r[i] for r in rows) for i in (4, 5, 8))
    assert received == len(window_of) and stored + refused == received
    assert stored == sum(len(v) for v in valid.values())
    for kind in ("GCS", "GBT"):
        keys = {k for (k,) in wh.execute("SELECT cert_key FROM wh.certificate WHERE kind = %s", (kind,))}
        key_field = "MA_GCS" if kind == "GCS" else "MA_GBT"
        assert keys == {e["record"][key_field] for e in data[kind]["items"] if e["id"] in valid[kind]}
    # refused records are kept with their reasons, per batch
    refused_rows = wh.execute(
        "SELECT b.source_record_id, b.reasons, r.payload IS NOT NULL FROM wh.batch_record b "
        "JOIN wh.refused_record r USING (batch_id, row_no) WHERE b.outcome = 'refused'"
    ).fetchall()
    assert {i for i, _, _ in refused_rows} == expected_refused
    assert all(reasons and all(x["code"] and x["message"] for x in reasons) for _, reasons, _ in refused_rows)
    assert {r[0] for r in wh.execute("SELECT DISTINCT source FROM wh.certificate_source")} == {"bhxh"}
    assert marks(wh) == {(p, k): WINDOWS[-1][1] for p in PROVINCES for k in ("GCS", "GBT")}

    # re-running a window: new batches, but the warehouse does not change and the watermark stays
    before = snapshot(wh)
    assert run_dag("bhxh_pull", logical_date=WINDOWS[1][1]).state == "success"
    assert snapshot(wh) == before
    rerun = batches(wh)[len(rows) :]
    assert rerun and all(r[5] == r[6] == 0 for r in rerun)
    assert sum(r[7] for r in rerun) == sum(1 for i, w in window_of.items() if w == 1 and i not in expected_refused)
    assert marks(wh) == {(p, k): WINDOWS[-1][1] for p in PROVINCES for k in ("GCS", "GBT")}


def test_failed_run_keeps_the_watermark_and_the_next_run_covers_the_gap(bhxh_env, wh):
    data = window_data()
    load_windows(bhxh_env, data)
    assert run_dag("bhxh_pull", logical_date=WINDOWS[0][1]).state == "success"
    first = snapshot(wh)
    fault(bhxh_env, target="pull", status=503, count=1000)
    assert run_dag("bhxh_pull", logical_date=WINDOWS[1][1]).state == "failed"
    assert marks(wh) == {(p, k): WINDOWS[0][1] for p in PROVINCES for k in ("GCS", "GBT")}
    assert snapshot(wh) == first
    assert not [r for r in batches(wh) if dt.datetime.fromisoformat(r[9]) == WINDOWS[1][1]]  # nothing half-landed
    httpx.delete(f"{bhxh_env}/_control/bhxh/faults").raise_for_status()

    assert run_dag("bhxh_pull", logical_date=WINDOWS[2][1]).state == "success"  # pulls from the watermark
    valid = sum(1 for d in data.values() for i in d["window"] if i not in d["expected"])
    assert wh.execute("SELECT count(*) FROM wh.certificate").fetchone()[0] == valid
    assert marks(wh) == {(p, k): WINDOWS[2][1] for p in PROVINCES for k in ("GCS", "GBT")}
    assert sum(r[5] for r in batches(wh)) == valid  # each certificate stored exactly once


def test_flaky_bhxh_loses_nothing(bhxh_env, wh, monkeypatch, capfd, caplog):
    """Expired token, 429 with Retry-After, 5xx, a timeout, malformed JSON and a page changing mid-pull."""
    monkeypatch.setenv("AIRFLOW_VAR_BHXH_CLIENT", json.dumps({**CLIENT, "attempts": 6}))
    data = window_data()
    pii = personal_values(data)
    assert len(pii) > 100
    load_windows(bhxh_env, data)
    httpx.post(f"{bhxh_env}/_control/bhxh/tokens/expire")
    for body in (
        {"status": 429, "retry_after": 0},
        {"status": 502},
        {"delay_seconds": 2.5},
        {"malformed": True},
        {"mutate": True},
    ):
        fault(bhxh_env, target="pull", **body)
    for _, end in WINDOWS:
        run = run_dag("bhxh_pull", logical_date=end)
        assert run.state == "success"
        texts = texts_of_run(run, capfd, caplog)  # no personal data in logs or XCom, refusals included
        assert "batch_id" in texts["xcom"]
        for where, text in texts.items():
            assert not [v for v in pii if v in text], f"personal data in {where}"
    valid = {i for d in data.values() for i in d["window"] if i not in d["expected"]}
    stored = {i for (i,) in wh.execute("SELECT source_record_id FROM wh.certificate_source")}
    assert stored == valid
    assert sum(r[5] for r in batches(wh)) == len(valid)
    s = served(bhxh_env)
    assert s["pull:429"] == s["pull:502"] == 1 and s["pull:200"] > len(WINDOWS) * len(PROVINCES) * 2
