"""Fixtures for the DHIS2 client and DAGs: the sandbox DHIS2 over HTTP, a real PostgreSQL, dag.test()."""

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import httpx
import pytest
from psycopg.types.json import Jsonb

from certpipe.core.schema import schemas_dir
from tests.conftest import airflow_conn

VN = dt.timezone(dt.timedelta(hours=7))
ROOT = "VnHaNoi0001"  # province org unit of the sandbox; communes below (org unit code = commune code)
COMMUNES = {"00190": "TytOChoDua1", "09988": "TytHoaLac01"}
CLIENT = {"attempts": 3, "backoff": 0.01, "max_backoff": 0.2, "timeout": 5}
# the sandbox server's UIDs for the pilot register's extra fields: configuration (the Variable), not code
PILOT = {
    "justice_registered": "TpDaDangKy1",
    "justice_registration_date": "TpNgayDk001",
    "justice_registration_number": "TpSoDk00001",
    "justice_cause_text": "TpNguyenNh1",
    "justice_cause_icd10": "TpMaNguyen1",
    "from_justice": "TpTuTuPhap1",
}
MAPPING = json.loads((schemas_dir() / "dhis2" / "a6_mapping.json").read_text(encoding="utf-8"))
DE = {name: spec["uid"] for name, spec in MAPPING["dataElements"].items() if spec["uid"]} | PILOT
VARIABLE = {"org_units": [ROOT], "page_size": 3, "overlap_minutes": 60, "client": CLIENT, "data_elements": PILOT}


@pytest.fixture
def dhis2(sandbox_url, monkeypatch):
    """The sandbox DHIS2, reset (2.41), connection dhis2_default (Basic) and Variable dhis2_mortality."""
    httpx.post(f"{sandbox_url}/_control/dhis2/reset", json={"version": "2.41"}).raise_for_status()
    monkeypatch.setenv(
        "AIRFLOW_CONN_DHIS2_DEFAULT",
        json.dumps({"conn_type": "http", "host": f"{sandbox_url}/dhis2", "login": "admin", "password": "district"}),
    )
    monkeypatch.setenv("AIRFLOW_VAR_DHIS2_MORTALITY", json.dumps(VARIABLE))
    return sandbox_url


@pytest.fixture
def dhis2_env(dhis2, warehouse_dsn, monkeypatch, airflow_db, tmp_path):
    from airflow import settings as airflow_settings

    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DB", airflow_conn(warehouse_dsn))
    # no Airflow plugin discovery: our DAGs need none, and it would import every module under plugins/
    monkeypatch.setattr(airflow_settings, "PLUGINS_FOLDER", str(tmp_path))
    return dhis2


def settings(**over):
    from certpipe.sources.dhis2.metadata import settings_from

    return settings_from({**VARIABLE, **over})


def control(url, what, body=None):
    """POST /_control/dhis2/<what> on the sandbox DHIS2."""
    httpx.post(f"{url}/_control/dhis2/{what}", json=body if body is not None else {}).raise_for_status()


def requests_of(url, path="/dhis2/api/tracker/events", method="GET"):
    log = httpx.get(f"{url}/_control/dhis2/requests").json()["requests"]
    return [r for r in log if r["path"] == path and r["method"] == method]


def a6_event(
    uid,
    commune="00190",
    *,
    name="Nguyễn Văn An",
    dob="1940-03-02",
    dod="2026-11-10",
    id_number=None,
    updated=None,
    recorded="2026-11-12",
    deleted=False,
    **values,
):
    vals = {
        "full_name": name,
        "date_of_birth": dob,
        "date_of_death": dod,
        "id_number": id_number,
        "recorded_on": recorded,
        **values,
    }
    ev = {
        "event": uid,
        "orgUnit": COMMUNES[commune],
        "occurredAt": dod,
        "deleted": deleted,
        "dataValues": [{"dataElement": DE[k], "value": v} for k, v in vals.items() if v is not None],
    }
    if updated:  # an aware moment: the sandbox shows it in its own zone
        ev["updatedAt"] = updated.isoformat(timespec="milliseconds")
    return ev


def load_events(url, events):
    httpx.post(f"{url}/_control/dhis2/events", json={"events": events}).raise_for_status()


def sandbox_events(url) -> dict:
    return {e["event"]: e for e in httpx.get(f"{url}/_control/dhis2/events").json()["events"]}


def add_gbt(
    wh,
    cert_key,
    *,
    name="NGUYỄN VĂN AN",
    dob="19400302",
    dod="202611100830",
    id_number="",
    commune="00190",
    used_at=None,
    cause="Suy tim",
    icd="I50.9",
    registration=None,
) -> int:
    record = {
        "MA_GBT": cert_key,
        "HO_TEN": name,
        "NGAY_SINH": dob,
        "GIOI_TINH": "1",
        "SO_GIAYTO": id_number,
        "MAXA_THUONGTRU": commune,
        "NGAY_TV": dod,
        "NGUYENNHAN_TV": cause,
        "BENH_ICD10_ID": icd,
    }
    row = wh.execute(
        "INSERT INTO wh.certificate (kind, cert_key, facility_code, person_id, record, content_hash, status, "
        "first_batch_id, last_batch_id, last_source, used_at, registration) VALUES ('GBT', %s, '01020', %s, %s, "
        "%s, %s, 0, 0, 'his', %s, %s) RETURNING cert_id",
        (
            cert_key,
            id_number or None,
            Jsonb(record),
            hashlib.sha256(cert_key.encode()).digest(),
            "used" if used_at else "received",
            used_at,
            Jsonb(registration) if registration else None,
        ),
    ).fetchone()
    wh.commit()
    return row[0]


def run_dag(dag_id, logical_date):
    from airflow.dag_processing.dagbag import DagBag

    path = str(Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{dag_id}.py")  # only our DAG file
    dag = DagBag(dag_folder=path).dags[dag_id]
    for t in dag.tasks:
        t.retries = 0
    return dag.test(logical_date=logical_date)


def xcom_texts(run) -> str:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return "\n".join(str(r.value) for r in session.query(XComModel).filter(XComModel.run_id == run.run_id))
