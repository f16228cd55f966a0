"""dhis2_cod_sync: one death, one A6 event (linked station events updated, events created only for deaths not in
A6), completed and deleted events, idempotent re-runs, placeholders never pushed, causes pulled back."""

import datetime as dt

from tests.sources.dhis2.conftest import (
    DE,
    PILOT,
    ROOT,
    VN,
    a6_event,
    add_gbt,
    control,
    load_events,
    requests_of,
    run_dag,
    sandbox_events,
    settings,
    xcom_texts,
)


def last_monday_2am() -> dt.datetime:
    now = dt.datetime.now(VN)
    monday = (now - dt.timedelta(days=now.weekday())).replace(hour=2, minute=0, second=0, microsecond=0)
    return monday if monday <= now else monday - dt.timedelta(days=7)


def pushes(wh):
    return {r[0]: r[1:] for r in wh.execute("SELECT cert_id, outcome, error_codes, attempts FROM wh.dhis2_push")}


def values_of(event) -> dict:
    by_uid = {uid: name for name, uid in DE.items()}
    return {by_uid.get(d["dataElement"], d["dataElement"]): d["value"] for d in event["dataValues"]}


def test_weekly_push_is_idempotent_keeps_errors_and_pulls_causes_back(dhis2_env, wh):
    from certpipe.sources.dhis2.keys import event_uid

    week2 = last_monday_2am()
    week1 = week2 - dt.timedelta(days=7)
    used = week1 - dt.timedelta(days=2)
    ok = [
        add_gbt(wh, f"0001{i}.GBT.01020.26", name=f"TRẦN VĂN HẢI {i}", used_at=used, registration={"number": f"KT-{i}"})
        for i in range(3)
    ]
    rejected = add_gbt(wh, "00020.GBT.01020.26", used_at=used)
    no_unit = add_gbt(wh, "00021.GBT.01020.26", commune="99999", used_at=used)
    add_gbt(wh, "00022.GBT.01020.26")  # not registered: not pushed
    add_gbt(wh, "00023.GBT.01020.26", used_at=week1 - dt.timedelta(days=9))  # registered the week before
    control(dhis2_env, "errors", {event_uid("00020.GBT.01020.26"): "E1000"})

    run = run_dag("dhis2_cod_sync", week1)
    assert run.state == "success"
    assert "TRẦN" not in xcom_texts(run)
    got = pushes(wh)
    assert {c: got[c][:2] for c in got} == {
        **{c: ("created", []) for c in ok},
        rejected: ("error", ["E1000"]),
        no_unit: ("error", ["NO_ORG_UNIT"]),
    }
    events = sandbox_events(dhis2_env)
    assert set(events) == {event_uid(f"0001{i}.GBT.01020.26") for i in range(3)}
    ev = events[event_uid("00010.GBT.01020.26")]
    values = values_of(ev)
    assert ev["orgUnit"] == "TytOChoDua1" and ev["status"] == "ACTIVE"
    assert values["justice_registered"] == "true" and values["from_justice"] == "true"
    assert values["justice_registration_number"] == "KT-0" and values["justice_cause_icd10"] == "I50.9"
    assert (values["age_years"], values["age_months"], values["age_days"]) == ("86", "1040", "31664")
    assert values["sex"] == "M" and values["date_of_birth"] == "1940-03-02"

    # running the week again creates nothing new; failures are retried and still recorded
    stamps = {u: e["updatedAt"] for u, e in events.items()}
    assert run_dag("dhis2_cod_sync", week1).state == "success"
    assert {u: e["updatedAt"] for u, e in sandbox_events(dhis2_env).items()} == stamps
    again = pushes(wh)
    assert all(again[c][0] == "created" and again[c][2] == 1 for c in ok)
    assert again[rejected] == ("error", ["E1000"], 2)

    # a commune station completes the cause of death on one registration (and on a death we do not know)
    station = dict(
        ev,
        status="COMPLETED",
        dataValues=[*ev["dataValues"], {"dataElement": DE["cause_icd10"], "value": "I21.9"}],
        updatedAt=(week2 - dt.timedelta(days=1)).isoformat(),
    )
    stranger = dict(station, event="EvStranger1")
    load_events(dhis2_env, [station, stranger])
    control(dhis2_env, "errors", {event_uid("00020.GBT.01020.26"): None})

    run = run_dag("dhis2_cod_sync", week2)
    assert run.state == "success"
    assert pushes(wh)[rejected][:2] == ("created", [])  # the earlier failure went through this time
    causes = {(r[0], r[1]): r[2:] for r in wh.execute("SELECT cert_id, source, text, icd10 FROM wh.cause_of_death")}
    # the text is the cause option's name on the server (the register has no free-text cause element)
    assert causes == {(ok[0], "dhis2"): ("Nhồi máu cơ tim cấp", "I21.9"), (ok[0], "hospital"): ("Suy tim", "I50.9")}
    record = wh.execute(
        "SELECT record->>'NGUYENNHAN_TV', record->>'BENH_ICD10_ID' FROM wh.certificate WHERE cert_id = %s", (ok[0],)
    ).fetchone()
    assert record == ("Suy tim", "I50.9")  # the hospital's death notice is not overwritten


