"""Dhis2Hook against the sandbox DHIS2 of each version over HTTP: server check, parameters, paging over changing
data, deletions, imports read per object whatever the HTTP status, connection settings."""

import datetime as dt
import json

import httpx
import pytest

from tests.sources.dhis2.conftest import CLIENT, ROOT, VN, a6_event, control, load_events, requests_of

T0 = dt.datetime(2026, 11, 18, 9, tzinfo=VN)
WINDOW = {
    "program": "uX3pS8aZHN2",
    "program_stage": "qgYbmBm4kx8",
    "org_unit": ROOT,
    "since": dt.datetime(2026, 11, 18, tzinfo=VN),
    "until": dt.datetime(2026, 11, 19, tzinfo=VN),
}


def read_all(hook, **over) -> list[str]:
    return [e["event"] for page in hook.changed_events(**{**WINDOW, **over}) for e in page]


@pytest.mark.parametrize("version", ["2.40", "2.41", "2.42"])
def test_pages_through_every_version_with_its_own_parameters(dhis2, version):
    from certpipe.sources.dhis2.hook import Dhis2Hook

    control(dhis2, "config", {"version": version})
    load_events(
        dhis2,
        [a6_event(f"Ev{i:09d}", "00190" if i % 2 else "09988", updated=T0 + dt.timedelta(minutes=i)) for i in range(7)]
        + [a6_event("EvOutside01", updated=T0 + dt.timedelta(days=2))],
    )
    hook = Dhis2Hook(**CLIENT)
    assert hook.version == version  # read from /api/system/info
    assert read_all(hook, page_size=3) == [f"Ev{i:09d}" for i in range(7)]  # both communes, in order, once each
    params = requests_of(dhis2)[0]["params"]
    mode, other = ("ouMode", "orgUnitMode") if version == "2.40" else ("orgUnitMode", "ouMode")
    assert params[mode] == "DESCENDANTS" and other not in params and params["includeDeleted"] == "true"
    assert params["order"] == "updatedAt:asc,event:asc"
    assert params["updatedAfter"] == "2026-11-18T00:00:00.000"  # the server's wall clock (Asia/Ho_Chi_Minh)


def test_the_sandbox_ignores_parameters_a_version_does_not_know_as_a_real_server_does(dhis2):
    """2.42 binds only `orgUnitMode`: `ouMode=DESCENDANTS` is ignored and the province alone (SELECTED) is searched,
    with 200 and no error; 2.41 takes either spelling but not both; 2.40 ignores `orgUnitMode`."""
    load_events(dhis2, [a6_event(f"EvMode{i:05d}", updated=T0) for i in range(9)])

    def found(version, **params):
        control(dhis2, "config", {"version": version})
        r = httpx.get(
            f"{dhis2}/dhis2/api/tracker/events",
            auth=("admin", "district"),
            params={"orgUnit": ROOT, "pageSize": 50, **params},
        )
        body = r.json()
        return r.status_code, len(body.get("events", body.get("instances", [])))

    assert found("2.42", ouMode="DESCENDANTS") == (200, 0)  # the stations' events are below the province
    assert found("2.42", orgUnitMode="DESCENDANTS") == (200, 9)
    assert found("2.41", ouMode="DESCENDANTS") == (200, 9)
    assert found("2.41", ouMode="DESCENDANTS", orgUnitMode="DESCENDANTS")[0] == 400
    assert found("2.40", orgUnitMode="DESCENDANTS") == (200, 0)
    assert found("2.42", orgUnitMode="DESCENDANTS", noSuchParameter="x") == (200, 9)


def test_the_server_zone_is_read_and_applied_to_parameters_and_timestamps(dhis2):
    from certpipe.sources.dhis2.hook import Dhis2Hook

    control(dhis2, "config", {"zone": "Etc/UTC"})
    load_events(dhis2, [a6_event("EvUtc000001", updated=dt.datetime(2026, 11, 18, 23, 30, tzinfo=VN))])
    hook = Dhis2Hook(**CLIENT)
    assert hook.server.zone_id == "Etc/UTC"
    [[event]] = list(hook.changed_events(**WINDOW))
    assert event["updatedAt"] == "2026-11-18T16:30:00.000"  # no offset: the server's clock
    assert hook.server.moment(event["updatedAt"]) == dt.datetime(2026, 11, 18, 23, 30, tzinfo=VN)
    params = requests_of(dhis2)[0]["params"]
    assert (params["updatedAfter"], params["updatedBefore"]) == ("2026-11-17T17:00:00.000", "2026-11-18T17:00:00.000")


