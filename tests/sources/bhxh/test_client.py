"""The BHXH client against the sandbox stand-in over real HTTP: token handling, look-ups, paging, failures."""

import logging
import time

import pytest

from certpipe.errors import SourceRejected, SourceUnavailable
from certpipe.http.auth import RenewingTokenAuth
from certpipe.sources.bhxh.hook import BhxhHook
from tests.sources.bhxh.conftest import CLIENT, WINDOWS, fault, load_windows, served, window_data

FROM, TO = WINDOWS[0][0], WINDOWS[-1][1]


def hook(conn_id="bhxh_default", **over):
    return BhxhHook(conn_id, **{**CLIENT, **over})


def pull(h, kind="GCS", province="01", page_size=5):
    return [e for page in h.pages(kind, province, FROM, TO, page_size) for e in page]


@pytest.fixture
def data(bhxh):
    d = window_data()
    load_windows(bhxh, d)
    return d


def in_province(d, kind, province):
    fac = "MA_CSKCB" if kind == "GCS" else "MACSKCB"
    return [e["id"] for e in d[kind]["items"] if e["record"][fac].startswith(province)]


def test_bulk_pull_pages_every_record_of_the_province_once_with_one_token(bhxh, data, caplog):
    caplog.set_level(logging.DEBUG)
    items = pull(hook())
    assert sorted(e["id"] for e in items) == sorted(in_province(data, "GCS", "01"))
    assert len(items) > 10  # several pages of 5
    assert all(e["record"]["MA_GCS"] and "HOTEN_NND" in e["record"] for e in items)  # official field names
    assert served(bhxh)["token"] == 1  # reused for every page
    token = next(iter(RenewingTokenAuth._cache.values()))[0]
    assert token not in caplog.text and "sandbox-bhxh" not in caplog.text


def test_window_bounds_are_half_open(bhxh, data):
    h = hook()
    first = [e for p in h.pages("GBT", "96", WINDOWS[0][0], WINDOWS[0][1]) for e in p]
    second = [e for p in h.pages("GBT", "96", WINDOWS[1][0], WINDOWS[1][1]) for e in p]
    assert first and second and not {e["id"] for e in first} & {e["id"] for e in second}
    assert {data["GBT"]["window"][e["id"]] for e in first} == {0}


def test_expired_token_is_refreshed_once_and_the_call_succeeds(bhxh, data):
    h = hook()
    pull(h)
    import httpx

    httpx.post(f"{bhxh}/_control/bhxh/tokens/expire").raise_for_status()
    assert len(pull(h)) == len(in_province(data, "GCS", "01"))
    s = served(bhxh)
    assert s["token"] == 2 and s["pull:401"] == 1


def test_token_about_to_expire_is_renewed_before_use(bhxh, data):
    import httpx

    httpx.post(f"{bhxh}/_control/bhxh/tokens", json={"ttl": 5}).raise_for_status()  # below the 30 s margin
    pull(hook(), page_size=1000)
    pull(hook(), page_size=1000)
    s = served(bhxh)
    assert s["token"] == 2 and "pull:401" not in s


def test_wrong_credentials_fail_clearly_without_retrying_or_leaking(bhxh, data, caplog):
    with pytest.raises(SourceRejected, match=r"HTTP 401 on api/v1/auth/token") as e:
        pull(hook("bhxh_badauth"))
    assert e.value.status == 401 and "wrong" not in str(e.value)
    assert served(bhxh)["token"] == 1 and "pull" not in served(bhxh)
    assert "wrong" not in caplog.text


