"""Marking certificates used: once only, explicit audited cancellation, and concurrent registrars over HTTP."""

import threading

import httpx

from tests.core.records import birth

REG = {"registration_no": "125/2025", "registered_on": "2025-11-20"}


def test_mark_used_records_the_registration_and_a_second_use_is_refused(api, wh):
    cid = api.cert_id(wh, "00001.GCS.01020.25")
    with api.client(api.token()) as c, api.client(api.token("hn.hotich2", "UBND phường Ba Đình")) as other:
        first = c.post(f"/api/v1/certificates/{cid}/registration", json=REG)
        again = other.post(
            f"/api/v1/certificates/{cid}/registration",
            json={"registration_no": "126/2025", "registered_on": "2025-11-21"},
        )
        seen = c.get(f"/api/v1/certificates/{cid}").json()
    assert first.status_code == 200
    assert first.json()["registration"] == {
        "registration_no": "125/2025",
        "registered_on": "2025-11-20",
        "office": "UBND phường Ba Đình",
        "officer": "hn.hotich1",
    }
    assert again.status_code == 409
    assert again.json()["detail"].startswith("Giấy này đã được sử dụng để đăng ký hộ tịch")
    assert seen["status"] == "used" and seen["registration"]["registration_no"] == "125/2025" and seen["used_at"]
    rows = wh.execute(
        "SELECT registration_no, registered_on::text, office, officer, cancelled_at FROM wh.registration"
    ).fetchall()
    assert rows == [("125/2025", "2025-11-20", "UBND phường Ba Đình", "hn.hotich1", None)]
    assert [(a["action"], a["outcome"], a["cert_ids"]) for a in api.audit(wh)] == [
        ("mark_used", "ok", [cid]),
        ("mark_used", "conflict", [cid]),
        ("get_certificate", "ok", [cid]),
    ]
    # the ingestion core now refuses changes to it (warehouse rule 4)
    assert load_changed(wh).refusals_by_rule == {"ALREADY_USED": 1}


def load_changed(wh):
    from certpipe import warehouse
    from certpipe.core.ingest import ingest

    batch = warehouse.create_batch(wh, source="his", source_ref="01020", kind="GCS")
    wh.commit()
    return ingest(
        wh,
        batch_id=batch,
        kind="GCS",
        source="his",
        source_ref="01020",
        records=[birth(1, CAN_NANG_CON=3300)],
        record_ids=["x"],
    )


def test_undoing_a_registration_needs_a_reason_and_is_audited(api, wh):
    cid = api.cert_id(wh, "00002.GCS.01020.25")
    url = f"/api/v1/certificates/{cid}/registration"
    with api.client(api.token()) as c:
        not_used = c.post(f"{url}/cancel", json={"reason": "Nhập nhầm số đăng ký"})
        assert c.post(url, json=REG).status_code == 200
        no_reason = c.post(f"{url}/cancel", json={})
        short = c.post(f"{url}/cancel", json={"reason": "sai"})
        undone = c.post(f"{url}/cancel", json={"reason": "Nhập nhầm giấy chứng sinh của trẻ khác"})
        reused = c.post(url, json={"registration_no": "127/2025", "registered_on": "2025-11-21"})
    assert not_used.status_code == 409 and "chưa được sử dụng" in not_used.json()["detail"]
    assert (no_reason.status_code, short.status_code, undone.status_code, reused.status_code) == (422, 422, 200, 200)
    rows = wh.execute(
        "SELECT registration_no, cancelled_by, cancel_reason FROM wh.registration ORDER BY registration_id"
    ).fetchall()
    assert rows == [("125/2025", "hn.hotich1", "Nhập nhầm giấy chứng sinh của trẻ khác"), ("127/2025", None, None)]
    assert wh.execute(
        "SELECT status, registration->>'registration_no' FROM wh.certificate WHERE cert_id = %s", (cid,)
    ).fetchone() == ("used", "127/2025")
    assert [(a["action"], a["outcome"]) for a in api.audit(wh)] == [
        ("cancel_registration", "conflict"),
        ("mark_used", "ok"),
        ("cancel_registration", "invalid"),
        ("cancel_registration", "invalid"),
        ("cancel_registration", "ok"),
        ("mark_used", "ok"),
    ]


def test_two_registrars_marking_the_same_certificate_at_once_exactly_one_wins(api, wh):
    keys = [f"0000{n}.GCS.01020.25" for n in (1, 2, 3)]
    tokens = [api.token("hn.hotich1"), api.token("hn.hotich2", "UBND phường Ngọc Hà")]
    for key in keys:
        cid = api.cert_id(wh, key)
        barrier, results = threading.Barrier(2), [None, None]

        def register(i, cid=cid, barrier=barrier, results=results):
            with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {tokens[i]}"}, timeout=30) as c:
                c.get("/healthz")  # connection open before the race
                barrier.wait()
                results[i] = c.post(
                    f"/api/v1/certificates/{cid}/registration",
                    json={"registration_no": f"{i}/2025", "registered_on": "2025-11-20"},
                )

        threads = [threading.Thread(target=register, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.status_code for r in results) == [200, 409]
        winner = next(i for i, r in enumerate(results) if r.status_code == 200)
        rows = wh.execute("SELECT registration_no, officer FROM wh.registration WHERE cert_id = %s", (cid,)).fetchall()
        assert rows == [(f"{winner}/2025", ["hn.hotich1", "hn.hotich2"][winner])]
        assert wh.execute(
            "SELECT registration->>'registration_no' FROM wh.certificate WHERE cert_id = %s", (cid,)
        ).fetchone() == (f"{winner}/2025",)
        wh.commit()
    audit = api.audit(wh)
    assert len(audit) == 6 and sorted(a["outcome"] for a in audit) == ["conflict"] * 3 + ["ok"] * 3