def test_no_event_is_skipped_when_a_station_edits_between_pages(dhis2):
    """Offset paging over data that changes loses the event at the page boundary; the keyset continuation does not."""
    from certpipe.sources.dhis2.hook import Dhis2Hook

    events = [a6_event(f"EvEdit{i:05d}", updated=T0 + dt.timedelta(minutes=i)) for i in range(7)]
    edit = {"after": 1, "events": [{"event": "EvEdit00001", "updatedAt": (T0 + dt.timedelta(hours=2)).isoformat()}]}

    load_events(dhis2, events)
    control(dhis2, "edits", edit)  # plain offset paging, as a naive client would do
    offset = []
    for page in (1, 2, 3):
        body = httpx.get(
            f"{dhis2}/dhis2/api/tracker/events",
            auth=("admin", "district"),
            params={
                "orgUnit": ROOT,
                "orgUnitMode": "DESCENDANTS",
                "order": "updatedAt:asc",
                "page": page,
                "pageSize": 3,
            },
        ).json()
        offset += [e["event"] for e in body["events"]]
    assert "EvEdit00003" not in offset  # shifted onto the page already read: lost

    control(dhis2, "reset", {"version": "2.41"})
    load_events(dhis2, events)
    control(dhis2, "edits", edit)
    got = read_all(Dhis2Hook(**CLIENT), page_size=3)
    assert set(got) == {e["event"] for e in events}
    assert got[-1] == "EvEdit00001"  # read again at its new place, with the station's change


@pytest.mark.parametrize("version", ["2.40", "2.41", "2.42"])
def test_a_full_page_at_one_instant_is_read_unpaged_once(dhis2, version):
    from certpipe.sources.dhis2.hook import Dhis2Hook

    control(dhis2, "config", {"version": version})
    same = [a6_event(f"EvSame{i:05d}", updated=T0) for i in range(5)]
    load_events(dhis2, [*same, a6_event("EvLater0001", updated=T0 + dt.timedelta(seconds=1))])
    got = read_all(Dhis2Hook(**CLIENT), page_size=2)
    assert sorted(got) == sorted([e["event"] for e in same] + ["EvLater0001"]) and len(got) == 6
    flag = "skipPaging" if version == "2.40" else "paging"
    unpaged = [r["params"] for r in requests_of(dhis2) if flag in r["params"]]
    assert len(unpaged) == 1 and not {"page", "pageSize"} & set(unpaged[0])  # 2.42 refuses paging=false with them
    assert (unpaged[0]["updatedAfter"], unpaged[0]["updatedBefore"]) == (
        "2026-11-18T09:00:00.000",
        "2026-11-18T09:00:00.001",  # updatedBefore is exclusive on 2.40, inclusive after
    )


def test_deleted_events_come_with_include_deleted_and_5xx_is_retried(dhis2):
    from certpipe.sources.dhis2.hook import Dhis2Hook

    load_events(dhis2, [a6_event("EvAlive0001", updated=T0), a6_event("EvGone00001", updated=T0)])
    control(dhis2, "events/EvGone00001/delete", {"updatedAt": "2026-11-18T10:00:00.000"})
    control(dhis2, "faults", {"status": 503, "count": 2})
    hook = Dhis2Hook(**CLIENT)
    got = {e["event"]: e["deleted"] for p in hook.changed_events(**WINDOW) for e in p}
    assert got == {"EvAlive0001": False, "EvGone00001": True}
    assert read_all(hook, include_deleted=False) == ["EvAlive0001"]


@pytest.mark.parametrize("version", ["2.40", "2.41", "2.42"])
def test_events_are_fetched_by_uid_with_the_versions_parameter(dhis2, version):
    from certpipe.sources.dhis2.hook import Dhis2Hook

    control(dhis2, "config", {"version": version})
    load_events(dhis2, [a6_event(f"EvByUid{i:04d}", updated=T0) for i in range(4)])
    got = Dhis2Hook(**CLIENT).events_by_uid("uX3pS8aZHN2", ["EvByUid0001", "EvByUid0003", "EvNotThere1"])
    assert set(got) == {"EvByUid0001", "EvByUid0003"}  # an ignored parameter would have returned all four
    params = requests_of(dhis2)[-1]["params"]
    assert (params.get("event"), params.get("events")) == (
        ("EvByUid0001;EvByUid0003;EvNotThere1", None)
        if version == "2.40"
        else (None, "EvByUid0001,EvByUid0003,EvNotThere1")
    )


