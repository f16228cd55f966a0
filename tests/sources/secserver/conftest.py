"""Fixtures for the security-server client, directory refresh and DAG against the sandbox stand-in."""

import json

import httpx
import pytest

from sandbox.secserver import MADONVI, SESSION


def secserver_conn(url: str, **extra) -> str:
    return json.dumps(
        {
            "conn_type": "http",
            "host": f"{url}/secserver",
            "login": MADONVI,
            "password": SESSION,
            "extra": {"attempts": 3, "backoff": 0.01, "timeout": 5, **extra},
        }
    )


@pytest.fixture
def ss(sandbox_url, monkeypatch):
    """The sandbox security server, reset, and `secserver_default` pointing at it."""
    httpx.post(f"{sandbox_url}/_control/secserver/reset").raise_for_status()
    monkeypatch.setenv("AIRFLOW_CONN_SECSERVER_DEFAULT", secserver_conn(sandbox_url))
    return sandbox_url


class Control:
    def __init__(self, url: str):
        self.url = f"{url}/_control/secserver"

    def fault(self, **body):
        httpx.post(f"{self.url}/faults", json=body).raise_for_status()

    def directory(self, entries=None):
        if entries is not None:
            httpx.put(f"{self.url}/directory", json=entries).raise_for_status()
        return httpx.get(f"{self.url}/directory").json()

    def papers(self, answer):
        httpx.put(f"{self.url}/papers", json=answer).raise_for_status()

    def requests(self):
        return httpx.get(f"{self.url}/requests").json()

    def served(self, target):
        return self.requests()["counts"].get(target, 0)


@pytest.fixture
def control(ss):
    return Control(ss)
