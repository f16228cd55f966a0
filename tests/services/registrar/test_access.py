"""Authentication, audit completeness, least privilege (registrar and analyst roles), logs, OpenAPI, the CLI."""

import datetime as dt
import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import psycopg
import pytest

from certpipe.warehouse.logins import ANALYST
from registrar.__main__ import OPENAPI, openapi_document
from tests.services.registrar.conftest import DECEASED_ID, MOTHER_ID

ROOT = Path(__file__).resolve().parents[3]


def test_requests_without_a_valid_token_are_refused_and_audited(api, wh):
    expired = api.token(now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=9))
    forged = jwt.encode(
        {
            "sub": "x",
            "office": "x",
            "province": "01",
            "aud": "certpipe-registrar",
            "iat": dt.datetime.now(dt.UTC),
            "exp": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        },
        "another-key-another-key-another-key",
        algorithm="HS256",
    )
    no_province = jwt.encode(
        {
            "sub": "x",
            "office": "x",
            "aud": "certpipe-registrar",
            "iat": dt.datetime.now(dt.UTC),
            "exp": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        },
        api.secret,
        algorithm="HS256",
    )
    answers = []
    for token in (None, expired, forged, no_province, "not-a-jwt"):
        with api.client(token) as c:
            answers.append(c.post("/api/v1/lookup/births", json={"mother_id": MOTHER_ID}))
    assert {r.status_code for r in answers} == {401}
    assert all(r.json()["detail"].startswith("Chưa xác thực") and "Nguyễn" not in r.text for r in answers)
    # anonymous calls are counted, not stored row by row (the table cannot be flooded)
    assert api.audit(wh) == []
    assert wh.execute("SELECT endpoint, status_code, calls FROM wh.audit_anonymous").fetchall() == [
        ("POST /api/v1/lookup/births", 401, 5)
    ]


def test_every_call_leaves_exactly_one_audit_row(api, wh):
    cid = api.cert_id(wh, "00003.GCS.01020.25")
    calls = [
        ("post", "/api/v1/lookup/births", {"json": {"mother_id": MOTHER_ID}}, 200),
        ("post", "/api/v1/lookup/deaths", {"json": {"deceased_id": DECEASED_ID}}, 404),
        (
            "post",
            "/api/v1/lookup/by-number",
            {"json": {"number": "3", "issued_on": "2025-11-10", "facility": "01020"}},
            200,
        ),
        ("post", "/api/v1/lookup/births", {"json": {}}, 422),
        ("get", f"/api/v1/certificates/{cid}", {}, 200),
        (
            "post",
            f"/api/v1/certificates/{cid}/registration",
            {"json": {"registration_no": "5/2025", "registered_on": "2025-11-20"}},
            200,
        ),
        (
            "post",
            f"/api/v1/certificates/{cid}/registration",
            {"json": {"registration_no": "6/2025", "registered_on": "2025-11-20"}},
            409,
        ),
        ("post", f"/api/v1/certificates/{cid}/registration/cancel", {"json": {"reason": "Đăng ký nhầm hồ sơ"}}, 200),
        ("get", "/api/v1/worklists/unregistered", {"params": {"days": 0}}, 200),
        ("get", "/api/v1/worklists/dhis2-deaths", {}, 200),
        ("get", "/api/v1/worklists/dhis2-deaths", {"params": {"commune": "32014"}}, 403),
        ("get", "/api/v1/nothing-here", {}, 404),
    ]
    with api.client(api.token()) as c:
        for method, path, kw, status in calls:
            assert getattr(c, method)(path, **kw).status_code == status, path
        c.get("/healthz")  # not an API call: not audited
    audit = api.audit(wh)
    assert [a["status_code"] for a in audit] == [s for *_, s in calls]
    assert [a["action"] for a in audit] == [
        "lookup_mother_id",
        "lookup_deceased_id",
        "lookup_number",
        "lookup_births",
        "get_certificate",
        "mark_used",
        "mark_used",
        "cancel_registration",
        "worklist_unregistered",
        "worklist_dhis2",
        "worklist_dhis2",
        "unmatched",
    ]
    assert all(a["actor"] == "hn.hotich1" and a["office"] == "UBND phường Ba Đình" for a in audit)
    assert audit[-1]["endpoint"] == "GET (unmatched)"
    dump = json.dumps([list(a.values()) for a in audit], default=str)
    assert MOTHER_ID not in dump and DECEASED_ID not in dump