@pytest.mark.parametrize(
    ("body", "label"),
    [
        ({"status": 503, "count": 2}, "pull:503"),
        ({"status": 429, "retry_after": 0, "count": 2}, "pull:429"),
        ({"malformed": True, "count": 2}, "pull:200"),
        ({"delay_seconds": 2.5, "count": 1}, None),  # longer than the client's 2 s timeout
    ],
)
def test_transient_failures_are_retried_and_nothing_is_lost_or_doubled(bhxh, data, body, label):
    clean = [e["id"] for e in pull(hook())]
    fault(bhxh, target="pull", **body)
    before = served(bhxh).get("pull", 0)
    again = [e["id"] for e in pull(hook())]
    assert again == clean
    retries = body.get("count", 1)
    if body.get("delay_seconds"):
        time.sleep(1)  # the timed-out request is counted once the server has finished waiting
    assert served(bhxh)["pull"] - before == -(-len(clean) // 5) + retries
    if label:
        assert served(bhxh)[label] >= retries


def test_retry_after_is_honoured(bhxh, data):
    fault(bhxh, target="pull", status=429, retry_after=1, count=1)
    t = time.monotonic()
    pull(hook(max_backoff=5), page_size=1000)
    assert time.monotonic() - t >= 1.0


def test_persistent_5xx_fails_with_the_status_never_the_body(bhxh, data):
    fault(bhxh, target="pull", status=500, count=10)
    with pytest.raises(SourceUnavailable, match=r"HTTP 500 on api/v1/certificates"):
        pull(hook())
    assert served(bhxh)["pull:500"] == CLIENT["attempts"]


def test_token_endpoint_outage_is_retried(bhxh, data):
    fault(bhxh, target="token", status=502, count=2)
    assert pull(hook(), page_size=1000)
    assert served(bhxh)["token:502"] == 2


def test_page_changing_between_calls_skips_nothing(bhxh, data):
    expected = sorted(in_province(data, "GCS", "01"))
    fault(bhxh, target="pull", mutate=True, count=1)  # after page 1, its first record changes (leaves the window)
    items = pull(hook())
    assert sorted(e["id"] for e in items) == expected  # keyset paging: no record skipped, none twice
    import httpx

    now = {e["id"]: e for e in httpx.get(f"{bhxh}/_control/bhxh/records", params={"kind": "GCS"}).json()["items"]}
    moved = now[items[0]["id"]]  # the first record of page 1 really changed and left the window meanwhile
    assert moved["record"]["GHI_CHU"] != items[0]["record"]["GHI_CHU"]
    assert sorted(e["id"] for e in pull(hook())) == [i for i in expected if i != items[0]["id"]]


def test_lookups_by_every_criteria_set(bhxh, data):
    h = hook()
    gcs = data["GCS"]["items"][0]["record"]
    gbt = data["GBT"]["items"][0]["record"]
    by_mother = h.lookup("GCS", {"SO_CCCD_NND": gcs["SO_CCCD_NND"]})
    assert gcs["MA_GCS"] in {e["record"]["MA_GCS"] for e in by_mother}
    assert all(e["record"]["SO_CCCD_NND"] == gcs["SO_CCCD_NND"] for e in by_mother)
    assert [e["record"]["MA_GCS"] for e in h.lookup("GCS", {"MA_GCS": gcs["MA_GCS"]})] == [gcs["MA_GCS"]]
    assert [e["record"]["MA_GBT"] for e in h.lookup("GBT", {"SO_GIAYTO": gbt["SO_GIAYTO"]})] == [gbt["MA_GBT"]]
    assert [e["record"]["MA_GBT"] for e in h.lookup("GBT", {"MA_GBT": gbt["MA_GBT"]})] == [gbt["MA_GBT"]]
    book = {"SO_BAOTU": gbt["SO_BAOTU"], "NGAY_CAPGIAYBT": gbt["NGAY_CAPGIAYBT"], "MACSKCB": gbt["MACSKCB"]}
    assert [e["record"]["MA_GBT"] for e in h.lookup("GBT", book)] == [gbt["MA_GBT"]]
    assert h.lookup("GBT", {"MA_GBT": "99999.GBT.01020.26"}) == []
    with pytest.raises(ValueError, match="not part of the BHXH contract"):
        h.lookup("GBT", {"SO_CCCD_NND": "001195012345"})
    assert served(bhxh)["token"] == 1
