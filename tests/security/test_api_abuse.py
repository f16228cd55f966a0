"""Issue 17 §4-5: a truthful audit and no 500 on bad input; rate limits, token lifetime and revocation, input
validation, security headers, size and time limits — against the API served on loopback as its own login."""

import datetime as dt
import logging
import socket
import subprocess
import sys
import time
import uuid

import jwt
import psycopg
import pytest

from certpipe.warehouse import logins as L
from registrar.auth import AUDIENCE
from tests.security.conftest import Api, api, audit_rows, cert_id, serve  # noqa: F401 - fixture

MOTHER_ID = "001195012345"


def last(secured, n=1):
    return audit_rows(secured)[-n:]


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(secured, api):  # noqa: F811
    with api.client(api.token()) as c:
        c.post("/api/v1/lookup/births", json={"mother_id": MOTHER_ID}, headers={"X-Forwarded-For": "203.0.113.7"})
        bad = c.post("/api/v1/lookup/births", json={"mother_id": MOTHER_ID}, headers={"X-Forwarded-For": "garbage"})
    assert bad.status_code == 200  # not a proxy: the header is simply ignored
    assert [str(a["client_addr"]) for a in last(secured, 2)] == ["127.0.0.1", "127.0.0.1"]
    secret, server = serve(secured, trusted_proxies="127.0.0.1/32", rate_token="1000/second")
    with server as url, Api(url, secret).client(Api(url, secret).token()) as c:
        ok = c.post("/api/v1/lookup/births", json={"mother_id": MOTHER_ID}, headers={"X-Forwarded-For": "203.0.113.7"})
        chained = c.post(
            "/api/v1/lookup/births",
            json={"mother_id": MOTHER_ID},
            headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9, 127.0.0.1"},
        )
        bad = c.post("/api/v1/lookup/births", json={"mother_id": MOTHER_ID}, headers={"X-Forwarded-For": "x, 1.2.3"})
    assert (ok.status_code, chained.status_code, bad.status_code) == (200, 200, 400)
    rows = last(secured, 3)
    assert [str(a["client_addr"]) for a in rows] == ["203.0.113.7", "203.0.113.9", "127.0.0.1"]
    assert rows[-1]["outcome"] == "invalid" and rows[-1]["actor"] == "hn.hotich1"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("post", "/api/v1/lookup/births", '{"mother_id": "0011950\\u000012345"}', 400),
        (
            "post",
            "/api/v1/lookup/by-number",
            '{"number": "1\\u0000", "issued_on": "2025-11-10", "facility": "01020"}',
            400,
        ),
        ("get", f"/api/v1/certificates/{2**63}", None, 422),
        ("get", f"/api/v1/certificates/{2**80}", None, 422),
        ("get", "/api/v1/certificates/-1", None, 422),
        ("get", "/api/v1/certificates/%00", None, 400),
        ("get", "/api/v1/worklists/unregistered?days=99999999999999999999", None, 422),
        ("get", "/api/v1/worklists/unregistered?mother_id=001195012345", None, 400),
        ("post", "/api/v1/lookup/births?mother_id=001195012345", '{"mother_id": "001195012345"}', 400),
        ("post", "/api/v1/lookup/births", '{"mother_id": "００１１９５０１２３４５"}', 422),  # full-width digits
        ("post", "/api/v1/lookup/births", '{"mother_id": "001195012345", "x": 1}', 422),
        ("post", "/api/v1/lookup/births", "{not json", 422),
        ("post", "/api/v1/lookup/births", "x" * 20000, 413),
    ],
)
def test_malformed_input_gets_a_4xx_and_an_audit_row(secured, api, method, path, body, status, caplog):  # noqa: F811
    caplog.set_level(logging.INFO)
    before = len(audit_rows(secured))
    with api.client(api.token()) as c:
        kw = {"content": body, "headers": {"Content-Type": "application/json"}} if body is not None else {}
        r = getattr(c, method if body is None else "request")(*(["POST"] if body is not None else []), path, **kw)
    assert r.status_code == status, r.text
    rows = audit_rows(secured)
    assert len(rows) == before + 1 and rows[-1]["status_code"] == status and rows[-1]["outcome"] == "invalid"
    server_log = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("registrar", "uvicorn")))
    assert " 4" in server_log and MOTHER_ID not in server_log and MOTHER_ID not in str(rows[-1])


