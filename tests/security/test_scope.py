"""Issue 17 §2: the registrar's scope is enforced by the database (row-level security under the verified token's
claims), whatever SQL the API login runs; only the marking office cancels; a cancelled mark is not replayed."""

import psycopg
import pytest

from certpipe.warehouse import logins as L
from registrar.auth import Registrar
from registrar.db import claims
from tests.security.conftest import api, audit_rows, cert_id  # noqa: F401 - fixture

HN = Registrar("hn.hotich1", "UBND phường Ba Đình", "01")
HN_COMMUNE = Registrar("hn.xa", "UBND xã 00008", "01", "00008")
CM = Registrar("cm.hotich", "UBND phường An Xuyên", "96")


def test_without_claims_the_registrar_login_sees_nothing(secured):
    with secured.connect(L.REGISTRAR) as c:
        assert c.execute("SELECT count(*) FROM wh.certificate").fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM wh.certificate_source").fetchone()[0] == 0
        assert c.execute("UPDATE wh.certificate SET status = status").rowcount == 0
        c.execute("RESET ROLE")  # nothing to escape to: the login is the role
        assert c.execute("SELECT count(*) FROM wh.certificate").fetchone()[0] == 0


def test_claims_limit_every_statement_to_the_province_or_commune(secured):
    death = cert_id(secured, "00001.GBT.96025.25")
    with secured.connect(L.REGISTRAR) as c:
        claims(c, HN)
        kinds = c.execute("SELECT kind, count(*) FROM wh.certificate GROUP BY 1").fetchall()
        assert kinds == [("GCS", 4)]
        # SQL that ignores the scope (an injection, a bug) still stays inside it
        assert c.execute("SELECT count(*) FROM wh.certificate WHERE cert_id = %s", (death,)).fetchone()[0] == 0
        assert c.execute("UPDATE wh.certificate SET status = 'used' WHERE cert_id = %s", (death,)).rowcount == 0
        assert c.execute("SELECT count(*) FROM wh.certificate_source WHERE cert_id = %s", (death,)).fetchone()[0] == 0
        c.rollback()
        claims(c, HN_COMMUNE)
        assert c.execute("SELECT count(*) FROM wh.certificate").fetchone()[0] == 1
        c.rollback()
        claims(c, CM)
        assert c.execute("SELECT count(*) FROM wh.certificate").fetchone()[0] == 2
        c.commit()
        # claims last one transaction
        assert c.execute("SELECT count(*) FROM wh.certificate").fetchone()[0] == 0


def test_status_follows_registrations_even_in_raw_sql(secured):
    cid = cert_id(secured, "00002.GCS.01020.25")
    with secured.connect(L.REGISTRAR) as c:
        claims(c, HN)
        # `used` without a registration of this office: refused by the policy
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            c.execute(
                "UPDATE wh.certificate SET status = 'used', registration = jsonb_build_object('office', %s::text) "
                "WHERE cert_id = %s",
                (HN.office, cid),
            )
        c.rollback()
        # a registration naming another office or officer than the claims: refused
        claims(c, HN)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            c.execute(
                "INSERT INTO wh.registration (cert_id, kind, registration_no, registered_on, office, officer) "
                "VALUES (%s, 'GCS', '1/2025', '2025-11-20', 'UBND khác', %s)",
                (cid, HN.sub),
            )
        c.rollback()


def test_only_the_marking_office_cancels_and_a_cancelled_mark_is_not_replayed(secured, api):  # noqa: F811
    cid = cert_id(secured, "00003.GCS.01020.25")
    url = f"/api/v1/certificates/{cid}/registration"
    mark = {"registration_no": "31/2025", "registered_on": "2025-11-20"}
    reason = {"reason": "Nhập nhầm giấy chứng sinh của trẻ khác"}
    other = api.token("hn.hotich9", "UBND phường Ngọc Hà")  # same province, another office
    with api.client(api.token()) as mine, api.client(other) as theirs:
        assert mine.post(url, json=mark).status_code == 200
        refused = theirs.post(f"{url}/cancel", json=reason)
        assert refused.status_code == 403 and "Chỉ cơ quan" in refused.json()["detail"]
        assert mine.post(f"{url}/cancel", json=reason).status_code == 200
        replay = mine.post(url, json=mark)
        assert replay.status_code == 409 and "đã bị hủy" in replay.json()["detail"]
        assert theirs.post(url, json={**mark, "registration_no": "32/2025"}).status_code == 200
        assert mine.post(f"{url}/cancel", json=reason).status_code == 403  # now it is theirs
    with psycopg.connect(secured.admin) as c:
        rows = c.execute(
            "SELECT registration_no, office, cancelled_at IS NOT NULL FROM wh.registration WHERE cert_id = %s "
            "ORDER BY registration_id",
            (cid,),
        ).fetchall()
    assert rows == [("31/2025", "UBND phường Ba Đình", True), ("32/2025", "UBND phường Ngọc Hà", False)]
    outcomes = [(a["actor"], a["action"], a["outcome"]) for a in audit_rows(secured) if a["cert_ids"] == [cid]]
    assert outcomes == [
        ("hn.hotich1", "mark_used", "ok"),
        ("hn.hotich9", "cancel_registration", "forbidden"),
        ("hn.hotich1", "cancel_registration", "ok"),
        ("hn.hotich1", "mark_used", "conflict"),
        ("hn.hotich9", "mark_used", "ok"),
        ("hn.hotich1", "cancel_registration", "forbidden"),
    ]
    # a cancelled registration is never rewritten, not even by its office in raw SQL
    with secured.connect(L.REGISTRAR) as c:
        claims(c, HN)
        assert c.execute("UPDATE wh.registration SET cancel_reason = 'x' WHERE cert_id = %s", (cid,)).rowcount == 0
