"""Worklists: certificates not registered after N days per office, and DHIS2 deaths not yet registered."""

from tests.services.registrar.conftest import DECEASED_ID

CM = ("cm.hotich", "UBND phường An Xuyên", "96")


def age(wh, cert_key, days):
    wh.execute(
        "UPDATE wh.certificate SET created_at = wh.clock() - make_interval(days => %s) WHERE cert_key = %s",
        (days, cert_key),
    )
    wh.commit()


def test_unregistered_after_n_days_in_the_offices_scope(vn_clock, api, wh):
    for key, days in [
        ("00001.GCS.01020.25", 10),
        ("00002.GCS.01020.25", 10),
        ("00003.GCS.01020.25", 1),
        ("00004.GCS.01020.25", 12),
        ("00001.GBT.96025.25", 30),
    ]:
        age(wh, key, days)
    used = api.cert_id(wh, "00002.GCS.01020.25")
    with api.client(api.token()) as hn, api.client(api.token("bd", "UBND phường Ba Đình", "01", "00004")) as bd:
        assert (
            hn.post(
                f"/api/v1/certificates/{used}/registration",
                json={"registration_no": "1/2025", "registered_on": "2025-11-20"},
            ).status_code
            == 200
        )
        province = hn.get("/api/v1/worklists/unregistered", params={"days": 7}).json()
        commune = bd.get("/api/v1/worklists/unregistered", params={"days": 7}).json()
        deaths_only = hn.get("/api/v1/worklists/unregistered", params={"days": 7, "kind": "GBT"}).json()
    # oldest first; used and recent certificates and other provinces' deaths are not on it
    assert [(i["cert_key"], i["waiting_days"]) for i in province["items"]] == [
        ("00004.GCS.01020.25", 12),
        ("00001.GCS.01020.25", 10),
    ]
    assert province["by_commune"] == {"00008": 1, "00004": 1}
    assert [i["cert_key"] for i in commune["items"]] == ["00001.GCS.01020.25"]
    assert deaths_only["count"] == 0
    assert all("record" not in i for i in province["items"])


def with_dhis2(wh, death_id):
    """DHIS2 A6 events and causes (recorded N days before the database clock)."""
    for uid, commune, cert, days in [
        ("ev1", "32014", death_id, 17),
        ("ev2", "32014", None, 10),
        ("ev3", "31942", None, 8),
        ("ev4", "00004", None, 8),
    ]:
        wh.execute(
            "INSERT INTO wh.dhis2_death_event (event_uid, org_unit, commune_code, date_of_death, recorded_at, "
            "data_values, id_number, cert_id, match_method) VALUES (%s, %s, %s, wh.vn_today() - 20, "
            "wh.clock() - make_interval(days => %s), '{}', %s, %s, %s)",
            (uid, "ou" + uid, commune, days, DECEASED_ID if cert else None, cert, cert and "id_number"),
        )
    wh.execute(
        "INSERT INTO wh.cause_of_death (cert_id, source, text, icd10, event_uid) VALUES "
        "(%s, 'hospital', 'Nhồi máu cơ tim cấp', 'I21.9', NULL), "
        "(%s, 'dhis2', 'Nhồi máu cơ tim', 'I21.9', 'ev1')",
        (death_id, death_id),
    )
    wh.commit()


def test_without_dhis2_the_worklist_is_empty_with_a_note(api, wh):
    wh.execute(
        "DROP VIEW IF EXISTS wh.dhis2_unregistered_deaths; "
        "DROP TABLE IF EXISTS wh.cause_of_death, wh.dhis2_push, wh.dhis2_death_event CASCADE"
    )
    wh.commit()
    with api.client(api.token(*CM)) as c:
        r = c.get("/api/v1/worklists/dhis2-deaths")
        death = c.post("/api/v1/lookup/deaths", json={"deceased_id": DECEASED_ID}).json()["items"][0]
    assert r.status_code == 200
    assert (r.json()["available"], r.json()["count"]) == (False, 0) and "DHIS2" in r.json()["note"]
    assert death["dhis2"]["available"] is False and death["cause_of_death"]["by_source"] is None


def test_dhis2_deaths_not_registered_per_commune_and_the_match_on_look_up(vn_clock, api, wh):
    cid = api.cert_id(wh, "00001.GBT.96025.25")
    with_dhis2(wh, cid)
    with api.client(api.token(*CM)) as cm, api.client(api.token(*CM, "32014")) as ax, api.client(api.token()) as hn:
        province = cm.get("/api/v1/worklists/dhis2-deaths").json()
        one = cm.get("/api/v1/worklists/dhis2-deaths", params={"commune": "32014"}).json()
        commune = ax.get("/api/v1/worklists/dhis2-deaths").json()
        outside = ax.get("/api/v1/worklists/dhis2-deaths", params={"commune": "31942"})
        other_province = cm.get("/api/v1/worklists/dhis2-deaths", params={"commune": "00004"})
        hanoi = hn.get("/api/v1/worklists/dhis2-deaths").json()
        death = cm.post("/api/v1/lookup/deaths", json={"deceased_id": DECEASED_ID}).json()["items"][0]
        assert (
            cm.post(
                f"/api/v1/certificates/{cid}/registration",
                json={"registration_no": "9/2025", "registered_on": "2025-11-20"},
            ).status_code
            == 200
        )
        after = cm.get("/api/v1/worklists/dhis2-deaths").json()
    assert [(i["event_uid"], i["waiting_days"]) for i in province["items"]] == [("ev1", 17), ("ev2", 10), ("ev3", 8)]
    assert province["by_commune"] == {"32014": 2, "31942": 1}
    assert [i["event_uid"] for i in one["items"]] == [i["event_uid"] for i in commune["items"]] == ["ev1", "ev2"]
    assert outside.status_code == other_province.status_code == 403
    assert [i["event_uid"] for i in hanoi["items"]] == ["ev4"]
    assert death["dhis2"]["available"] is True and death["dhis2"]["match"]["event_uid"] == "ev1"
    assert "id_number" not in death["dhis2"]["match"] and "data_values" not in death["dhis2"]["match"]
    assert [(s["source"], s["text"]) for s in death["cause_of_death"]["by_source"]] == [
        ("dhis2", "Nhồi máu cơ tim"),
        ("hospital", "Nhồi máu cơ tim cấp"),
    ]
    # registered: off the list
    assert [i["event_uid"] for i in after["items"]] == ["ev2", "ev3"]
    assert api.audit(wh)[0]["cert_ids"] == [cid]
