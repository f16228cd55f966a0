"""dhis2_mortality_daily: catch-up over missed days, the server's zone, the server and mapping checked first,
deletions, matching to death notices, registrars' list."""

import datetime as dt
import json

import pytest

from tests.sources.dhis2.conftest import (
    ROOT,
    VN,
    a6_event,
    add_gbt,
    control,
    load_events,
    requests_of,
    run_dag,
    settings,
    xcom_texts,
)

DAYS = [dt.datetime(2026, 11, d, 18, 30, tzinfo=VN) for d in (18, 19, 20)]  # three missed data-interval ends


def watermark(wh):
    return wh.execute(
        "SELECT watermark, source_zone FROM wh.source_watermark WHERE source = 'dhis2' AND source_ref = %s", (ROOT,)
    ).fetchone()


def test_catch_up_over_three_missed_days_each_run_owns_its_day(dhis2_env, wh):
    day = {i: d - dt.timedelta(hours=8) for i, d in enumerate(DAYS)}  # 10:30 inside each interval
    load_events(
        dhis2_env,
        [a6_event(f"EvDay{i}00000", updated=day[i], name=f"Trần Thị Bích {i}") for i in range(3)]
        + [a6_event("EvDeleted01", updated=day[0])],
    )
    runs = []
    for i, end in enumerate(DAYS):
        if i == 2:  # the station deletes a wrongly entered death on the third day
            control(dhis2_env, "events/EvDeleted01/delete", {"updatedAt": day[2].isoformat()})
        run = run_dag("dhis2_mortality_daily", end)
        assert run.state == "success"
        assert "Trần" not in xcom_texts(run) and "1940" not in xcom_texts(run)  # counts only
        runs.append(run.run_id)
    rows = dict(wh.execute("SELECT event_uid, run_id FROM wh.dhis2_death_event").fetchall())
    assert rows == {"EvDay000000": runs[0], "EvDay100000": runs[1], "EvDay200000": runs[2], "EvDeleted01": runs[2]}
    assert wh.execute(
        "SELECT deleted, commune_code FROM wh.dhis2_death_event WHERE event_uid = 'EvDeleted01'"
    ).fetchone() == (True, "00190")
    assert watermark(wh) == (DAYS[-1], "Asia/Ho_Chi_Minh")
    listed = {r[0] for r in wh.execute("SELECT event_uid FROM wh.dhis2_unregistered_deaths")}
    assert listed == {"EvDay000000", "EvDay100000", "EvDay200000"}  # the deleted death is not on the list
    before = wh.execute("SELECT count(*), max(last_seen_at) FROM wh.dhis2_death_event").fetchone()
    assert run_dag("dhis2_mortality_daily", DAYS[1]).state == "success"  # re-running a day is harmless
    assert wh.execute("SELECT count(*) FROM wh.dhis2_death_event").fetchone()[0] == before[0]


@pytest.mark.parametrize("zone", ["Etc/UTC", "Asia/Ho_Chi_Minh"])
def test_no_update_is_missed_across_day_boundaries_whatever_the_servers_zone(dhis2, wh, warehouse_dsn, zone):
    """72 updates, one an hour over three daily windows, without any overlap: every one is read once, at its true
    moment, whichever zone the server keeps its clock in."""
    from certpipe.sources.dhis2.daily import pull_window

    control(dhis2, "config", {"zone": zone})
    first = DAYS[0] - dt.timedelta(days=1) + dt.timedelta(minutes=15)
    moments = {f"EvHour{h:05d}": first + dt.timedelta(hours=h) for h in range(72)}
    load_events(dhis2, [a6_event(uid, updated=at) for uid, at in moments.items()])
    edited = DAYS[0] - dt.timedelta(minutes=5)
    control(dhis2, "edits", {"after": 2, "events": [{"event": "EvHour00001", "updatedAt": edited.isoformat()}]})
    received = 0
    for end in DAYS:
        counts = pull_window(
            ROOT, end - dt.timedelta(days=1), end, warehouse_dsn, run_id="t", settings=settings(overlap_minutes=0)
        )
        assert (counts["server_zone"], counts["version"]) == (zone, "2.41.4")
        received += counts["received"]
    stored = dict(wh.execute("SELECT event_uid, dhis2_updated_at FROM wh.dhis2_death_event").fetchall())
    assert stored == {**moments, "EvHour00001": edited}  # the edit made during the first pull is the one kept
    assert received == 73  # EvHour00001 read twice: before and after the station's edit
    assert watermark(wh) == (DAYS[-1], zone)
    first_after = {"Etc/UTC": "2026-11-17T11:30:00.000", "Asia/Ho_Chi_Minh": "2026-11-17T18:30:00.000"}[zone]
    assert requests_of(dhis2)[0]["params"]["updatedAfter"] == first_after


