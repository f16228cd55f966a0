"""Look-ups (Bước 3): by the mother's ID, the deceased's ID, or number + date + facility; scope and audit."""

import hashlib

from tests.services.registrar.conftest import DECEASED_ID, MOTHER_ID


def pepper(wh) -> bytes:
    return bytes(wh.execute("SELECT pepper FROM wh.registrar_pepper").fetchone()[0])


def test_births_by_mother_id_give_record_sources_and_status(api, wh):
    with api.client(api.token()) as c:
        r = c.post("/api/v1/lookup/births", json={"mother_id": MOTHER_ID})
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 3
    assert sorted(i["cert_key"] for i in body["items"]) == [f"0000{n}.GCS.01020.25" for n in (1, 2, 3)]
    item = body["items"][0]
    assert item["status"] == "received" and item["record"]["HOTEN_NND"] == "Nguyễn Thị Lan"
    assert item["record"]["SO_CCCD_NND"] == MOTHER_ID
    assert [(s["source"], s["source_ref"]) for s in item["sources"]] == [("his", "01020")]
    assert item["cause_of_death"] is None and item["dhis2"] is None
    # audited: who, what, which certificates, the query kind and a hash of the ID, never the ID
    (a,) = api.audit(wh)
    assert (a["actor"], a["action"], a["query_kind"], a["outcome"]) == (
        "hn.hotich1",
        "lookup_mother_id",
        "mother_id",
        "ok",
    )
    assert sorted(a["cert_ids"]) == sorted(i["cert_id"] for i in body["items"])
    assert a["query_hash"] == hashlib.sha256(pepper(wh) + MOTHER_ID.encode()).hexdigest()
    assert str(a["client_addr"]) == "127.0.0.1"
    assert MOTHER_ID not in repr(a)


def test_death_by_deceased_id_gives_the_cause_of_death(api, wh):
    token = api.token("cm.hotich", "UBND phường An Xuyên", "96")
    with api.client(token) as c:
        r = c.post("/api/v1/lookup/deaths", json={"deceased_id": DECEASED_ID})
    assert r.status_code == 200
    (item,) = r.json()["items"]
    assert item["kind"] == "GBT" and item["cert_key"] == "00001.GBT.96025.25"
    assert (item["cause_of_death"]["text"], item["cause_of_death"]["icd10"]) == ("Nhồi máu cơ tim cấp", "I21.9")
    assert item["dhis2"]["match"] is None and item["dhis2"]["events"] == []


def test_by_number_date_and_facility_for_either_kind(api, wh):
    hn, cm = api.client(api.token()), api.client(api.token("cm.hotich", "UBND phường An Xuyên", "96"))
    with hn, cm:
        short = hn.post(
            "/api/v1/lookup/by-number", json={"number": "2", "issued_on": "2025-11-10", "facility": "01020"}
        )
        full = hn.post(
            "/api/v1/lookup/by-number",
            json={"number": "00002.GCS.01020.25", "issued_on": "2025-11-10", "facility": "01020", "kind": "GCS"},
        )
        death = cm.post(
            "/api/v1/lookup/by-number", json={"number": "2", "issued_on": "2025-11-03", "facility": "96025"}
        )
        wrong_date = hn.post(
            "/api/v1/lookup/by-number", json={"number": "2", "issued_on": "2025-11-11", "facility": "01020"}
        )
    assert [i["cert_key"] for i in short.json()["items"]] == ["00002.GCS.01020.25"]
    assert [i["cert_key"] for i in full.json()["items"]] == ["00002.GCS.01020.25"]
    assert [i["cert_key"] for i in death.json()["items"]] == ["00002.GBT.96025.25"]
    assert wrong_date.status_code == 404
    assert [a["query_kind"] for a in api.audit(wh)] == ["number"] * 4


def test_registrar_of_one_province_cannot_read_anothers_records(api, wh):
    hanoi = api.token()
    death_id = api.cert_id(wh, "00001.GBT.96025.25")
    with api.client(hanoi) as c:
        by_id = c.post("/api/v1/lookup/deaths", json={"deceased_id": DECEASED_ID})
        nobody = c.post("/api/v1/lookup/deaths", json={"deceased_id": "001090000001"})
        by_number = c.post(
            "/api/v1/lookup/by-number", json={"number": "1", "issued_on": "2025-11-03", "facility": "96025"}
        )
        direct = c.get(f"/api/v1/certificates/{death_id}")
        missing = c.get("/api/v1/certificates/999999")
        use = c.post(
            f"/api/v1/certificates/{death_id}/registration",
            json={"registration_no": "12/2025", "registered_on": "2025-11-20"},
        )
    # a record outside the scope answers exactly like one that does not exist
    assert {r.status_code for r in (by_id, nobody, by_number, direct, missing, use)} == {404}
    assert by_id.json() == nobody.json() == direct.json() == missing.json() == use.json()
    assert DECEASED_ID not in by_id.text and "96025" not in direct.text
    assert wh.execute("SELECT status FROM wh.certificate WHERE cert_id = %s", (death_id,)).fetchone() == ("received",)
    outcomes = [(a["action"], a["outcome"]) for a in api.audit(wh)]
    assert outcomes == [
        ("lookup_deceased_id", "not_found"),
        ("lookup_deceased_id", "not_found"),
        ("lookup_number", "not_found"),
        ("get_certificate", "not_found"),
        ("get_certificate", "not_found"),
        ("mark_used", "not_found"),
    ]
    # the attempt on the other province's certificate is on record
    assert api.audit(wh)[3]["cert_ids"] == [death_id]


def test_commune_registrar_sees_only_their_commune(api, wh):
    ba_dinh = api.token("bd.hotich", "UBND phường Ba Đình", "01", "00004")
    ngoc_ha = api.token("nh.hotich", "UBND phường Ngọc Hà", "01", "00008")
    with api.client(ba_dinh) as a, api.client(ngoc_ha) as b:
        assert a.post("/api/v1/lookup/births", json={"mother_id": MOTHER_ID}).json()["count"] == 3
        assert b.post("/api/v1/lookup/births", json={"mother_id": MOTHER_ID}).status_code == 404
        assert b.post("/api/v1/lookup/births", json={"mother_id": "001195067890"}).json()["count"] == 1
        assert a.post("/api/v1/lookup/births", json={"mother_id": "001195067890"}).status_code == 404


def test_invalid_query_is_refused_without_echoing_it(api, wh):
    with api.client(api.token()) as c:
        r = c.post("/api/v1/lookup/births", json={"mother_id": "00119501234X"})
    assert r.status_code == 422
    assert r.json()["detail"] == "Dữ liệu yêu cầu không hợp lệ."
    assert "00119501234X" not in r.text
    (a,) = api.audit(wh)
    assert (a["action"], a["outcome"], a["query_hash"]) == ("lookup_births", "invalid", None)
