"""Alerts: a failed task and a batch refused above the threshold reach a real webhook on loopback, with
identifiers and counts only (no personal data)."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest

from certpipe import alerts
from certpipe.quality import page_url
from tests.dags.test_his_pull import run_dag
from tests.dags.test_personal_data import personal_values


@pytest.fixture
def alerting(webhook, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ALERTS_WEBHOOK", json.dumps({"conn_type": "http", "host": webhook.url}))

    def configure(**cfg):
        monkeypatch.setenv("AIRFLOW_VAR_ALERTING", json.dumps({"webhook_conn_id": "alerts_webhook", **cfg}))

    return configure


def test_his_pull_failure_and_high_refusal_rate_reach_the_webhook(his_env, alerting, webhook, monkeypatch):
    # two hospitals: 79034 is down (its extract tasks fail), 01020 sends a feed with deliberately bad records
    monkeypatch.setenv(
        "AIRFLOW_VAR_HIS_HOSPITALS",
        json.dumps(
            [
                {"facility": f, "name": f"BV {f}", "attempts": 1, "backoff": 0.05, "timeout": 5}
                for f in ("01020", "79034")
            ]
        ),
    )
    pii = personal_values(his_env)
    httpx.post(f"{his_env}/_control/his/79034/faults", json={"status": 503, "count": 1000}).raise_for_status()
    alerting(refusal_rate=0.0)
    try:
        run = run_dag()
    finally:
        httpx.post(f"{his_env}/_control/his/79034/faults", json={"status": 503, "count": 0})
    assert run.state == "failed"

    failed = webhook.events("task_failed")
    assert {(a["dag_id"], a["task_id"]) for a in failed} == {
        ("his_pull", "hospital.extract_gcs"),
        ("his_pull", "hospital.extract_gbt"),
    }
    assert all(a["run_id"] == run.run_id and a["map_index"] == 1 and a["error_type"] for a in failed), failed
    for a in failed:  # a link to that task instance's batches on the data-quality page
        assert a["quality_url"] == page_url(
            "/run", dag_id="his_pull", run_id=run.run_id, task_id=a["task_id"], map_index=1
        )

    refusals = webhook.events("refusal_rate")
    assert {a["kind"] for a in refusals} == {"GCS", "GBT"}
    for a in refusals:
        assert a["dag_id"] == "his_pull" and a["task_id"].startswith("hospital.ingest_") and a["run_id"] == run.run_id
        assert a["source"] == "his" and a["source_ref"] == "01020" and a["batch_id"] > 0
        assert 0 < a["refused"] <= a["received"] and a["refusal_rate"] == round(a["refused"] / a["received"], 4)
        assert sum(a["refusals_by_rule"].values()) >= a["refused"] and all(a["refusals_by_rule"])
        assert a["quality_url"] == page_url(f"/batch/{a['batch_id']}")  # the batch's drill-down

    # identifiers, counts and rule codes only: no key outside the whitelist, no personal value anywhere
    for a in webhook.received:
        assert set(a) <= alerts.ALLOWED, set(a) - alerts.ALLOWED
    body = b"\n".join(webhook.raw).decode()
    assert len(pii) > 100
    leaked = sorted(v for v in pii if v in body)
    assert not leaked, f"{len(leaked)} personal value(s) in the alerts"


def test_refusal_rate_threshold(webhook, alerting, monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example.vn/")
    alerting(refusal_rate=0.2, min_received=10)
    summary = {
        "batch_id": 7,
        "kind": "GCS",
        "facility": "01020",
        "received": 10,
        "stored": 8,
        "updated": 0,
        "unchanged": 0,
        "refused": 2,
        "refusals_by_rule": {"CCCD_FORMAT": 2},
        "record": {"HO_TEN": "Nguyễn Văn A"},
        "message": "Số CCCD 001203004005 sai",
    }
    assert alerts.check_refusal_rate(summary, source="his") is False  # 20 % is not above 20 %
    assert alerts.check_refusal_rate({**summary, "received": 5, "refused": 5}, source="his") is False  # too small
    assert alerts.check_refusal_rate({**summary, "refused": 3, "stored": 7}, source="excel") is True
    [a] = webhook.received
    assert a == {
        "event": "refusal_rate",
        "severity": "warning",
        "batch_id": 7,
        "source": "excel",
        "source_ref": "01020",
        "kind": "GCS",
        "received": 10,
        "stored": 7,
        "updated": 0,
        "unchanged": 0,
        "refused": 3,
        "refusal_rate": 0.3,
        "threshold": 0.2,
        "refusals_by_rule": {"CCCD_FORMAT": 2},
        "quality_url": "http://airflow.example.vn/data-quality/batch/7",
    }
    assert b"Nguy" not in webhook.raw[0] and b"001203004005" not in webhook.raw[0]


def test_broken_channel_never_fails_the_caller(alerting, monkeypatch, caplog):
    monkeypatch.setenv("AIRFLOW_CONN_ALERTS_WEBHOOK", json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9"}))
    alerting(refusal_rate=0.1)
    assert alerts.check_refusal_rate({"batch_id": 1, "received": 4, "refused": 4}, source="his") is True
    alerts.on_task_failure({"exception": ValueError("secret 001203004005"), "run_id": "r1"})
    assert "alert webhook alerts_webhook failed" in caplog.text and "001203004005" not in caplog.text


def test_email_channel_uses_the_smtp_connection(monkeypatch):
    sent = []

    class FakeSmtp:
        def __init__(self, smtp_conn_id):
            sent.append({"conn": smtp_conn_id})

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def send_email_smtp(self, **kw):
            sent[-1].update(kw)

    import airflow.providers.smtp.hooks.smtp as smtp

    monkeypatch.setattr(smtp, "SmtpHook", FakeSmtp)
    cfg = alerts.settings({"email": "ops@example.vn, oncall@example.vn", "smtp_conn_id": "smtp_alerts"})
    out = alerts.notify({"event": "task_failed", "dag_id": "his_pull", "task_id": "t", "record": {"x": 1}}, cfg)
    assert out == {"webhook": False, "email": True}
    [mail] = sent
    assert mail["conn"] == "smtp_alerts" and mail["to"] == ["ops@example.vn", "oncall@example.vn"]
    assert mail["subject"] == "[certpipe] task failed: his_pull.t" and "record" not in mail["html_content"]


def _no_personal_data(webhook, pii: set[str]) -> None:
    for a in webhook.received:
        assert set(a) <= alerts.ALLOWED, set(a) - alerts.ALLOWED
    body = b"\n".join(webhook.raw).decode()
    leaked = sorted(v for v in pii if v in body)
    assert not leaked, f"{len(leaked)} personal value(s) in the alerts"


def _pii(records) -> set[str]:
    from tests.dags.test_personal_data import PII_FIELDS

    return {str(r[f]).strip() for r in records for f in PII_FIELDS if len(str(r.get(f) or "").strip()) >= 6}


def test_excel_file_refused_above_threshold_alerts_a_clean_one_does_not(
    bucket, warehouse_dsn, alerting, webhook, tmp_path
):
    from tests.sources.excel.conftest import FACILITY, births, template_file
    from tests.sources.excel.test_inbox import drop, run

    alerting(refusal_rate=0.2)
    clean = list({r["MA_GCS"]: r for r in births(10, seed=21, bad_ratio=0)[0]}.values())
    drop(bucket, "sach.xlsx", template_file(tmp_path / "sach.xlsx", clean).read_bytes())
    [res] = run(bucket, warehouse_dsn)
    assert (res["status"], res["refused"]) == ("done", 0)
    assert webhook.received == []

    bad = list({r["MA_GCS"]: r for r in births(10, seed=22, bad_ratio=0)[0]}.values())
    for r in bad[:5]:
        r["GIOI_TINH_CON"] = "9"
    drop(bucket, "sai.xlsx", template_file(tmp_path / "sai.xlsx", bad).read_bytes())
    [res] = run(bucket, warehouse_dsn)
    assert (res["status"], res["refused"]) == ("done", 5)
    [a] = webhook.received
    assert a["event"] == "refusal_rate" and a["source"] == "excel" and a["source_ref"] == FACILITY
    assert a["kind"] == "GCS" and a["batch_id"] > 0
    assert (a["received"], a["refused"], a["refusal_rate"]) == (len(bad), 5, round(5 / len(bad), 4))
    assert a["refusals_by_rule"] == {"SEX_CODE": 5}
    pii = _pii(clean + bad)
    assert len(pii) > 20
    _no_personal_data(webhook, pii)


def test_bhxh_window_refused_above_threshold_alerts_a_clean_one_does_not(bhxh, warehouse_dsn, alerting, webhook):
    from certpipe.sources.bhxh import pull as source
    from sandbox.generate import generate_births
    from tests.sources.bhxh.conftest import CLIENT, DAY, WINDOWS, load

    alerting(refusal_rate=0.2)
    start, end = WINDOWS[0]
    items = []
    for facility, seed in (("01020", 31), ("96025", 32)):  # province 01 clean; province 96 half refused
        batch = generate_births(
            10, facility=facility, seed=seed, now=DAY.replace(hour=8), bad_ratio=0, dup_ratio=0, resubmit_ratio=0
        )
        latest = list({e["id"]: e for e in batch}.values())
        for j, env in enumerate(latest):
            if facility == "96025" and j % 2 == 0:
                env["record"]["GIOI_TINH_CON"] = "9"
            items.append(
                {
                    "id": f"B-{env['id']}",
                    "updated_at": (start + dt.timedelta(minutes=20 + j)).isoformat(),
                    "record": env["record"],
                }
            )
    load(bhxh, "GCS", items)

    clean = source.ingest_window(
        source.pull_window("01", "GCS", start, end, warehouse_dsn, client=CLIENT), warehouse_dsn
    )
    assert clean["received"] > 0 and clean["refused"] == 0
    assert webhook.received == []
    bad = source.ingest_window(source.pull_window("96", "GCS", start, end, warehouse_dsn, client=CLIENT), warehouse_dsn)
    assert bad["received"] > 0 and bad["refused"] / bad["received"] > 0.2
    [a] = webhook.received
    assert a["event"] == "refusal_rate" and a["source"] == "bhxh" and a["source_ref"] == "96"
    assert (a["batch_id"], a["kind"], a["received"], a["refused"]) == (
        bad["batch_id"],
        "GCS",
        bad["received"],
        bad["refused"],
    )
    assert a["refusals_by_rule"] == {"SEX_CODE": bad["refused"]}
    pii = _pii(i["record"] for i in items)
    assert len(pii) > 20
    _no_personal_data(webhook, pii)
