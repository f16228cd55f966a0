"""The page's figures against the warehouse, after a real HIS pull of the sandbox (the app without the api-server:
its login is tested in the browser test). Also: bad filters answer 400, a missing batch 404, nothing personal."""

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from certpipe import clock
from certpipe.quality.app import create_app
from tests.dags.test_his_pull import run_dag


@pytest.fixture
def pulled(his_env, wh, warehouse_dsn):
    assert run_dag().state == "success"
    return TestClient(create_app(lambda: warehouse_dsn, authenticate=False))


def test_overview_matches_the_warehouse(pulled, wh):
    data = pulled.get("/api/overview").json()
    want = wh.execute(
        "SELECT sum(received), sum(stored), sum(updated), sum(unchanged), sum(refused), count(*) FROM wh.ingest_batch"
    ).fetchone()
    t = data["totals"]
    assert (t["received"], t["stored"], t["updated"], t["unchanged"], t["refused"], t["batches"]) == tuple(want)
    assert t["refused"] > 0
    today = clock.vn_today().isoformat()
    assert data["series"][-1]["day"] == today and data["series"][-1]["received"] == want[0]
    per_fac = {
        (r[0], r[1]): r[2:]
        for r in wh.execute("SELECT source, source_ref, sum(received), sum(refused) FROM wh.ingest_batch GROUP BY 1, 2")
    }
    assert {(e["source"], e["facility"]): (e["received"], e["refused"]) for e in data["facilities"]} == per_fac
    rules = dict(
        wh.execute(
            "SELECT e.key, sum(e.value::int) FROM wh.ingest_batch, jsonb_each_text(refusals_by_rule) e GROUP BY 1"
        ).fetchall()
    )
    assert {r["rule"]: r["records"] for r in data["rules"]} == rules
    assert all(r["message"] for r in data["rules"])  # the Vietnamese message of every rule
    assert len(data["batches"]) == 6


def test_rule_and_facility_filters(pulled, wh):
    rule, n = wh.execute(
        "SELECT e.key, sum(e.value::int) FROM wh.ingest_batch, jsonb_each_text(refusals_by_rule) e "
        "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1"
    ).fetchone()
    data = pulled.get("/api/overview", params={"rule": rule}).json()
    assert data["totals"]["rule_refused"] == n
    assert all(rule in b["refusals_by_rule"] for b in data["batches"]) and data["batches"]
    one = pulled.get("/api/overview", params={"source": "his", "facility": "79034", "kind": "GBT"}).json()
    want = wh.execute(
        "SELECT sum(received), sum(refused) FROM wh.ingest_batch WHERE source_ref = '79034' AND kind = 'GBT'"
    ).fetchone()
    assert (one["totals"]["received"], one["totals"]["refused"]) == tuple(want)
    assert {b["source_ref"] for b in one["batches"]} == {"79034"}


def test_batch_drill_down_counts_rules_fields_and_rows(pulled, wh):
    batch_id = wh.execute("SELECT batch_id FROM wh.ingest_batch ORDER BY refused DESC LIMIT 1").fetchone()[0]
    b = pulled.get(f"/api/batch/{batch_id}").json()
    want = wh.execute(
        "SELECT e->>'code', e->>'field', array_agg(DISTINCT r.row_no ORDER BY r.row_no) FROM wh.batch_record r, "
        "jsonb_array_elements(r.reasons) e WHERE r.batch_id = %s AND r.outcome = 'refused' GROUP BY 1, 2",
        (batch_id,),
    ).fetchall()
    assert {(x["rule"], x["field"]): x["rows"] for x in b["refusals"]} == {(c, f): rows for c, f, rows in want}
    assert all(x["records"] == len(x["rows"]) for x in b["refusals"])
    html = pulled.get(f"/batch/{batch_id}").text
    for x in b["refusals"]:
        assert x["rule"] in html and str(escape(x["message"])) in html


def test_run_view_lists_the_runs_batches(pulled, wh):
    run_id = wh.execute("SELECT run_id FROM wh.ingest_batch LIMIT 1").fetchone()[0]
    r = pulled.get("/api/run", params={"dag_id": "his_pull", "run_id": run_id}).json()
    assert len(r["batches"]) == 6
    assert r["totals"]["refused"] == wh.execute("SELECT sum(refused) FROM wh.ingest_batch").fetchone()[0]
    one = pulled.get(
        "/api/run",
        params={"dag_id": "his_pull", "run_id": run_id, "task_id": "hospital.extract_gbt", "map_index": "{MAP_INDEX}"},
    )
    assert one.status_code == 200 and {b["kind"] for b in one.json()["batches"]} == {"GBT"}


def test_pages_render_without_personal_data(pulled, wh):
    people = wh.execute(
        "SELECT record->>'HOTEN_NND', record->>'SO_CCCD_NND', record->>'HO_TEN', record->>'SO_GIAYTO', cert_key "
        "FROM wh.certificate"
    ).fetchall()
    refused = wh.execute("SELECT payload::text FROM wh.refused_record").fetchall()
    values = {v for row in people for v in row if v and len(v) >= 6}
    values |= {
        v for (p,) in refused for v in re.findall(r'"(?:HOTEN_NND|HO_TEN|SO_CCCD_NND|SO_GIAYTO)": "([^"]{6,})"', p)
    }
    assert values
    batch_id = wh.execute("SELECT max(batch_id) FROM wh.ingest_batch").fetchone()[0]
    run_id = wh.execute("SELECT run_id FROM wh.ingest_batch LIMIT 1").fetchone()[0]
    for path in ("/", "/?rule=CCCD_SEX", "/ops", f"/batch/{batch_id}", f"/run?dag_id=his_pull&run_id={run_id}"):
        r = pulled.get(path)
        assert r.status_code == 200, path
        assert "frame-ancestors 'self'" in r.headers["content-security-policy"]
        leaked = [v for v in values if v in r.text]
        assert not leaked, f"{path} shows personal data"


def test_bad_input_is_answered_not_crashed(pulled):
    assert pulled.get("/?from=yesterday").status_code == 400
    assert "must be a date (YYYY-MM-DD)" in pulled.get("/?from=yesterday").text
    assert pulled.get("/api/overview", params={"from": "2026-02-01", "to": "2026-01-01"}).status_code == 400
    assert pulled.get("/?rule=<script>").status_code == 400
    assert pulled.get("/batch/987654").status_code == 404
    long_ago = (clock.vn_today() - dt.timedelta(days=400)).isoformat()
    assert pulled.get("/", params={"from": long_ago}).status_code == 400


def test_warehouse_down_is_a_503_page(tmp_path):
    app = TestClient(create_app(lambda: "host=127.0.0.1 port=1 dbname=x connect_timeout=2", authenticate=False))
    r = app.get("/")
    assert r.status_code == 503 and "Warehouse unavailable" in r.text
