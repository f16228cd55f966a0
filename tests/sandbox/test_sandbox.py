"""Sandbox HIS stand-in: real HTTP against sandbox.server.run_in_thread."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from sandbox import refdata
from sandbox.generate import (
    BIRTH_RULES,
    DEATH_RULES,
    VN_TZ,
    generate_births,
    generate_bulk_births,
    generate_deaths,
)
from sandbox.server import run_in_thread

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=VN_TZ)
OPTS = {"seed": 11, "births": 120, "deaths": 60, "now": NOW}
FAC = "01020"
CERT = re.compile(r"^\d{5}\.(GCS|GBT)\.[0-9A-Z]{5}\.\d{2}$")


def auth(fac: str = FAC) -> tuple[str, str]:
    return (fac, f"sandbox-{fac}")


@pytest.fixture(scope="module")
def base():
    with run_in_thread(**OPTS) as url:
        yield url


@pytest.fixture(scope="module")
def client(base):
    with httpx.Client(base_url=base, timeout=5) as c:
        yield c


def fetch_all(client, kind, fac=FAC, page_size=37, **params):
    items, page = [], 1
    while True:
        r = client.get(
            f"/his/{fac}/api/v1/certificates",
            auth=auth(fac),
            params={"kind": kind, "page": page, "page_size": page_size, **params},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["kind"] == kind and body["page"] == page and len(body["items"]) <= page_size
        items += body["items"]
        if not body["has_more"]:
            assert len(items) == body["total"]
            return items
        page += 1


# ---------------------------------------------------------------- feed


@pytest.mark.parametrize("kind", ["GCS", "GBT"])
def test_paging_covers_feed_exactly_once(client, kind):
    items = fetch_all(client, kind)
    gen = generate_births if kind == "GCS" else generate_deaths
    n = OPTS["births"] if kind == "GCS" else OPTS["deaths"]
    expected = gen(n, facility=FAC, seed=OPTS["seed"], now=NOW, rule_offset=0)
    assert items == list(expected)
    keys = [(datetime.fromisoformat(e["updated_at"]), e["id"]) for e in items]
    assert keys == sorted(keys)
    assert len({e["id"] for e in items}) == n  # plus duplicates / resubmissions
    assert len(items) > n


def test_updated_since_is_inclusive(client):
    items = fetch_all(client, "GCS", page_size=1000)
    pivot = items[len(items) // 2]["updated_at"]
    since = fetch_all(client, "GCS", page_size=1000, updated_since=pivot)
    want = [e for e in items if datetime.fromisoformat(e["updated_at"]) >= datetime.fromisoformat(pivot)]
    assert since == want and since[0]["updated_at"] == pivot
    utc = datetime.fromisoformat(pivot).astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert fetch_all(client, "GCS", page_size=1000, updated_since=utc) == want
    # an unencoded "+" arrives as a space
    r = client.get(f"/his/{FAC}/api/v1/certificates?kind=GCS&page_size=1000&updated_since={pivot}", auth=auth())
    assert r.json()["items"] == want


def test_auth_and_parameter_errors(client):
    url = f"/his/{FAC}/api/v1/certificates"
    for creds in (None, (FAC, "wrong"), auth("79034")):
        r = client.get(url, params={"kind": "GCS"}, auth=creds)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    for params in (
        {"kind": "XYZ"},
        {},
        {"kind": "GCS", "page_size": 1001},
        {"kind": "GCS", "page": 0},
        {"kind": "GCS", "updated_since": "yesterday"},
    ):
        r = client.get(url, params=params, auth=auth())
        assert r.status_code == 400 and set(r.json()) == {"error", "detail"}, params
    assert client.get("/his/99999/api/v1/certificates", params={"kind": "GCS"}).status_code == 404


def test_faults_fire_exactly_n_times(client):
    fac = "79034"
    url = f"/his/{fac}/api/v1/certificates"
    before = client.get(f"/_control/his/{fac}/requests").json()["feed"]
    r = client.post(f"/_control/his/{fac}/faults", json={"status": 503, "count": 2, "retry_after": 1})
    assert r.status_code == 200
    codes = [client.get(url, params={"kind": "GBT"}, auth=auth(fac)).status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    counts = client.get(f"/_control/his/{fac}/requests").json()
    assert counts["feed"] == before + 3 and counts["by_status"]["feed:503"] == 2

    client.post(f"/_control/his/{fac}/faults", json={"delay_seconds": 0.6, "count": 1})
    with pytest.raises(httpx.ReadTimeout):
        client.get(url, params={"kind": "GBT"}, auth=auth(fac), timeout=0.2)
    assert client.get(url, params={"kind": "GBT"}, auth=auth(fac)).status_code == 200

    client.post(f"/_control/his/{fac}/faults", json={"status": 500, "count": 1, "target": "acks"})
    body = {"kind": "GBT", "batch": "b0", "results": []}
    ack_url = f"/his/{fac}/api/v1/acknowledgements"
    assert client.post(ack_url, json=body, auth=auth(fac)).status_code == 500
    assert client.post(ack_url, json=body, auth=auth(fac)).status_code == 200
    assert client.get(url, params={"kind": "GBT"}, auth=auth(fac)).status_code == 200  # feed unaffected


def test_acknowledgements_are_stored(client):
    fac = "96025"
    items = fetch_all(client, "GCS", fac=fac, page_size=5)[:2]
    results = [
        {
            "id": items[0]["id"],
            "status": "ACCEPTED",
            "outcome": "stored",
            "certificate": items[0]["record"]["MA_GCS"],
            "errors": [],
        },
        {
            "id": items[1]["id"],
            "status": "REFUSED",
            "outcome": "refused",
            "certificate": None,
            "errors": [{"field": "CAN_NANG_CON", "code": "WEIGHT_RANGE", "message": "..."}],
        },
    ]
    url = f"/his/{fac}/api/v1/acknowledgements"
    r = client.post(url, json={"kind": "GCS", "batch": "run-1", "results": results}, auth=auth(fac))
    assert r.status_code == 200 and r.json() == {"received": 2}
    again = [{**results[0], "outcome": "unchanged"}]
    client.post(url, json={"kind": "GCS", "batch": "run-2", "results": again}, auth=auth(fac))
    acks = client.get(f"/_control/his/{fac}/acks").json()
    assert acks["count"] == 2 and [a["batch"] for a in acks["all"]] == ["run-1", "run-2"]
    assert acks["latest"][items[0]["id"]]["outcome"] == "unchanged"
    assert acks["latest"][items[1]["id"]]["errors"][0]["code"] == "WEIGHT_RANGE"
    for bad in (
        {"kind": "GCS"},
        {"kind": "GCS", "batch": "x", "results": [{"id": "a", "status": "OK"}]},
        {"kind": "GCS", "batch": "x", "results": [{**results[0], "status": "REFUSED"}]},
    ):
        r = client.post(url, json=bad, auth=auth(fac))
        assert r.status_code == 422 and r.json()["error"] == "invalid_body"
    assert client.post(url, content=b"not json", auth=auth(fac)).status_code == 422
    assert client.post(url, json={"kind": "GCS", "batch": "x", "results": []}).status_code == 401


def test_resubmission_via_control_records(client):
    fac = "96025"
    first = fetch_all(client, "GBT", fac=fac, page_size=1000)[0]
    rec = {**first["record"], "NGUOI_THANTHICH": "Trần Văn Bình"}
    later = (NOW + timedelta(minutes=5)).isoformat()  # after every generated version
    r = client.post(f"/_control/his/{fac}/records", json=[{"id": first["id"], "updated_at": later, "record": rec}])
    assert r.json()["upserted"][0] == {"id": first["id"], "kind": "GBT", "result": "added"}
    newest = fetch_all(client, "GBT", fac=fac, updated_since=later)
    assert newest == [{"id": first["id"], "updated_at": later, "record": rec}]
    back = {"id": first["id"], "updated_at": later, "record": first["record"]}
    r = client.post(f"/_control/his/{fac}/records", json=[back])
    assert r.json()["upserted"][0]["result"] == "replaced"
    assert fetch_all(client, "GBT", fac=fac, updated_since=later)[0]["record"] == first["record"]


def test_expected_covers_all_rules(client):
    births, deaths = set(), set()
    for fac in refdata.PILOT_FACILITIES:
        exp = client.get(f"/_control/his/{fac}/expected").json()
        births |= {v for k, v in exp.items() if "-GCS-" in k}
        deaths |= {v for k, v in exp.items() if "-GBT-" in k}
        man = client.get(f"/_control/his/{fac}/manifest").json()
        assert man["GCS"]["duplicates"] and man["GCS"]["resubmitted"] and man["GCS"]["messy"]
    assert births == set(BIRTH_RULES) and deaths == set(DEATH_RULES)


def test_reset(base):
    with httpx.Client(base_url=base) as c:
        r = c.post("/_control/reset", json={"births": 10, "deaths": 10, "facilities": ["01020"]})
        assert r.status_code == 200 and r.json()["his"] == {"01020": {"GCS": 12, "GBT": 12}}  # + 1 dup + 1 resubmission
        assert c.get("/_control/his/79034/acks").status_code == 404
        assert c.post("/_control/reset", json={"bogus": 1}).status_code == 422
        # overrides hold for one reset: the next one is back to the options the sandbox started with
        r = c.post("/_control/reset", json={})
        assert r.status_code == 200 and set(r.json()["his"]) == set(refdata.PILOT_FACILITIES)


# ---------------------------------------------------------------- generator


def test_generator_is_deterministic():
    a = generate_deaths(40, facility="79034", seed=3, now=NOW)
    b = generate_deaths(40, facility="79034", seed=3, now=NOW)
    c = generate_deaths(40, facility="79034", seed=4, now=NOW)
    assert list(a) == list(b) and a.manifest() == b.manifest()
    assert list(a) != list(c)
    assert list(generate_bulk_births(500, seed=2)) == list(generate_bulk_births(500, seed=2))


def _d(text: str) -> date:
    return datetime.strptime(text, "%Y%m%d").date()


def _check_id(cid: str, male: bool, year: int):
    assert re.fullmatch(r"\d{12}", cid), cid
    assert cid[0] == "0" and cid[1:3] in refdata.load_era("legacy").by_province
    assert cid[3] == str((year // 100 - 19) * 2 + (0 if male else 1))
    assert cid[4:6] == f"{year % 100:02d}"


def _check_place(province: str, district: str, ward: str, on: str):
    era = refdata.era_for(on)
    wards = {w.ward_code: w for w in era.by_province[province.strip()]}
    w = wards[ward.strip()]
    assert (district == w.district_code) if era.name == "legacy" else district == ""


def test_valid_births_are_consistent():
    batch = generate_births(300, facility="01020", seed=5, now=NOW)
    valid = [e for e in batch if e["id"] not in batch.expected]
    assert len({e["id"] for e in batch}) == 300 and len(batch.expected) == 30
    for e in valid:
        r = e["record"]
        assert CERT.match(r["MA_GCS"].upper()) and r["MA_GCS"].upper().split(".")[2:] == ["01020", r["NGAY_CT"][2:4]]
        born = datetime.strptime(r["NGAY_SINH_CON"], "%Y%m%d%H%M").replace(tzinfo=VN_TZ)
        assert NOW - timedelta(days=60) <= born <= NOW
        assert 0 <= (_d(r["NGAY_CT"]) - born.date()).days <= 3
        age = (born.date() - _d(r["NGAYSINH_NND"])).days / 365.25
        assert 18 <= age < 43
        _check_id(r["SO_CCCD_NND"], False, int(r["NGAYSINH_NND"][:4]))
        assert 1800 <= int(r["CAN_NANG_CON"]) <= 4300 and r["GIOI_TINH_CON"] in "12"
        assert int(r["SO_CON_SONG"]) >= int(r["SO_CON"]) >= 1 and int(r["LAN_SINH"]) >= 1
        assert r["MA_CSKCB"] == "01020" and r["MATINH_CU_TRU"] == "01"
        _check_place(r["MATINH_CU_TRU"], r["MAHUYEN_CU_TRU"], r["MAXA_CU_TRU"], r["NGAY_CT"])
        assert datetime.fromisoformat(e["updated_at"]) <= NOW
        if batch.messy.get(e["id"]) != "NFD":
            assert unicodedata.is_normalized("NFC", r["HOTEN_NND"])
    twins = [e for e in valid if e["record"]["SO_CON"] == "2"]
    assert twins  # twins come as two records of the same mother


def test_valid_deaths_are_consistent():
    batch = generate_deaths(200, facility="96025", seed=5, now=NOW)
    old = 0
    for e in batch:
        if e["id"] in batch.expected:
            continue
        r = e["record"]
        cert = r["MA_GBT"].upper()
        assert CERT.match(cert) and cert.split(".")[2:] == ["96025", r["NGAY_CAPGIAYBT"][2:4]]
        died = datetime.strptime(r["NGAY_TV"], "%Y%m%d%H%M")
        assert r["NGAYGIO_VV"] < r["NGAY_TV"] and 0 <= (_d(r["NGAY_CAPGIAYBT"]) - died.date()).days <= 1
        assert 0 <= died.year - _d(r["NGAY_SINH"]).year <= 101
        _check_id(r["SO_GIAYTO"], r["GIOI_TINH"] == "1", int(r["NGAY_SINH"][:4]))
        assert r["BENH_ICD10_ID"].upper() in {
            "I21.9",
            "I64",
            "J18.9",
            "C34.9",
            "E11.9",
            "R54",
            "A41.9",
            "K74.6",
            "J44.9",
            "V89.2",
        }
        if batch.messy.get(e["id"]) != "NFD":
            assert r["HO_TEN"].strip() == r["HO_TEN"].strip().upper()
        _check_place(r["MATINH_THUONGTRU"], r["MAHUYEN_THUONGTRU"], r["MAXA_THUONGTRU"], r["NGAY_CAPGIAYBT"])
        old += r["NGAY_CAPGIAYBT"] < refdata.REFORM_DATE
    assert old >= 3  # a handful issued in May 2025, legacy codes


def test_bad_records_break_their_rule():
    batch = generate_births(280, facility="79034", seed=9, now=NOW, rule_offset=0)
    by_id = {e["id"]: e["record"] for e in batch}
    seen = set()
    for rid, rule in batch.expected.items():
        r = by_id[rid]
        seen.add(rule)
        cid = r["SO_CCCD_NND"]
        if rule == "CCCD_SEX":
            assert cid[3] in "02"
        elif rule == "CCCD_YEAR":
            assert cid[4:6] != r["NGAYSINH_NND"][2:4]
        elif rule == "ID_FORMAT":
            assert len(cid) == 11
        elif rule == "DATE_INVALID":
            with pytest.raises(ValueError, match=r"does not match format|out of range|unconverted"):
                _d(r["NGAYSINH_NND"])
        elif rule == "DATE_FUTURE":
            assert r["NGAY_SINH_CON"] > NOW.strftime("%Y%m%d%H%M")
        elif rule == "DATE_ORDER":
            assert r["NGAY_CT"] < r["NGAY_SINH_CON"][:8]
        elif rule == "WEIGHT_RANGE":
            assert r["CAN_NANG_CON"] == "45000"
        elif rule == "COMMUNE_PROVINCE":
            assert r["MAXA_CU_TRU"] not in {w.ward_code for w in refdata.era_for(r["NGAY_CT"]).by_province["79"]}
        elif rule == "CERT_FACILITY":
            assert r["MA_GCS"].split(".")[2] != "79034"
        elif rule == "CERT_YEAR":
            assert CERT.match(r["MA_GCS"]) and r["MA_GCS"][-2:] != r["NGAY_CT"][2:4]
        elif rule == "CERT_FORMAT":
            assert not CERT.match(r["MA_GCS"])
        elif rule == "REQUIRED":
            assert r["HOTEN_NND"] == ""
    assert seen == set(BIRTH_RULES)


def test_bulk_births_unique_and_valid_shape():
    rows = list(generate_bulk_births(20_000, seed=1, bad_ratio=0))
    assert len({r["MA_GCS"] for r in rows}) == len(rows)
    assert len({r["MA_CSKCB"] for r in rows}) > 5
    r = rows[0]
    assert CERT.match(r["MA_GCS"]) and r["MA_GCS"][-2:] == r["NGAY_CT"][2:4]
    _check_id(r["SO_CCCD_NND"], False, int(r["NGAYSINH_NND"][:4]))
