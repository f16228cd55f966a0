"""dhis2_mortality_daily: catch-up over missed days, deletions, matching to death notices, registrars' list."""

import datetime as dt

import httpx

from tests.sources.dhis2.conftest import ROOT, VN, a6_event, add_gbt, load_events, run_dag, settings, xcom_texts

DAYS = [dt.datetime(2026, 11, d, 18, 30, tzinfo=VN) for d in (18, 19, 20)]  # three missed data-interval ends


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
            httpx.post(
                f"{dhis2_env}/_control/dhis2/events/EvDeleted01/delete",
                json={"updatedAt": day[2].replace(tzinfo=None).isoformat()},
            ).raise_for_status()
        run = run_dag("dhis2_mortality_daily", end)
        assert run.state == "success"
        assert "Trần" not in xcom_texts(run) and "1940" not in xcom_texts(run)  # counts only
        runs.append(run.run_id)
    rows = dict(wh.execute("SELECT event_uid, run_id FROM wh.dhis2_death_event").fetchall())
    assert rows == {"EvDay000000": runs[0], "EvDay100000": runs[1], "EvDay200000": runs[2], "EvDeleted01": runs[2]}
    assert wh.execute(
        "SELECT deleted, commune_code FROM wh.dhis2_death_event WHERE event_uid = 'EvDeleted01'"
    ).fetchone() == (True, "00190")
    marks = wh.execute(
        "SELECT watermark FROM wh.source_watermark WHERE source = 'dhis2' AND source_ref = %s", (ROOT,)
    ).fetchone()
    assert marks == (DAYS[-1],)
    listed = {r[0] for r in wh.execute("SELECT event_uid FROM wh.dhis2_unregistered_deaths")}
    assert listed == {"EvDay000000", "EvDay100000", "EvDay200000"}  # the deleted death is not on the list
    before = wh.execute("SELECT count(*), max(last_seen_at) FROM wh.dhis2_death_event").fetchone()
    assert run_dag("dhis2_mortality_daily", DAYS[1]).state == "success"  # re-running a day is harmless
    assert wh.execute("SELECT count(*) FROM wh.dhis2_death_event").fetchone()[0] == before[0]


def test_matching_by_id_then_normalised_name_and_the_unregistered_list(dhis2, wh, warehouse_dsn):
    from certpipe.sources.dhis2.mortality import match_events, pull_window

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
    assert counts["received"] == 7 and counts["pages"] == 3  # page size 3
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
