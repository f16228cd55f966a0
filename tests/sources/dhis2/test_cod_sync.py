"""dhis2_cod_sync: idempotent push of the week's registrations, partial import errors, causes pulled back."""

import datetime as dt

import httpx

from tests.sources.dhis2.conftest import DE, VN, add_gbt, run_dag, sandbox_events, xcom_texts


def last_monday_2am() -> dt.datetime:
    now = dt.datetime.now(VN)
    monday = (now - dt.timedelta(days=now.weekday())).replace(hour=2, minute=0, second=0, microsecond=0)
    return monday if monday <= now else monday - dt.timedelta(days=7)


def pushes(wh):
    return {r[0]: r[1:] for r in wh.execute("SELECT cert_id, outcome, error_codes, attempts FROM wh.dhis2_push")}


def test_weekly_push_is_idempotent_keeps_errors_and_pulls_causes_back(dhis2_env, wh):
    from certpipe.sources.dhis2.mortality import event_uid

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
    httpx.post(f"{dhis2_env}/_control/dhis2/errors", json={event_uid("00020.GBT.01020.26"): "E1125"})

    run = run_dag("dhis2_cod_sync", week1)
    assert run.state == "success"
    assert "TRẦN" not in xcom_texts(run)
    got = pushes(wh)
    assert {c: got[c][:2] for c in got} == {
        **{c: ("created", []) for c in ok},
        rejected: ("error", ["E1125"]),
        no_unit: ("error", ["NO_ORG_UNIT"]),
    }
    events = sandbox_events(dhis2_env)
    assert set(events) == {event_uid(f"0001{i}.GBT.01020.26") for i in range(3)}
    ev = events[event_uid("00010.GBT.01020.26")]
    values = {d["dataElement"]: d["value"] for d in ev["dataValues"]}
    assert ev["orgUnit"] == "TytOChoDua1" and ev["status"] == "ACTIVE" and values[DE["justice_registered"]] == "true"
    assert values[DE["justice_registration_number"]] == "KT-0" and values[DE["justice_cause_icd10"]] == "I50.9"

    # running the week again creates nothing new; failures are retried and still recorded
    stamps = {u: e["updatedAt"] for u, e in events.items()}
    assert run_dag("dhis2_cod_sync", week1).state == "success"
    assert {u: e["updatedAt"] for u, e in sandbox_events(dhis2_env).items()} == stamps
    again = pushes(wh)
    assert all(again[c][0] == "created" and again[c][2] == 1 for c in ok)
    assert again[rejected] == ("error", ["E1125"], 2)

    # a commune station completes the cause of death on one registration (and on a death we do not know)
    station = dict(
        ev,
        dataValues=ev["dataValues"]
        + [
            {"dataElement": DE["cause_text"], "value": "Nhồi máu cơ tim cấp"},
            {"dataElement": DE["cause_icd10"], "value": "i21.9"},
        ],
        updatedAt=(week2 - dt.timedelta(days=1)).replace(tzinfo=None).isoformat(),
    )
    stranger = dict(station, event="EvStranger1")
    httpx.post(f"{dhis2_env}/_control/dhis2/events", json={"events": [station, stranger]}).raise_for_status()
    httpx.post(f"{dhis2_env}/_control/dhis2/errors", json={event_uid("00020.GBT.01020.26"): None})

    run = run_dag("dhis2_cod_sync", week2)
    assert run.state == "success"
    assert pushes(wh)[rejected][:2] == ("created", [])  # the earlier failure went through this time
    causes = {(r[0], r[1]): r[2:] for r in wh.execute("SELECT cert_id, source, text, icd10 FROM wh.cause_of_death")}
    assert causes == {(ok[0], "dhis2"): ("Nhồi máu cơ tim cấp", "I21.9"), (ok[0], "hospital"): ("Suy tim", "I50.9")}
    record = wh.execute(
        "SELECT record->>'NGUYENNHAN_TV', record->>'BENH_ICD10_ID' FROM wh.certificate WHERE cert_id = %s", (ok[0],)
    ).fetchone()
    assert record == ("Suy tim", "I50.9")  # the hospital's death notice is not overwritten