def test_one_death_one_event_completed_and_deleted_events(dhis2, wh, warehouse_dsn):
    """Deaths the stations already entered are updated in place (completed stays completed), a death not in A6 gets
    its event, a deleted event is recorded once and left alone, an expired completed event is reported."""
    from certpipe.sources.dhis2.daily import match_events, pull_window
    from certpipe.sources.dhis2.keys import event_uid
    from certpipe.sources.dhis2.push import push_registrations

    now = dt.datetime.now(VN)
    week = (now - dt.timedelta(days=7), now)
    used = now - dt.timedelta(days=1)
    recent, old = now - dt.timedelta(hours=2), now - dt.timedelta(days=10)
    cert = {
        k: add_gbt(wh, f"0003{i}.GBT.01020.26", name=f"LÊ VĂN NĂM {i}", id_number=f"00104001234{i}", used_at=used)
        for i, k in enumerate(("completed", "new", "deleted", "expired"))
    }
    station = {  # the stations' own events of three of these deaths, all completed
        "completed": {
            **a6_event("EvStation01", name="Lê Văn Năm 0", id_number="001040012340", updated=recent),
            "geometry": {"type": "Point", "coordinates": [105.85, 21.02]},
        },
        "deleted": a6_event("EvStation03", name="Lê Văn Năm 2", id_number="001040012342", updated=recent),
        "expired": a6_event("EvStation04", name="Lê Văn Năm 3", id_number="001040012343", updated=old),
    }
    load_events(dhis2, list(station.values()))
    pull_window(ROOT, now - dt.timedelta(days=11), now, warehouse_dsn, run_id="t", settings=settings())
    assert match_events(warehouse_dsn)["matched"] == 3
    control(dhis2, "events/EvStation03/delete")  # deleted at the station after the daily pull
    control(dhis2, "config", {"complete_expiry_days": 7})
    before = sandbox_events(dhis2)

    counts = push_registrations(*week, warehouse_dsn, run_id="w1", settings=settings())
    assert {k: counts[k] for k in ("created", "updated", "deleted", "refused", "error", "linked")} == {
        "created": 1,
        "updated": 1,
        "deleted": 1,
        "refused": 1,
        "error": 0,
        "linked": 1,
    }
    after = sandbox_events(dhis2)
    assert set(after) - set(before) == {event_uid("00031.GBT.01020.26")}  # created only for the death not in A6
    kept = after["EvStation01"]
    assert kept["status"] == "COMPLETED" and kept["orgUnit"] == before["EvStation01"]["orgUnit"]  # not reopened
    assert kept["geometry"] == before["EvStation01"]["geometry"]  # every field sent back: nothing cleared
    assert values_of(kept)["justice_registered"] == "true" and values_of(kept)["full_name"] == "Lê Văn Năm 0"
    assert "from_justice" not in values_of(kept)  # the station's event: only the justice system's fields
    got = pushes(wh)
    assert got[cert["deleted"]][:2] == ("deleted", ["E1082"]) and got[cert["expired"]][:2] == ("refused", ["E1043"])
    linked = dict(wh.execute("SELECT cert_id, linked FROM wh.dhis2_push").fetchall())
    assert linked == {cert["completed"]: True, cert["new"]: False, cert["deleted"]: True, cert["expired"]: True}

    # the next week: nothing sent for the deleted or refused events, nothing created again
    control(dhis2, "reset", {"version": "2.41"})
    load_events(dhis2, [a6_event("EvStation01", id_number="001040012340", updated=recent)])
    counts = push_registrations(*week, warehouse_dsn, run_id="w2", settings=settings())
    assert counts["unchanged"] == 2 and counts["selected"] == 2
    assert not requests_of(dhis2, "/dhis2/api/tracker", "POST")
    assert pushes(wh)[cert["deleted"]][2] == 1  # recorded once