def test_a_version_mismatch_fails_the_run_before_anything_is_read_or_written(dhis2_env, wh, monkeypatch):
    control(dhis2_env, "config", {"version": "2.42"})
    load_events(dhis2_env, [a6_event("EvNotRead01", updated=DAYS[0] - dt.timedelta(hours=2))])
    conn = {"conn_type": "http", "host": f"{dhis2_env}/dhis2", "login": "admin", "password": "district"}
    monkeypatch.setenv("AIRFLOW_CONN_DHIS2_DEFAULT", json.dumps({**conn, "extra": {"version": "2.41"}}))
    run = run_dag("dhis2_mortality_daily", DAYS[0])
    assert run.state == "failed"
    assert not requests_of(dhis2_env)  # no event was asked for
    assert wh.execute("SELECT count(*) FROM wh.dhis2_death_event").fetchone()[0] == 0
    assert watermark(wh) is None


def test_metadata_is_checked_first_required_fails_optional_is_skipped(dhis2, wh, warehouse_dsn):
    from airflow.sdk.exceptions import AirflowFailException

    from certpipe.sources.dhis2.daily import pull_window

    load_events(dhis2, [a6_event("EvMeta00001", updated=DAYS[0] - dt.timedelta(hours=2))])
    end = DAYS[0]
    control(dhis2, "metadata", {"remove": ["f0wPk4WKCmU", "lR8ENNJ8S4C"], "valueType": {"amfixvUrTEW": "TEXT"}})
    with pytest.raises(AirflowFailException) as e:
        pull_window(ROOT, end - dt.timedelta(days=1), end, warehouse_dsn, run_id="t", settings=settings())
    message = str(e.value)
    assert "full_name: data element f0wPk4WKCmU is not on program stage qgYbmBm4kx8" in message
    assert "date_of_birth: data element amfixvUrTEW has value type TEXT, expected DATE" in message
    assert "age_days" not in message  # optional: skipped, not fatal
    assert watermark(wh) is None and not requests_of(dhis2)

    control(dhis2, "reset", {"version": "2.41"})
    load_events(dhis2, [a6_event("EvMeta00001", updated=DAYS[0] - dt.timedelta(hours=2))])
    control(dhis2, "metadata", {"remove": ["lR8ENNJ8S4C"]})
    counts = pull_window(
        ROOT, end - dt.timedelta(days=1), end, warehouse_dsn, run_id="t", settings=settings(data_elements={})
    )
    assert counts["received"] == 1
    skipped = counts["skipped_elements"]
    assert skipped["age_days"] == "data element lR8ENNJ8S4C is not on program stage qgYbmBm4kx8"
    assert skipped["justice_registered"].startswith("no UID configured")  # the pilot's placeholders
    control(dhis2, "config", {"zone": "Europe/Oslo"})
    with pytest.raises(AirflowFailException, match="time zone is Europe/Oslo"):
        pull_window(ROOT, end, end, warehouse_dsn, run_id="t", settings=settings(server_timezone="Asia/Ho_Chi_Minh"))


