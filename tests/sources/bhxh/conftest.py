"""Fixtures for the BHXH client and DAGs against the sandbox BHXH stand-in over HTTP and a real PostgreSQL."""

import datetime as dt
import json
import os
from pathlib import Path

import httpx
import pytest

from tests.conftest import airflow_conn

VN = dt.timezone(dt.timedelta(hours=7))
DAY = dt.datetime(2026, 11, 20, tzinfo=VN)
WINDOWS = [(DAY.replace(hour=h), DAY.replace(hour=h + 1)) for h in (9, 10, 11)]  # three hourly data intervals
CLIENT = {"attempts": 3, "backoff": 0.01, "max_backoff": 0.3, "timeout": 2}


@pytest.fixture
def bhxh(sandbox_url, monkeypatch):
    """The sandbox, reset, with connection bhxh_default and fast client settings; the token cache emptied."""
    from certpipe.http.auth import RenewingTokenAuth

    httpx.post(f"{sandbox_url}/_control/reset", json={"seed": 7, "births": 120, "deaths": 40}).raise_for_status()
    monkeypatch.setenv(
        "AIRFLOW_CONN_BHXH_DEFAULT",
        json.dumps(
            {"conn_type": "http", "host": f"{sandbox_url}/bhxh", "login": "bhxh-sandbox", "password": "sandbox-bhxh"}
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_BHXH_BADAUTH",
        json.dumps({"conn_type": "http", "host": f"{sandbox_url}/bhxh", "login": "bhxh-sandbox", "password": "wrong"}),
    )
    monkeypatch.setenv("AIRFLOW_VAR_BHXH_CLIENT", json.dumps(CLIENT))
    monkeypatch.setenv("AIRFLOW_VAR_BHXH_PROVINCES", json.dumps(["01", "96"]))
    RenewingTokenAuth._cache.clear()
    yield sandbox_url
    RenewingTokenAuth._cache.clear()


@pytest.fixture
def bhxh_env(bhxh, warehouse_dsn, monkeypatch, airflow_db):
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DB", airflow_conn(warehouse_dsn))
    return bhxh


def fault(url, **body):
    httpx.post(f"{url}/_control/bhxh/faults", json=body).raise_for_status()


def served(url) -> dict:
    return httpx.get(f"{url}/_control/bhxh/requests").json()


def load(url, kind, items, replace=True):
    httpx.post(
        f"{url}/_control/bhxh/records", json={"kind": kind, "items": items, "replace": replace}
    ).raise_for_status()


def window_data(seed=11, births=24, deaths=12, facilities=("01020", "96025")) -> dict:
    """Generated certificates (latest version per id), restamped so each window of WINDOWS gets a third.

    Returns {kind: {"items": [...], "window": {id: window index}, "expected": {id: rule}}}."""
    from sandbox.generate import generate_births, generate_deaths

    out = {k: {"items": [], "window": {}, "expected": {}} for k in ("GCS", "GBT")}
    for f in facilities:
        for kind, n, gen in (("GCS", births, generate_births), ("GBT", deaths, generate_deaths)):
            batch = gen(n, facility=f, seed=seed, now=DAY.replace(hour=8))
            latest = {e["id"]: e for e in batch}
            out[kind]["expected"].update({f"B-{i}": rule for i, rule in batch.expected.items()})
            for j, env in enumerate(latest.values()):
                w = j % len(WINDOWS)
                start = WINDOWS[w][0]
                stamp = start + dt.timedelta(minutes=12 + 35 * j / max(1, len(latest)))  # outside the 10 min overlap
                out[kind]["items"].append(
                    {"id": f"B-{env['id']}", "updated_at": stamp.isoformat(), "record": env["record"]}
                )
                out[kind]["window"][f"B-{env['id']}"] = w
    return out


def load_windows(url, data):
    for kind, d in data.items():
        load(url, kind, d["items"])


def run_dag(dag_id, logical_date=None, conf=None):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag = bag.dags[dag_id]
    for t in dag.tasks:
        t.retries = 0
    kwargs = {"run_conf": conf} if conf is not None else {}
    if logical_date is not None:
        kwargs["logical_date"] = logical_date
    return dag.test(**kwargs)


def texts_of_run(run, capfd, caplog) -> dict:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    out, err = capfd.readouterr()
    texts = {"stdout": out, "stderr": err, "caplog": caplog.text}
    for p in Path(os.environ["AIRFLOW_HOME"]).rglob("*.log"):
        texts[str(p)] = p.read_text(errors="replace")
    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.run_id == run.run_id).all()
        texts["xcom"] = "\n".join(str(r.value) for r in rows)
    return texts


PII_FIELDS = (
    "HOTEN_NND",
    "TEN_CON",
    "HO_TEN_CHA",
    "HO_TEN",
    "NGUOI_THANTHICH",
    "SO_CCCD_NND",
    "SO_GIAYTO",
    "NGAYSINH_NND",
    "NGAY_SINH",
    "MA_BHXH_NND",
    "MA_BHXH",
)


def personal_values(data) -> set[str]:
    return {
        str(e["record"][f]).strip()
        for d in data.values()
        for e in d["items"]
        for f in PII_FIELDS
        if len(str(e["record"].get(f) or "").strip()) >= 6
    }