GOOD = {
    "program": "uX3pS8aZHN2",
    "programStage": "qgYbmBm4kx8",
    "orgUnit": "TytOChoDua1",
    "occurredAt": "2026-11-10",
    "status": "ACTIVE",
    "dataValues": [],
}


@pytest.mark.parametrize("version", ["2.40", "2.41", "2.42"])
def test_import_reports_are_read_per_object_whatever_the_status(dhis2, version):
    """atomicMode=OBJECT: 200 with errorReports (not 409); 2.42 refuses the whole request for one invalid UID (400):
    the batch is split and the valid events still go in."""
    from certpipe.sources.dhis2.hook import Dhis2Hook

    control(dhis2, "config", {"version": version})
    batch = [
        {**GOOD, "event": "EvImport001"},
        {**GOOD, "event": "EvImport002", "orgUnit": "NoSuchUnit1"},
        {**GOOD, "event": "1bad"},
        {**GOOD, "event": "EvImport004", "dataValues": [{"dataElement": "NoSuchDe001", "value": "x"}]},
        {**GOOD, "event": "EvImport005"},
    ]
    out = Dhis2Hook(**CLIENT).import_events(batch)
    assert {u for u, o in out.items() if o["ok"]} == {"EvImport001", "EvImport005"}
    assert out["EvImport002"]["codes"] == ["E1011"] and out["EvImport004"]["codes"] == ["E1304"]
    assert out["1bad"]["codes"] == (["HTTP400"] if version == "2.42" else ["E1048"])
    posts = requests_of(dhis2, "/dhis2/api/tracker", "POST")
    assert posts[0]["params"] == {
        "async": "false",
        "importStrategy": "CREATE_AND_UPDATE",
        "atomicMode": "OBJECT",
        "reportMode": "ERRORS",
    }
    assert len(posts) == (5 if version == "2.42" else 1)  # 5 → [2 | 3] → [1 | 2] → [1 | 1]
    statuses = httpx.post(
        f"{dhis2}/dhis2/api/tracker",
        auth=("admin", "district"),
        params={"async": "false", "atomicMode": "ALL"},
        json={"events": [{**GOOD, "event": "EvAtomic001"}, {**GOOD, "event": "EvAtomic002", "orgUnit": "NoSuchUnit1"}]},
    )
    assert statuses.status_code == 409 and statuses.json()["status"] == "ERROR"  # ALL: nothing committed
    partial = httpx.post(
        f"{dhis2}/dhis2/api/tracker",
        auth=("admin", "district"),
        params={"async": "false", "atomicMode": "OBJECT"},
        json={"events": [{**GOOD, "event": "EvObject001"}, {**GOOD, "event": "EvObject002", "orgUnit": "NoSuchUnit1"}]},
    )
    assert partial.status_code == 200 and partial.json()["status"] == "OK"  # OBJECT: 200, errors in the report
    assert [e["uid"] for e in partial.json()["validationReport"]["errorReports"]] == ["EvObject002"]


