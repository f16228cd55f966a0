"""Dhis2Hook against the sandbox DHIS2 of each version over HTTP: shapes, paging, deletions, auth, imports."""

import datetime as dt
import json

import httpx
import pytest

from tests.sources.dhis2.conftest import CLIENT, ROOT, VN, a6_event, load_events

T0 = dt.datetime(2026, 11, 18, 9, tzinfo=VN)
WINDOW = {
    "program": "uX3pS8aZHN2",
    "org_unit": ROOT,
    "updated_after": "2026-11-18T00:00:00",
    "updated_before": "2026-11-19T00:00:00",
}


def set_version(url, version):
    httpx.post(f"{url}/_control/dhis2/config", json={"version": version}).raise_for_status()


def requests_of(url, path="/dhis2/api/tracker/events"):
    return [r for r in httpx.get(f"{url}/_control/dhis2/requests").json()["requests"] if r["path"] == path]


@pytest.mark.parametrize("version", ["2.40", "2.41", "2.42"])
def test_pages_through_every_version_with_its_own_parameters(dhis2, version):
    from certpipe.sources.dhis2.hook import Dhis2Hook

    set_version(dhis2, version)
    load_events(
        dhis2,
        [a6_event(f"Ev{i:09d}", "00190" if i % 2 else "09988", updated=T0 + dt.timedelta(minutes=i)) for i in range(7)]
        + [a6_event("EvOutside01", updated=T0 + dt.timedelta(days=2))],
    )
    hook = Dhis2Hook(**CLIENT)
    assert hook.version == version  # read from /api/system/info
    pages = list(hook.event_pages(**WINDOW, page_size=3))
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [e["event"] for p in pages for e in p] == [f"Ev{i:09d}" for i in range(7)]  # both communes, in order
    params = requests_of(dhis2)[0]["params"]
    mode = "ouMode" if version == "2.40" else "orgUnitMode"
    assert params[mode] == "DESCENDANTS" and params["includeDeleted"] == "true"
    assert {"ouMode", "orgUnitMode"} - {mode} - set(params) == {"ouMode", "orgUnitMode"} - {mode}
    shape = httpx.get(
        f"{dhis2}/dhis2/api/tracker/events",
        auth=("admin", "district"),
        params={"orgUnit": ROOT, mode: "DESCENDANTS", "pageSize": 2},
    ).json()
    assert ("instances" in shape) == (version == "2.40") and ("pager" in shape) == (version != "2.40")


def test_version_pinned_in_the_connection_and_token_auth(dhis2, monkeypatch):
    from certpipe.errors import SourceRejected
    from certpipe.sources.dhis2.hook import Dhis2Hook

    set_version(dhis2, "2.42")
    monkeypatch.setenv(
        "AIRFLOW_CONN_DHIS2_PAT",
        json.dumps(
            {"conn_type": "http", "host": f"{dhis2}/dhis2", "password": "d2pat_sandbox", "extra": {"version": "2.42.1"}}
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_DHIS2_BAD",
        json.dumps({"conn_type": "http", "host": f"{dhis2}/dhis2", "password": "d2pat_expired"}),
    )
    load_events(dhis2, [a6_event("EvToken0001", updated=T0)])
    hook = Dhis2Hook("dhis2_pat", **CLIENT)
    assert [e["event"] for p in hook.event_pages(**WINDOW) for e in p] == ["EvToken0001"]
    assert not requests_of(dhis2, "/dhis2/api/system/info")  # pinned: no version probe
    with pytest.raises(SourceRejected) as err:
        list(Dhis2Hook("dhis2_bad", **CLIENT).event_pages(**WINDOW))
    assert err.value.status == 401 and "d2pat" not in str(err.value)


def test_deleted_events_come_with_include_deleted_and_5xx_is_retried(dhis2):
    from certpipe.sources.dhis2.hook import Dhis2Hook

    load_events(dhis2, [a6_event("EvAlive0001", updated=T0), a6_event("EvGone00001", updated=T0)])
    httpx.post(
        f"{dhis2}/_control/dhis2/events/EvGone00001/delete", json={"updatedAt": "2026-11-18T10:00:00.000"}
    ).raise_for_status()
    httpx.post(f"{dhis2}/_control/dhis2/faults", json={"status": 503, "count": 2}).raise_for_status()
    hook = Dhis2Hook(**CLIENT)
    got = {e["event"]: e["deleted"] for p in hook.event_pages(**WINDOW) for e in p}
    assert got == {"EvAlive0001": False, "EvGone00001": True}
    live = {e["event"] for p in hook.event_pages(**WINDOW, include_deleted=False) for e in p}
    assert live == {"EvAlive0001"}


@pytest.mark.parametrize("version", ["2.40", "2.42"])
def test_partial_import_errors_are_read_per_object(dhis2, version):
    from certpipe.sources.dhis2.hook import Dhis2Hook, object_outcomes

    set_version(dhis2, version)
    good = {
        "event": "EvImport001",
        "program": "uX3pS8aZHN2",
        "programStage": "qgYbmBm4kx8",
        "orgUnit": "TytOChoDua1",
        "occurredAt": "2026-11-10",
        "status": "ACTIVE",
        "dataValues": [],
    }
    bad_ou = {**good, "event": "EvImport002", "orgUnit": "NoSuchUnit1"}
    bad_uid = {**good, "event": "1bad"}
    report = Dhis2Hook(**CLIENT).import_events([good, bad_ou, bad_uid])  # HTTP 409: read, not raised
    assert report["status"] == "ERROR"
    out = object_outcomes(report, ["EvImport001", "EvImport002", "1bad"])
    assert out["EvImport001"]["ok"] and out["EvImport002"]["codes"] == ["E1011"] and out["1bad"]["codes"] == ["E1048"]
    assert set(httpx.get(f"{dhis2}/_control/dhis2/events").json()["events"][0]) >= {"event", "updatedAt"}
    params = [r for r in httpx.get(f"{dhis2}/_control/dhis2/requests").json()["requests"] if r["method"] == "POST"]
    assert params[0]["params"] == {
        "async": "false",
        "importStrategy": "CREATE_AND_UPDATE",
        "atomicMode": "OBJECT",
        "reportMode": "ERRORS",
    }


def test_deterministic_event_uids_and_name_keys():
    from certpipe.sources.dhis2.mortality import event_uid, name_key

    uid = event_uid("00117.GBT.01020.26")
    assert uid == event_uid("00117.GBT.01020.26") != event_uid("00118.GBT.01020.26")
    assert len(uid) == 11 and uid[0].isalpha() and uid.isalnum()
    assert name_key("  nguyễn   văn  Đạt ") == name_key("NGUYEN VAN DAT") == "NGUYEN VAN DAT"
    assert name_key("Nguye\u0302\u0303n Văn Đạt") == "NGUYEN VAN DAT"  # decomposed input


def test_unknown_client_option_in_the_variable_is_a_clear_error():
    from airflow.sdk.exceptions import AirflowFailException

    from certpipe.errors import ConfigError
    from certpipe.sources.dhis2.mortality import settings_from

    with pytest.raises(ConfigError, match=r"Variable 'dhis2_mortality': client\.retries: Extra inputs") as e:
        settings_from({"org_units": ["ImspTQPwCqd"], "client": {"timeout": 5, "retries": 3}})
    assert isinstance(e.value, AirflowFailException)  # a configuration error is not retried
    assert settings_from({"org_units": ["ImspTQPwCqd"], "client": {"timeout": 5}})["client"]["timeout"] == 5