def test_api_role_cannot_rewrite_the_audit_log_or_read_raw_records(api, wh, registrar_dsn):
    with api.client(api.token()) as c:
        c.post("/api/v1/lookup/births", json={"mother_id": MOTHER_ID})
    with psycopg.connect(registrar_dsn) as conn:
        for stmt in (
            "DELETE FROM wh.audit_log",
            "UPDATE wh.audit_log SET actor = 'x'",
            "INSERT INTO wh.audit_log (action, endpoint, status_code, outcome) VALUES ('x', 'x', 200, 'ok')",
            "SELECT * FROM wh.landing_record",
            "UPDATE wh.certificate SET record = '{}'",
            "SELECT * FROM analyst.births",
            "SET ROLE certpipe_registrar",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(stmt)
            conn.rollback()
    assert len(api.audit(wh)) == 1


def test_analyst_login_reads_aggregates_that_never_show_id_numbers(api, wh, warehouse_dsn, pg_logins):
    cid = api.cert_id(wh, "00001.GCS.01020.25")
    with api.client(api.token()) as c:
        c.post("/api/v1/lookup/births", json={"mother_id": MOTHER_ID})
        c.post(
            f"/api/v1/certificates/{cid}/registration",
            json={"registration_no": "7/2025", "registered_on": "2025-11-20"},
        )
    wh.execute("UPDATE wh.privacy_setting SET k = 2")  # six certificates: cells of 5 would all be suppressed
    wh.commit()
    with psycopg.connect(pg_logins[ANALYST].dsn(warehouse_dsn)) as conn:
        births = conn.execute("SELECT * FROM analyst.births").fetchall()
        deaths = conn.execute("SELECT * FROM analyst.deaths").fetchall()
        audit = conn.execute("SELECT * FROM analyst.audit_log").fetchall()
        for stmt in (
            "SELECT * FROM wh.certificate",
            "SELECT * FROM wh.audit_log",
            "SELECT * FROM wh.registrar_pepper",
            "DELETE FROM analyst.audit_log",
            "SELECT * FROM wh.registrar_optional('cause_of_death', '{1}', NULL)",
            "UPDATE wh.privacy_setting SET k = 1",
            "SET ROLE certpipe_analyst",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(stmt)
            conn.rollback()
    assert sum(r[-1] for r in births) >= 2 and all(r[-1] >= 2 for r in births + deaths) and len(audit) == 2
    dump = json.dumps([births, deaths, audit], default=str, ensure_ascii=False)
    for secret in (MOTHER_ID, DECEASED_ID, "001195067890", "Nguyễn Thị Lan", "LÊ VĂN HÙNG", "127.0.0.1"):
        assert secret not in dump


def test_logs_carry_no_personal_data(api, wh, caplog):
    caplog.set_level(logging.DEBUG)
    with api.client(api.token()) as c:
        c.post("/api/v1/lookup/births", json={"mother_id": MOTHER_ID})
        c.post("/api/v1/lookup/births", json={"mother_id": "00119501234X"})
        c.post("/api/v1/lookup/by-number", json={"number": "1", "issued_on": "2025-11-10", "facility": "01020"})
    text = caplog.text
    assert "/api/v1/lookup/births" in text  # access log is on
    for value in (MOTHER_ID, "00119501234X", "Nguyễn Thị Lan"):
        assert value not in text


def test_openapi_description_is_exported_and_current():
    doc = openapi_document()
    assert json.loads(OPENAPI.read_text(encoding="utf-8")) == doc, "run: python -m registrar openapi"
    assert {
        "/api/v1/lookup/births",
        "/api/v1/lookup/deaths",
        "/api/v1/lookup/by-number",
        "/api/v1/certificates/{cert_id}/registration",
        "/api/v1/certificates/{cert_id}/registration/cancel",
        "/api/v1/worklists/unregistered",
        "/api/v1/worklists/dhis2-deaths",
    } <= set(doc["paths"])
    assert "HTTPBearer" in doc["components"]["securitySchemes"]


def test_command_line_issues_tokens_and_serves_the_api(registrar_dsn, loaded, secret):
    env = {**os.environ, "CERTPIPE_REGISTRAR_JWT_SECRET": secret, "CERTPIPE_REGISTRAR_DB_URL": registrar_dsn}
    token = subprocess.run(
        [
            sys.executable,
            "-m",
            "registrar",
            "token",
            "--sub",
            "cm.hotich",
            "--office",
            "UBND phường An Xuyên",
            "--province",
            "96",
            "--commune",
            "32014",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "registrar", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, "registrar API did not start"
                time.sleep(0.2)
        r = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/lookup/deaths",
            json={"deceased_id": DECEASED_ID},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert r.status_code == 200 and r.json()["items"][0]["cert_key"] == "00001.GBT.96025.25"
    finally:
        proc.terminate()
        out = proc.communicate(timeout=15)[0].decode()
    assert DECEASED_ID not in out and "POST /api/v1/lookup/deaths" in out