def test_version_is_checked_never_assumed(dhis2, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from certpipe.sources.dhis2.hook import Dhis2Hook, Dhis2Incompatible

    control(dhis2, "config", {"version": "2.42"})
    conn = {"conn_type": "http", "host": f"{dhis2}/dhis2", "login": "admin", "password": "district"}
    monkeypatch.setenv("AIRFLOW_CONN_DHIS2_OLD", json.dumps({**conn, "extra": {"version": "2.41"}}))
    with pytest.raises(Dhis2Incompatible, match=r"connection 'dhis2_old'.*2\.42\.1.*field 'version' says 2\.41") as e:
        list(Dhis2Hook("dhis2_old", **CLIENT).changed_events(**WINDOW))
    assert isinstance(e.value, AirflowFailException)  # not retried
    assert not requests_of(dhis2)  # nothing read

    hook = Dhis2Hook(**CLIENT)
    with pytest.raises(Dhis2Incompatible, match=r"program stage NoSuchStage does not exist on the server"):
        hook.program_stage("NoSuchStage")

    control(dhis2, "config", {"reported_version": "2.43.0"})
    with pytest.raises(Dhis2Incompatible, match=r"DHIS2 2\.43\.0; supported: 2\.40, 2\.41, 2\.42"):
        Dhis2Hook(**CLIENT).server  # noqa: B018


def test_connection_settings_are_typed_and_named(dhis2, monkeypatch):
    from certpipe.errors import ConfigError, SourceRejected
    from certpipe.sources.dhis2.hook import Dhis2Hook

    control(dhis2, "config", {"version": "2.40"})
    base = {"conn_type": "http", "host": f"{dhis2}/dhis2/", "password": "d2pat_sandbox"}  # context path
    for name, version in {"num": 2.4, "text": "2.40.7"}.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_DHIS2_{name.upper()}", json.dumps({**base, "extra": {"version": version}}))
        assert Dhis2Hook(f"dhis2_{name}", **CLIENT).version == "2.40"
    headers = {h for r in requests_of(dhis2, "/dhis2/api/system/info") for h in r["headers"]}
    assert "authorization" in headers and not {h for h in headers if "version" in h}  # never a header
    for bad, problem in {"abc": "not understood", "2.39": "not supported"}.items():
        monkeypatch.setenv("AIRFLOW_CONN_DHIS2_BAD", json.dumps({**base, "extra": {"version": bad}}))
        with pytest.raises(ConfigError, match=rf"DHIS2 connection 'dhis2_bad': version: .*{problem}"):
            Dhis2Hook("dhis2_bad", **CLIENT).settings  # noqa: B018
    monkeypatch.setenv("AIRFLOW_CONN_DHIS2_EXPIRED", json.dumps({**base, "password": "d2pat_expired"}))
    with pytest.raises(SourceRejected) as err:
        Dhis2Hook("dhis2_expired", **CLIENT).server  # noqa: B018
    assert err.value.status == 401 and "d2pat" not in str(err.value)


def test_keys_uids_and_ages():
    from certpipe.sources.dhis2.keys import age_at_death, event_uid, name_key

    uid = event_uid("00117.GBT.01020.26")
    assert uid == event_uid("00117.GBT.01020.26") != event_uid("00118.GBT.01020.26")
    assert len(uid) == 11 and uid[0].isalpha() and uid.isalnum()
    assert name_key("  nguyễn   văn  Đạt ") == name_key("NGUYEN VAN DAT") == "NGUYEN VAN DAT"
    assert name_key("Nguye\u0302\u0303n Văn Đạt") == "NGUYEN VAN DAT"  # decomposed input
    d = dt.date
    assert age_at_death(d(1940, 3, 2), d(2026, 11, 10)) == {"age_years": 86, "age_months": 1040, "age_days": 31664}
    assert age_at_death(d(2026, 10, 1), d(2026, 11, 10)) == {"age_years": 0, "age_months": 1, "age_days": 40}
    assert age_at_death(d(2026, 10, 31), d(2026, 11, 30)) == {"age_years": 0, "age_months": 0, "age_days": 30}
    assert age_at_death(None, d(2026, 11, 10)) == {} == age_at_death(d(2026, 11, 11), d(2026, 11, 10))


def test_variable_errors_name_the_field():
    from airflow.sdk.exceptions import AirflowFailException

    from certpipe.errors import ConfigError
    from certpipe.sources.dhis2.metadata import settings_from

    with pytest.raises(ConfigError, match=r"Variable 'dhis2_mortality': client\.retries: Extra inputs") as e:
        settings_from({"org_units": ["ImspTQPwCqd"], "client": {"timeout": 5, "retries": 3}})
    assert isinstance(e.value, AirflowFailException)  # a configuration error is not retried
    with pytest.raises(ConfigError, match=r"data_elements\.justice_regstered: not an element of"):
        settings_from({"data_elements": {"justice_regstered": "TpDaDangKy1"}})
    with pytest.raises(ConfigError, match=r"data_elements\.from_justice"):
        settings_from({"data_elements": {"from_justice": "Jr6-bad"}})
    assert settings_from({"org_units": ["ImspTQPwCqd"], "client": {"timeout": 5}})["client"]["timeout"] == 5
