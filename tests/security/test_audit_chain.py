"""Issue 17 §3: the audit log is append-only (a SECURITY DEFINER function of another role writes it; no login
updates or deletes) and hash-chained; `python -m registrar audit-verify` finds the first broken link after a
superuser tampers with it. Anonymous calls are counted, not stored row by row."""

import itertools
import subprocess
import sys
import threading

import psycopg
import pytest

from certpipe.warehouse import logins as L
from registrar.audit_chain import verify
from tests.security.conftest import api, audit_rows  # noqa: F401 - fixture

MOTHER_ID = "001195012345"


def audit_verify(dsn: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "registrar", "audit-verify", "--dsn", dsn, *args], capture_output=True, text=True
    )


def test_rows_are_chained_and_nobody_rewrites_them(secured, api):  # noqa: F811
    token = api.token()

    def calls():
        with api.client(token) as c:
            for _ in range(5):
                c.post("/api/v1/lookup/births", json={"mother_id": MOTHER_ID})

    threads = [threading.Thread(target=calls) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = audit_rows(secured)
    assert len(rows) == 20 and rows[0]["prev_hash"] == "0" * 64
    assert all(b["prev_hash"] == a["row_hash"] for a, b in itertools.pairwise(rows))
    report = verify(secured.dsn(L.OWNER))
    assert report.ok and report.rows == 20 and report.head_hash == rows[-1]["row_hash"]
    # not even the owner of the table changes a row: privileges and triggers
    for login in (L.OWNER, L.REGISTRAR, L.INGEST, L.ANALYST):
        with secured.connect(login) as c:
            for stmt in ("UPDATE wh.audit_log SET actor = 'x'", "DELETE FROM wh.audit_log", "TRUNCATE wh.audit_log"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    c.execute(stmt)
                c.rollback()


def test_audit_verify_reports_the_first_broken_link_after_tampering(secured, api):  # noqa: F811
    with api.client(api.token()) as c:
        for _ in range(3):
            c.post("/api/v1/lookup/births", json={"mother_id": MOTHER_ID})
    owner = secured.dsn(L.OWNER)
    ok = audit_verify(owner)
    assert ok.returncode == 0 and "audit chain ok" in ok.stdout, ok.stdout + ok.stderr
    head = ok.stdout.rsplit("head ", 1)[1].strip()
    rows = audit_rows(secured)
    victim, after = rows[-3]["audit_id"], rows[-2]["audit_id"]
    with psycopg.connect(secured.admin, autocommit=True) as su:
        su.execute("SET session_replication_role = replica")  # a superuser silences the triggers
        su.execute("UPDATE wh.audit_log SET actor = 'someone-else' WHERE audit_id = %s", (victim,))
        changed = audit_verify(owner)
        assert changed.returncode == 1 and f"BROKEN at audit_id {victim}: row changed" in changed.stdout
        # recomputing that row's hash only moves the break to the next link
        su.execute(
            "UPDATE wh.audit_log SET row_hash = encode(sha256(convert_to(prev_hash || 'forged', 'UTF8')), 'hex') "
            "WHERE audit_id = %s",
            (victim,),
        )
        assert f"BROKEN at audit_id {victim}" in audit_verify(owner).stdout
        su.execute("DELETE FROM wh.audit_log WHERE audit_id = %s", (victim,))
        deleted = audit_verify(owner)
        assert deleted.returncode == 1 and f"BROKEN at audit_id {after}: link broken" in deleted.stdout
        # removing the newest rows leaves a valid chain: the recorded head catches it
        su.execute("DELETE FROM wh.audit_log WHERE audit_id >= %s", (victim,))
    cut = audit_verify(owner, "--expect-head", head)
    assert cut.returncode == 1 and "recorded head" in cut.stdout


def test_anonymous_junk_is_counted_not_stored(secured, api):  # noqa: F811
    before = len(audit_rows(secured))
    with api.client() as c:
        for i in range(30):
            c.post("/api/v1/lookup/births", json={"mother_id": MOTHER_ID})
            c.get(f"/api/v1/junk-{i}")
    with api.client("forged.token.value") as c:
        c.get("/api/v1/worklists/unregistered")
    assert len(audit_rows(secured)) == before
    with psycopg.connect(secured.admin) as c:
        counts = {(e, s): n for e, s, n in c.execute("SELECT endpoint, status_code, calls FROM wh.audit_anonymous")}
    assert counts[("POST /api/v1/lookup/births", 401)] >= 30
    assert counts[("GET (unmatched)", 404)] >= 30  # one counter, whatever path was tried
    assert counts[("GET /api/v1/worklists/unregistered", 401)] >= 1
