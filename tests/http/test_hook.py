"""The client toolkit against a real HTTP server on loopback: retries, Retry-After, terminal errors, context paths."""

import datetime as dt
import json
import time
from email.utils import format_datetime

import pytest
from airflow.sdk.exceptions import AirflowFailException

from certpipe.errors import ConfigError, SourceRejected, SourceUnavailable
from certpipe.http import SourceHook
from certpipe.http.retry import RetryAfterTooLong, retry_after_seconds
from tests.http.conftest import Answer


def conn(monkeypatch, url, name="src_test", **extra):
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{name.upper()}",
        json.dumps({"conn_type": "http", "host": url, "login": "user", "password": "p@ss w:rd'", "extra": extra}),
    )
    return name


def test_a_context_path_in_the_base_url_is_kept(scripted, monkeypatch):
    hook = SourceHook(conn(monkeypatch, scripted.url + "/dhis"), attempts=1)
    assert hook.call("GET", "api/system/info") == {"ok": True}
    assert scripted.requests[0]["path"] == "/dhis/api/system/info"
    assert scripted.requests[0]["headers"]["Authorization"].startswith("Basic ")


def test_429_waits_as_long_as_retry_after_says(scripted, monkeypatch):
    scripted.then(Answer(429, {"error": "rate_limited"}, {"Retry-After": "1"}))
    hook = SourceHook(conn(monkeypatch, scripted.url), attempts=3, backoff=0.01, max_backoff=0.05)
    assert hook.call("GET", "x") == {"ok": True}
    first, second = scripted.requests
    assert second["at"] - first["at"] >= 0.95  # the server's word, not the 0.01 s backoff


def test_retry_after_as_an_http_date_and_503(scripted, monkeypatch):
    when = format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2), usegmt=True)
    scripted.then(Answer(503, b"", {"Retry-After": when}))
    hook = SourceHook(conn(monkeypatch, scripted.url), attempts=2, backoff=0.01)
    assert hook.call("GET", "x") == {"ok": True}
    assert scripted.requests[1]["at"] - scripted.requests[0]["at"] >= 0.9
    assert retry_after_seconds("120") == 120 and retry_after_seconds("soon") is None


def test_a_retry_after_beyond_the_ceiling_fails_the_call_at_once_for_a_later_task_retry(scripted, monkeypatch):
    scripted.then(Answer(429, b"", {"Retry-After": "3600"}))
    hook = SourceHook(conn(monkeypatch, scripted.url), attempts=5, backoff=0.01, max_retry_after=60)
    with pytest.raises(RetryAfterTooLong, match="Retry-After 3600 s") as e:
        hook.call("GET", "x")
    assert isinstance(e.value, SourceUnavailable) and not isinstance(e.value, AirflowFailException)
    assert len(scripted.requests) == 1


def test_a_refusal_is_terminal_names_the_connection_and_never_quotes_the_body(scripted, monkeypatch):
    scripted.then(Answer(404, {"error": "not_found", "message": "Không có hồ sơ của Nguyễn Văn An 001095012345"}))
    hook = SourceHook(conn(monkeypatch, scripted.url, "src_404"), attempts=5, backoff=0.01)
    with pytest.raises(SourceRejected) as e:
        hook.call("GET", "api/v1/x")
    text = str(e.value)
    assert isinstance(e.value, AirflowFailException)  # Airflow does not retry it
    assert "connection 'src_404'" in text and "HTTP 404 on api/v1/x" in text and "host URL" in text
    assert "(not_found)" in text and "Nguyễn" not in text and "001095012345" not in text
    assert len(scripted.requests) == 1


def test_a_cut_off_answer_and_a_dropped_connection_are_retried(scripted, monkeypatch):
    scripted.then(Answer(200, b'{"items": [1, 2'), Answer(drop=True), Answer(200, {"items": [1, 2, 3]}))
    hook = SourceHook(conn(monkeypatch, scripted.url), attempts=3, backoff=0.01)
    assert hook.call("GET", "x") == {"items": [1, 2, 3]}
    assert len(scripted.requests) == 3


def test_a_slow_answer_times_out_and_is_retried(scripted, monkeypatch):
    scripted.then(Answer(delay=3.0))
    hook = SourceHook(conn(monkeypatch, scripted.url), attempts=2, backoff=0.01, timeout=0.3)
    start = time.monotonic()
    assert hook.call("GET", "x") == {"ok": True}
    assert time.monotonic() - start < 2.5  # the first try was given up after its timeout, not waited out


def test_bad_settings_name_the_connection_and_field_without_the_password(monkeypatch):
    name = conn(monkeypatch, "http://127.0.0.1:9", "src_bad", timeout="soon", attempts=0)
    with pytest.raises(ConfigError) as e:
        _ = SourceHook(name).settings
    text = str(e.value)
    assert "connection 'src_bad'" in text and "timeout" in text and "attempts" in text
    assert "p@ss" not in text and "soon" not in text
    assert isinstance(e.value, AirflowFailException)
    with pytest.raises(ConfigError, match="connection 'src_missing' is not defined"):
        _ = SourceHook("src_missing").settings
    monkeypatch.setenv("AIRFLOW_CONN_SRC_HOSTLESS", json.dumps({"conn_type": "http", "host": "", "login": "x"}))
    with pytest.raises(ConfigError, match=r"src_hostless.*base_url"):
        _ = SourceHook("src_hostless").settings


def test_host_port_and_scheme_make_the_url(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SRC_PARTS",
        json.dumps({"conn_type": "http", "host": "his.example.vn", "schema": "https", "port": 8443}),
    )
    assert SourceHook("src_parts").settings.base_url == "https://his.example.vn:8443/"
