"""The HIS client against the sandbox over real HTTP: paging, incremental pulls, retries, clear 4xx failures."""

import datetime as dt
import json

import httpx
import pytest

from certpipe.errors import SourceRejected, SourceUnavailable
from certpipe.sources.his.hook import HisHook

F = "01020"


@pytest.fixture
def his(sandbox_url, monkeypatch):
    httpx.post(f"{sandbox_url}/_control/reset", json={"seed": 7, "births": 120, "deaths": 40}).raise_for_status()
    monkeypatch.setenv(
        "AIRFLOW_CONN_HIS_TEST",
        json.dumps({"conn_type": "http", "host": f"{sandbox_url}/his/{F}", "login": F, "password": f"sandbox-{F}"}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_HIS_BADAUTH",
        json.dumps({"conn_type": "http", "host": f"{sandbox_url}/his/{F}", "login": F, "password": "wrong"}),
    )
    return sandbox_url


def fault(url, **body):
    httpx.post(f"{url}/_control/his/{F}/faults", json=body).raise_for_status()


def served(url):
    return httpx.get(f"{url}/_control/his/{F}/requests").json()["feed"]


def test_pages_cover_the_feed_exactly_once(his):
    pages = list(HisHook("his_test").pages("GCS", None, page_size=50))
    assert len(pages) > 2 and all(len(p) <= 50 for p in pages[:-1])
    items = [e for p in pages for e in p]
    one_page = list(HisHook("his_test").pages("GCS", None, page_size=1000))
    assert [e["id"] for e in items] == [e["id"] for e in one_page[0]]


def test_updated_since_asks_only_for_recent_changes(his):
    everything = [e for p in HisHook("his_test").pages("GBT", None) for e in p]
    newest = max(dt.datetime.fromisoformat(e["updated_at"]) for e in everything)
    recent = [e for p in HisHook("his_test").pages("GBT", newest) for e in p]
    assert 0 < len(recent) < len(everything)
    assert all(dt.datetime.fromisoformat(e["updated_at"]) >= newest for e in recent)


def test_5xx_is_retried_with_backoff_then_succeeds(his):
    fault(his, status=503, count=2)
    before = served(his)
    pages = list(HisHook("his_test", attempts=3, backoff=0.01).pages("GCS", None, page_size=1000))
    assert pages and pages[0]
    assert served(his) - before == 3  # two 503s, then the answer


def test_5xx_beyond_the_attempts_fails_clearly(his):
    fault(his, status=500, count=5)
    with pytest.raises(SourceUnavailable, match=r"HTTP 500") as e:
        list(HisHook("his_test", attempts=2, backoff=0.01).pages("GCS", None))
    assert e.value.status == 500


def test_timeout_is_retried(his):
    fault(his, delay_seconds=2, count=1)
    pages = list(HisHook("his_test", timeout=0.5, attempts=3, backoff=0.01).pages("GCS", None, page_size=1000))
    assert pages[0]


def test_4xx_fails_at_once_without_retrying(his):
    before = served(his)
    with pytest.raises(SourceRejected, match=r"HTTP 401") as e:
        list(HisHook("his_badauth", attempts=5, backoff=0.01).pages("GCS", None))
    assert e.value.status == 401
    assert served(his) - before <= 1
    with pytest.raises(SourceRejected, match=r"HTTP 400"):
        list(HisHook("his_test", attempts=5, backoff=0.01).pages("XYZ", None))


def test_acknowledgements_are_sent_in_chunks(his):
    items = [e for p in HisHook("his_test").pages("GCS", None, page_size=1000) for e in p][:25]
    results = [
        {"id": e["id"], "status": "ACCEPTED", "outcome": "stored", "certificate": None, "errors": []} for e in items
    ]
    assert HisHook("his_test").acknowledge("GCS", "b1", results, chunk=10) == 25
    acks = httpx.get(f"{his}/_control/his/{F}/acks").json()
    latest = acks.get("latest", acks)
    assert {e["id"] for e in items} <= set(latest)
