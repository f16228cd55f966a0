"""Every DAG run cleared and run again for the same logical date (dag.test replaces the run, as clearing it does):
the warehouse's rows are the same afterwards (a snapshot of every table compared row by row).

Not compared: the run's own log — rows that record that a run happened (a new ingest batch with its landed records
and outcomes, a directory refresh, a look-up request), which a second run adds by design — and the columns that
stamp when or by which run a row was last touched. Everything a user reads (certificates, versions, provenance,
registrations, watermarks, DHIS2 events and pushes, causes of death, the directory, Excel files and results) is
compared whole."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import airflow_conn

VN = dt.timezone(dt.timedelta(hours=7))
RUN_LOG = {  # rows a run appends about itself
    "ingest_batch",
    "landing_record",
    "batch_record",
    "refused_record",
    "excel_drop",
    "secserver_directory_refresh",
    "audit_log",
}
STAMPS = {  # columns that stamp when / by which run a row was touched
    "run_id",
    "pulled_at",
    "last_seen_at",
    "last_pulled_at",
    "pushed_at",
    "matched_at",
    "updated_at",
    "last_refresh_id",
    "refresh_id",
    "fetched_at",
    "checked_at",
}
TABLE_STAMPS = {"source_watermark": {"batch_id"}}  # the last batch that passed the watermark (not the position)


def snapshot(dsn: str) -> dict[str, list[str]]:
    out = {}
    with psycopg.connect(dsn) as c:
        tables = [
            t
            for (t,) in c.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'wh' "
                "AND table_type = 'BASE TABLE' ORDER BY 1"
            )
        ]
        for t in tables:
            if t in RUN_LOG:
                continue
            cols = [
                col
                for (col,) in c.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = 'wh' AND table_name = %s "
                    "ORDER BY ordinal_position",
                    (t,),
                )
                if col not in STAMPS and col not in TABLE_STAMPS.get(t, ())
            ]
            sel = ", ".join(f'"{col}"' for col in cols)
            rows = c.execute(f'SELECT row_to_json(x)::text FROM (SELECT {sel} FROM wh."{t}") x ORDER BY 1').fetchall()
            out[t] = [r[0] for r in rows]
    return out


def diff(a: dict, b: dict) -> dict:
    out = {}
    for t in sorted(set(a) | set(b)):
        ra, rb = set(a.get(t, [])), set(b.get(t, []))
        if ra != rb or len(a.get(t, [])) != len(b.get(t, [])):
            out[t] = {"gone": sorted(ra - rb)[:3], "new": sorted(rb - ra)[:3], "rows": (len(a[t]), len(b[t]))}
    return out


def run_dag(dag_id: str, logical_date=None, conf=None):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{dag_id}.py")).dags[dag_id]
    for t in dag.tasks:
        t.retries = 0
    kw = {"run_conf": conf} if conf else {}
    return dag.test(logical_date=logical_date, **kw)


@pytest.fixture
def world(warehouse_dsn, sandbox_url, monkeypatch, airflow_db, tmp_path):
    """Every source connection on the sandbox, a bucket with one workbook, some used death notices."""
    from airflow import settings as airflow_settings

    from certpipe.http.auth import RenewingTokenAuth
    from tests.sources.bhxh.conftest import load_windows, window_data
    from tests.sources.dhis2.conftest import VARIABLE, a6_event, add_gbt, load_events
    from tests.sources.excel.conftest import births, template_file
    from tests.sources.secserver.conftest import secserver_conn

    httpx.post(
        f"{sandbox_url}/_control/reset", json={"seed": 7, "births": 20, "deaths": 8, "facilities": ["01020"]}
    ).raise_for_status()
    httpx.post(f"{sandbox_url}/_control/dhis2/reset", json={"version": "2.41"}).raise_for_status()
    httpx.post(f"{sandbox_url}/_control/secserver/reset").raise_for_status()
    env = {
        "AIRFLOW_CONN_WAREHOUSE_DB": airflow_conn(warehouse_dsn),
        "AIRFLOW_CONN_HIS_01020": json.dumps(
            {"conn_type": "http", "host": f"{sandbox_url}/his/01020", "login": "01020", "password": "sandbox-01020"}
        ),
        "AIRFLOW_VAR_HIS_HOSPITALS": json.dumps([{"facility": "01020", "name": "BV", "attempts": 2, "backoff": 0.05}]),
        "AIRFLOW_CONN_BHXH_DEFAULT": json.dumps(
            {"conn_type": "http", "host": f"{sandbox_url}/bhxh", "login": "bhxh-sandbox", "password": "sandbox-bhxh"}
        ),
        "AIRFLOW_VAR_BHXH_CLIENT": json.dumps({"attempts": 2, "backoff": 0.01, "timeout": 10}),
        "AIRFLOW_VAR_BHXH_PROVINCES": json.dumps(["01"]),
        "AIRFLOW_CONN_DHIS2_DEFAULT": json.dumps(
            {"conn_type": "http", "host": f"{sandbox_url}/dhis2", "login": "admin", "password": "district"}
        ),
        "AIRFLOW_VAR_DHIS2_MORTALITY": json.dumps(VARIABLE),
        "AIRFLOW_CONN_SECSERVER_DEFAULT": secserver_conn(sandbox_url),
        "AIRFLOW_VAR_CERTPIPE_INBOX_URL": (tmp_path / "bucket").as_uri(),
        "CERTPIPE_INBOX_MIN_AGE": "0",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(airflow_settings, "PLUGINS_FOLDER", str(tmp_path))
    RenewingTokenAuth._cache.clear()
    data = window_data(births=10, deaths=4, facilities=("01020",))
    load_windows(sandbox_url, data)
    inbox = tmp_path / "bucket" / "inbox" / "01020"
    inbox.mkdir(parents=True)
    gcs, _ = births(30, seed=31)
    (inbox / "t11.xlsx").write_bytes(template_file(tmp_path / "t11.xlsx", gcs).read_bytes())
    now = dt.datetime.now(VN)
    used = _logical("dhis2_cod_sync", now) - dt.timedelta(days=2)  # inside the week the weekly run pushes
    with psycopg.connect(warehouse_dsn) as wh:
        for i in range(3):
            add_gbt(wh, f"0007{i}.GBT.01020.26", name=f"ĐỖ VĂN TƯ {i}", id_number=f"00104005555{i}",
                    used_at=used, registration={"number": f"KT-{i}"})  # fmt: skip
    load_events(
        sandbox_url,
        [a6_event("EvRerun0001", name="Đỗ Văn Tư 0", id_number="001040055550", updated=now - dt.timedelta(hours=5))]
        + [a6_event(f"EvRerun000{i}", name=f"Lê Thị {i}", updated=now - dt.timedelta(hours=4)) for i in (2, 3)],
    )
    mother = next(e for e in data["GCS"]["items"] if e["id"] not in data["GCS"]["expected"])["record"]["SO_CCCD_NND"]
    return {"now": now, "mother": mother}


def _logical(dag_id: str, now: dt.datetime):
    if dag_id == "bhxh_pull":
        return dt.datetime(2026, 11, 20, 12, tzinfo=VN)  # the end of the sandbox's third window
    if dag_id == "dhis2_mortality_daily":
        return now.replace(hour=18, minute=30, second=0, microsecond=0) - dt.timedelta(days=0 if now.hour >= 19 else 1)
    if dag_id == "dhis2_cod_sync":
        monday = (now - dt.timedelta(days=now.weekday())).replace(hour=2, minute=0, second=0, microsecond=0)
        return monday if monday <= now else monday - dt.timedelta(days=7)
    return now.replace(second=0, microsecond=0) - dt.timedelta(minutes=1)


DAGS = [
    "his_pull",
    "bhxh_pull",
    "bhxh_lookup",
    "excel_inbox",
    "dhis2_mortality_daily",
    "dhis2_match",
    "dhis2_cod_sync",
    "secserver_directory",
]


@pytest.mark.slow
@pytest.mark.parametrize("dag_id", DAGS)
def test_rerun_for_the_same_logical_date_changes_no_row(dag_id, world, warehouse_dsn, fault_row):
    fault_row(
        "DAG run cleared and re-run (same logical date)",
        dag_id,
        "both runs succeed; every warehouse table the same row for row (snapshot compare)",
    )
    if dag_id == "dhis2_match":  # its input: events pulled by the daily DAG
        assert run_dag("dhis2_mortality_daily", _logical("dhis2_mortality_daily", world["now"])).state == "success"
    conf = {"request_type": "GCS_MOTHER_ID", "mother_id": world["mother"]} if dag_id == "bhxh_lookup" else None
    when = _logical(dag_id, world["now"])
    before = snapshot(warehouse_dsn)
    assert run_dag(dag_id, when, conf).state == "success"
    first = snapshot(warehouse_dsn)
    if dag_id != "dhis2_match":  # (the daily DAG above has matched everything already)
        assert diff(before, first), "the first run wrote nothing: the comparison would prove nothing"
    assert run_dag(dag_id, when, conf).state == "success"
    assert diff(first, snapshot(warehouse_dsn)) == {}