def test_placeholders_are_never_pushed(dhis2, wh, warehouse_dsn):
    """Without the deployment's UIDs for the pilot fields, nothing is written to them: a new event carries the
    register's standard fields and a station's event is left as it is (skipped, reported)."""
    from certpipe.sources.dhis2.daily import match_events, pull_window
    from certpipe.sources.dhis2.keys import event_uid
    from certpipe.sources.dhis2.push import push_registrations

    now = dt.datetime.now(VN)
    linked = add_gbt(wh, "00040.GBT.01020.26", id_number="001040099990", used_at=now - dt.timedelta(days=1))
    new = add_gbt(wh, "00041.GBT.01020.26", name="MAI THỊ SÁU", used_at=now - dt.timedelta(days=1))
    load_events(dhis2, [a6_event("EvStation09", id_number="001040099990", updated=now - dt.timedelta(hours=1))])
    pull_window(ROOT, now - dt.timedelta(days=1), now, warehouse_dsn, run_id="t", settings=settings())
    match_events(warehouse_dsn)

    counts = push_registrations(
        now - dt.timedelta(days=7), now, warehouse_dsn, run_id="w", settings=settings(data_elements={})
    )
    assert counts["skipped_elements"]["justice_registered"].startswith("no UID configured")
    assert pushes(wh)[linked][:2] == ("skipped", ["NOTHING_TO_SEND"]) and pushes(wh)[new][0] == "created"
    created = sandbox_events(dhis2)[event_uid("00041.GBT.01020.26")]
    assert not set(values_of(created)) & set(PILOT)
    assert values_of(created)["full_name"] == "MAI THỊ SÁU"


def test_a_death_keeps_its_own_event_when_a_station_enters_it_later(dhis2, wh, warehouse_dsn):
    from certpipe.sources.dhis2.daily import match_events, pull_window
    from certpipe.sources.dhis2.keys import event_uid
    from certpipe.sources.dhis2.push import push_registrations

    now = dt.datetime.now(VN)
    week = (now - dt.timedelta(days=7), now)
    cert = add_gbt(wh, "00050.GBT.01020.26", id_number="001040055550", used_at=now - dt.timedelta(days=1))
    own = event_uid("00050.GBT.01020.26")
    assert push_registrations(*week, warehouse_dsn, run_id="w1", settings=settings())["created"] == 1
    wh.execute('UPDATE wh.certificate SET registration = \'{"number": "KT-9"}\' WHERE cert_id = %s', (cert,))
    wh.commit()
    control(dhis2, "errors", {own: "E1000"})  # the update of our event fails once
    assert push_registrations(*week, warehouse_dsn, run_id="w2", settings=settings())["error"] == 1
    load_events(dhis2, [a6_event("EvStation05", id_number="001040055550", updated=now - dt.timedelta(hours=1))])
    pull_window(ROOT, now - dt.timedelta(days=1), now, warehouse_dsn, run_id="t", settings=settings())
    match_events(warehouse_dsn)
    control(dhis2, "errors", {own: None})

    counts = push_registrations(*week, warehouse_dsn, run_id="w3", settings=settings())
    assert (counts["updated"], counts["linked"]) == (1, 0)
    events = sandbox_events(dhis2)
    assert values_of(events[own])["justice_registration_number"] == "KT-9"
    assert "justice_registered" not in values_of(events["EvStation05"])  # not written twice
    assert wh.execute("SELECT event_uid, linked FROM wh.dhis2_push").fetchall() == [(own, False)]