def test_a_header_with_control_characters_is_refused_and_audited(secured, api):  # noqa: F811
    before = len(audit_rows(secured))
    host, port = api.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(
            f"GET /api/v1/worklists/unregistered HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api.token()}\r\n"
            "X-Note: a\x7fb\r\nConnection: close\r\n\r\n".encode()
        )
        answer = s.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 400")
    assert len(audit_rows(secured)) == before + 1 and audit_rows(secured)[-1]["status_code"] == 400


def test_rate_limits_per_token_and_per_address_answer_429_with_retry_after(secured):
    secret, server = serve(secured, rate_token="3/minute", rate_address="1000/minute")
    with server as url:
        a = Api(url, secret)
        with a.client(a.token()) as c:
            answers = [c.post("/api/v1/lookup/births", json={"mother_id": MOTHER_ID}) for _ in range(5)]
        with a.client(a.token()) as c:  # another token is not limited by the first one's count
            fresh = c.post("/api/v1/lookup/births", json={"mother_id": MOTHER_ID})
    assert [r.status_code for r in answers] == [200, 200, 200, 429, 429] and fresh.status_code == 200
    assert 0 < int(answers[-1].headers["Retry-After"]) <= 60
    assert [r["outcome"] for r in last(secured, 3)] == ["rate_limited", "rate_limited", "ok"]
    secret, server = serve(secured, rate_token="1000/minute", rate_address="4/minute")
    with server as url:
        a = Api(url, secret)
        anon = [a.client().post("/api/v1/lookup/births", json={}) for _ in range(6)]
    assert [r.status_code for r in anon] == [401] * 4 + [429] * 2 and "Retry-After" in anon[-1].headers


def test_tokens_have_a_maximum_lifetime_and_can_be_revoked(secured, api):  # noqa: F811
    now = dt.datetime.now(dt.UTC)
    century = jwt.encode(
        {
            "sub": "x",
            "office": "x",
            "province": "01",
            "aud": AUDIENCE,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "exp": now + dt.timedelta(days=36500),
        },
        api.secret,
        algorithm="HS256",
    )
    future = jwt.encode(
        {
            "sub": "x",
            "office": "x",
            "province": "01",
            "aud": AUDIENCE,
            "jti": uuid.uuid4().hex,
            "iat": now + dt.timedelta(hours=2),
            "exp": now + dt.timedelta(hours=3),
        },
        api.secret,
        algorithm="HS256",
    )
    no_jti = jwt.encode(
        {"sub": "x", "office": "x", "province": "01", "aud": AUDIENCE, "iat": now, "exp": now + dt.timedelta(hours=1)},
        api.secret,
        algorithm="HS256",
    )
    with pytest.raises(ValueError, match="at most"):
        api.token(ttl=dt.timedelta(days=30))
    t1, t2 = api.token(), api.token()
    jti = jwt.decode(t1, options={"verify_signature": False})["jti"]
    owner = secured.dsn(L.OWNER)

    def status(token):
        with api.client(token) as c:
            return c.post("/api/v1/lookup/births", json={"mother_id": MOTHER_ID}).status_code

    assert [status(t) for t in (century, future, no_jti, t1, t2)] == [401, 401, 401, 200, 200]
    revoke = [sys.executable, "-m", "registrar", "revoke", "--dsn", owner, "--reason", "máy bị mất"]
    subprocess.run([*revoke, "--jti", jti], check=True, capture_output=True)
    assert (status(t1), status(t2)) == (401, 200)
    subprocess.run([*revoke, "--sub", "hn.hotich1"], check=True, capture_output=True)
    time.sleep(1.1)  # iat has second resolution: a token issued after the revocation
    assert (status(t2), status(api.token())) == (401, 200)
    with api.client(t2) as c:
        assert "thu hồi" in c.post("/api/v1/lookup/births", json={"mother_id": MOTHER_ID}).json()["detail"]
    # the API's login cannot revoke (or un-revoke) anything
    with secured.connect(L.REGISTRAR) as c, pytest.raises(psycopg.errors.InsufficientPrivilege):
        c.execute("DELETE FROM wh.token_revocation")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"registration_no": "１２/2025", "registered_on": "2025-11-20"}, 422),
        ({"registration_no": "12/2025; DROP", "registered_on": "2025-11-20"}, 422),
        ({"registration_no": "12", "registered_on": "2025-11-20"}, 422),
        ({"registration_no": "12/2025", "registered_on": "2999-01-01"}, 422),
        ({"registration_no": "12/2025", "registered_on": "2001-01-01"}, 422),  # before the certificate's issue
        ({"registration_no": "12/2025", "registered_on": "2025-02-30"}, 422),
    ],
)
def test_registrations_are_validated(secured, api, body, status):  # noqa: F811
    cid = cert_id(secured, "00004.GCS.01020.25")
    with api.client(api.token()) as c:
        r = c.post(f"/api/v1/certificates/{cid}/registration", json=body)
    assert r.status_code == status, r.text