def test_matching_by_id_then_normalised_name_and_the_unregistered_list(dhis2, wh, warehouse_dsn):
    from certpipe.sources.dhis2.daily import match_events, pull_window

    used = dt.datetime(2026, 11, 15, 9, tzinfo=VN)
    by_id = add_gbt(wh, "00001.GBT.01020.26", name="LÊ VĂN BÌNH", id_number="001040012345", used_at=used)
    by_name = add_gbt(wh, "00002.GBT.01020.26", name="PHẠM THỊ HOA", dob="19450607", dod="202611090100")
    near = add_gbt(wh, "00003.GBT.01020.26", name="ĐỖ VĂN CƯỜNG", dob="19300101", dod="202611080200", commune="09988")
    add_gbt(wh, "00004.GBT.01020.26", name="VŨ THỊ LAN", dob="19500505", dod="202611070300")
    add_gbt(wh, "00005.GBT.01020.26", name="VŨ THỊ LAN", dob="19500505", dod="202611070900")
    other_id = add_gbt(
        wh, "00006.GBT.01020.26", name="HOÀNG VĂN TƯ", dob="19551212", dod="202611060000", id_number="001055099999"
    )
    stamp = dt.datetime(2026, 11, 18, 9, tzinfo=VN)
    load_events(
        dhis2,
        [
            a6_event("EvById00001", name="Lê Văn Bình (sai chính tả)", id_number="001 040 012 345", updated=stamp),
            a6_event("EvByName001", name="  pham  thi   hoa ", dob="1945-06-07", dod="2026-11-09", updated=stamp),
            a6_event("EvNear00001", "09988", name="Đỗ Văn Cường", dob="1930-01-01", dod="2026-11-07", updated=stamp),
            a6_event("EvAmbiguous", name="Vũ Thị Lan", dob="1950-05-05", dod="2026-11-07", updated=stamp),
            a6_event(
                "EvOtherId01",
                name="Hoàng Văn Tư",
                dob="1955-12-12",
                dod="2026-11-06",
                id_number="001055011111",
                updated=stamp,
            ),
            a6_event("EvWrongComm", "09988", name="Phạm Thị Hoa", dob="1945-06-07", dod="2026-11-09", updated=stamp),
            a6_event("EvUnknown01", name="Không Ai Biết", recorded="2026-11-01", updated=stamp),
        ],
    )
    end = dt.datetime(2026, 11, 18, 18, 30, tzinfo=VN)
    counts = pull_window(ROOT, end - dt.timedelta(days=1), end, warehouse_dsn, run_id="t", settings=settings())
    assert counts["received"] == 7 and counts["pages"] == 2  # all at one instant: page 1, then that instant unpaged
    assert match_events(warehouse_dsn) == {"examined": 7, "matched": 3, "ambiguous": 1, "unmatched": 3}
    got = {
        r[0]: r[1:]
        for r in wh.execute(
            "SELECT event_uid, cert_id, match_method, match_confidence::float FROM wh.dhis2_death_event"
        )
    }
    assert got["EvById00001"] == (by_id, "id_number", 1.0)
    assert got["EvByName001"] == (by_name, "name_dob_dod_commune", 0.9)
    assert got["EvNear00001"] == (near, "name_dob_commune_dod_near", 0.7)
    assert got["EvAmbiguous"] == (None, "ambiguous", None)
    assert got["EvOtherId01"][0] != other_id and got["EvOtherId01"][0] is None  # different ID: another person
    assert got["EvWrongComm"] == (None, None, None) and got["EvUnknown01"] == (None, None, None)

    rows = {
        r[1]: r
        for r in wh.execute(
            "SELECT commune_code, event_uid, cert_id, date_of_death, recorded_at, waiting_days, status_vi "
            "FROM wh.dhis2_unregistered_deaths"
        )
    }
    assert "EvById00001" not in rows  # registered (its death notice is used)
    assert set(rows) == {"EvByName001", "EvNear00001", "EvAmbiguous", "EvOtherId01", "EvWrongComm", "EvUnknown01"}
    assert rows["EvByName001"][2] == by_name and rows["EvByName001"][6].startswith("Đã có giấy báo tử")
    assert rows["EvNear00001"][0] == "09988" and rows["EvUnknown01"][0] == "00190"
    today = dt.datetime.now(VN).date()
    assert rows["EvUnknown01"][5] == (today - dt.date(2026, 11, 1)).days
    assert rows["EvUnknown01"][3] == dt.date(2026, 11, 10)

    # a death notice arriving later is matched on the next run; registering it takes it off the list
    late = add_gbt(wh, "00007.GBT.01020.26", name="KHÔNG AI BIẾT", dob="19400302", dod="202611100500")
    assert match_events(warehouse_dsn)["matched"] == 1
    wh.execute("UPDATE wh.certificate SET status = 'used', used_at = now() WHERE cert_id = %s", (late,))
    wh.commit()
    assert "EvUnknown01" not in {r[0] for r in wh.execute("SELECT event_uid FROM wh.dhis2_unregistered_deaths")}
