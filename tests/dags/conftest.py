"""Fixtures for DAG runs against the sandbox source systems."""

import json

import httpx
import pytest

from tests.conftest import airflow_conn

FACILITIES = ("01020", "79034", "96025")


@pytest.fixture
def his_env(warehouse_dsn, sandbox_url, monkeypatch, airflow_db):
    httpx.post(f"{sandbox_url}/_control/reset", json={"seed": 7, "births": 120, "deaths": 40}).raise_for_status()
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DB", airflow_conn(warehouse_dsn))
    for f in FACILITIES:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_HIS_{f}",
            json.dumps({"conn_type": "http", "host": f"{sandbox_url}/his/{f}", "login": f, "password": f"sandbox-{f}"}),
        )
    monkeypatch.setenv(
        "AIRFLOW_VAR_HIS_HOSPITALS",
        json.dumps(
            [{"facility": f, "name": f"BV {f}", "attempts": 2, "backoff": 0.05, "timeout": 5} for f in FACILITIES]
        ),
    )
    return sandbox_url