@pytest.mark.parametrize(
    "reason", ["ngắn", "x" * 501, "Nhập nhầm\nhồ sơ của trẻ khác", "Nhập nhầm\u0085hồ sơ", "          "]
)
def test_cancellation_reasons_are_validated(secured, api, reason):  # noqa: F811
    cid = cert_id(secured, "00004.GCS.01020.25")
    with api.client(api.token()) as c:
        assert c.post(f"/api/v1/certificates/{cid}/registration/cancel", json={"reason": reason}).status_code == 422


def test_security_headers_on_every_answer(api):  # noqa: F811
    with api.client(api.token()) as c:
        answers = [
            c.post("/api/v1/lookup/births", json={"mother_id": MOTHER_ID}),
            c.get("/api/v1/nothing"),
            c.get("/healthz"),
            c.post("/api/v1/lookup/births", json={}),
        ]
    for r in answers:
        assert r.headers["cache-control"] == "no-store" and r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY" and r.headers["referrer-policy"] == "no-referrer"
        assert "server" not in r.headers
    assert answers[0].headers["content-security-policy"].startswith("default-src 'none'")


def test_slow_clients_are_cut_off(secured):
    _, server = serve(secured, header_timeout=1.5, body_timeout=1.0)
    with server as url:
        host, port = url.removeprefix("http://").split(":")
        # slowloris: a request head trickled byte by byte never completes
        with socket.create_connection((host, int(port))) as s:
            s.settimeout(10)
            t0, closed = time.monotonic(), False
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            for _ in range(20):
                try:
                    s.sendall(b"X")
                    if s.recv(1, socket.MSG_DONTWAIT) == b"":
                        closed = True
                        break
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                time.sleep(0.3)
            assert closed and time.monotonic() - t0 < 4
        # a body that never arrives: 408
        with socket.create_connection((host, int(port))) as s:
            s.settimeout(10)
            s.sendall(
                b"POST /api/v1/lookup/births HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100\r\n\r\n{"mother'
            )
            t0 = time.monotonic()
            assert s.recv(4096).startswith(b"HTTP/1.1 408") and time.monotonic() - t0 < 3


def test_default_limits_stop_a_scrape(secured):
    """With the shipped defaults (5/second per token) a burst of look-ups is cut to a handful."""
    import threading

    secret, server = serve(secured)
    with server as url:
        a = Api(url, secret)
        token, codes = a.token(), []
        barrier = threading.Barrier(12)

        def call():
            with a.client(token) as c:
                c.get("/healthz")
                barrier.wait()
                codes.append(c.post("/api/v1/lookup/births", json={"mother_id": MOTHER_ID}).status_code)

        t0 = time.monotonic()
        threads = [threading.Thread(target=call) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
    # a moving window: at most 5 per started second, whatever the machine's speed
    assert codes.count(200) <= 5 * (int(elapsed) + 1) and codes.count(200) + codes.count(429) == 12
    if elapsed < 1:
        assert codes.count(429) >= 7


def test_twenty_offices_racing_for_one_certificate_exactly_one_wins(secured, api):  # noqa: F811
    import threading

    cid = cert_id(secured, "00001.GBT.96025.25")
    tokens = [api.token(f"cm.{i}", f"UBND xã {i}", "96") for i in range(20)]
    barrier, results = threading.Barrier(20), [None] * 20

    def mark(i):
        with api.client(tokens[i]) as c:
            c.get("/healthz")
            barrier.wait()
            results[i] = c.post(
                f"/api/v1/certificates/{cid}/registration",
                json={"registration_no": f"{i + 1}/2025", "registered_on": "2025-11-20"},
            ).status_code

    threads = [threading.Thread(target=mark, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [409] * 19
    with psycopg.connect(secured.admin) as c:
        assert c.execute("SELECT count(*) FROM wh.registration WHERE cert_id = %s", (cid,)).fetchone()[0] == 1
