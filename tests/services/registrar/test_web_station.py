"""The hospital look-up station (solution 5) in a real Chromium against the registrar service on loopback and a real
PostgreSQL: right and wrong factors, not yet arrived, already used, rate limits, revocation, audit."""

import os
import re
import subprocess
import sys

import pytest

from registrar.web import stations
from tests.services.registrar.conftest import DECEASED_ID, MOTHER_ID

PORTAL_GCS = "https://dichvucong.example.vn/thu-tuc/dang-ky-khai-sinh"


@pytest.fixture
def station_env(monkeypatch):
    monkeypatch.setenv("CERTPIPE_PORTAL_GCS_URL", PORTAL_GCS)
    monkeypatch.setenv("CERTPIPE_STATION_LIMIT", "100/minute")
    monkeypatch.setenv("CERTPIPE_STATION_ADDR_LIMIT", "100/minute")


@pytest.fixture
def site(station_env, api):
    """The service with one registered station of the Hà Nội pilot hospital (facility 01020)."""
    api.credential = stations.add(api.dsn, "01020", "Bệnh viện thí điểm Hà Nội")
    return api


def open_station(chromium, api, credential=None):
    ctx = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="vi-VN")
    page = ctx.new_page()
    page.goto(api.url + "/station")
    assert page.url.endswith("/station/setup")
    page.fill("#credential", credential or api.credential)
    page.click("button[type=submit]")
    page.wait_for_url(api.url + "/station")
    return page


def look_up(page, kind, number, factor, date):
    page.check(f'input[name=kind][value="{kind}"]')
    page.fill("#number", number)
    page.fill("#factor", factor)
    page.fill("#date", date)
    page.click("#station-form button[type=submit]")
    page.wait_for_load_state()


def test_all_factors_right_shows_only_what_is_needed_and_the_next_step(chromium, site, wh, caplog):
    page = open_station(chromium, site)
    assert "Bệnh viện thí điểm Hà Nội" in page.inner_text("header")
    assert page.inner_text("#factor-label") == "Số định danh cá nhân (CCCD) của người mẹ"
    look_up(page, "GCS", "00001.GCS.01020.25", MOTHER_ID, "2025-11-10")
    assert page.url == site.url + "/station/lookup"  # POST: nothing typed goes into a URL
    assert page.inner_text("#cert-number") == "00001.GCS.01020.25"
    assert page.inner_text("#cert-kind") == "Giấy chứng sinh"
    assert "Bệnh viện thí điểm Hà Nội (mã 01020)" in page.inner_text("#cert-facility")
    assert page.inner_text("#cert-date") == "10/11/2025"
    assert page.inner_text("#cert-received").startswith("Có")
    assert page.inner_text("#cert-used") == "Chưa sử dụng"
    assert page.get_attribute("#portal-link", "href") == PORTAL_GCS
    assert page.locator("figure.qr svg").count() == 1
    body = page.inner_text("main")
    # nothing personal on the result: no names, no ID
    for value in (MOTHER_ID, "Nguyễn Thị Lan", "Trần Minh An", "Trần Văn Nam"):
        assert value not in body and value not in page.content()
    # the short number of the station's own hospital works too
    page.click("#new-lookup")
    look_up(page, "GCS", "2", MOTHER_ID, "2025-11-10")
    assert page.inner_text("#cert-number") == "00002.GCS.01020.25"
    # a death notice of another hospital by its full number, the deceased's ID as second factor
    page.goto(site.url + "/station")
    page.check('input[name=kind][value="GBT"]')
    assert page.inner_text("#factor-label") == "Số định danh cá nhân (CCCD) của người đã mất"
    look_up(page, "GBT", "00001.GBT.96025.25", DECEASED_ID, "2025-11-03")
    assert page.inner_text("#cert-kind") == "Giấy báo tử"
    assert "đăng ký khai tử" in page.inner_text("#next-step")
    # each look-up audited with the station id and no value in clear
    rows = wh.execute(
        "SELECT actor, action, query_kind, query_hash, cert_ids, outcome FROM wh.audit_log "
        "WHERE action = 'station_lookup' ORDER BY audit_id"
    ).fetchall()
    sid = site.credential.split(".")[0]
    assert [(r[0], r[2], r[5]) for r in rows] == [(f"station:{sid}", "station", "ok")] * 3
    assert all(r[3] and MOTHER_ID not in r[3] and len(r[4]) == 1 for r in rows)
    assert not wh.execute("SELECT 1 FROM wh.audit_log WHERE audit_log::text LIKE %s", (f"%{MOTHER_ID}%",)).fetchone()
    assert "POST /station/lookup" in caplog.text  # the access log has the path only
    assert MOTHER_ID not in caplog.text and DECEASED_ID not in caplog.text and "00001.GCS" not in caplog.text


def test_wrong_factor_and_not_arrived_give_one_answer_that_says_what_to_do(chromium, site, wh):
    page = open_station(chromium, site)
    answers = []
    for number, factor, date in (
        ("00001.GCS.01020.25", "001195099999", "2025-11-10"),  # wrong mother's ID
        ("00001.GCS.01020.25", MOTHER_ID, "2025-11-11"),  # wrong date
        ("00003.GCS.01020.25", "001195067890", "2025-11-10"),  # another mother's ID of a real certificate
        ("00077.GCS.01020.25", MOTHER_ID, "2025-11-10"),  # not arrived (yet)
    ):
        look_up(page, "GCS", number, factor, date)
        assert page.locator("#cert-number").count() == 0
        answers.append(page.inner_text("main"))
        html = page.content()
        assert factor not in html and number not in html  # nothing typed is echoed back
    assert len(set(answers)) == 1, "the answer must not tell which factor was wrong"
    text = answers[0]
    assert "chưa được chuyển đến kho" in text and "bộ phận cấp giấy chứng sinh" in text
    assert "Không tìm thấy" not in text
    outcomes = [r[0] for r in wh.execute("SELECT outcome FROM wh.audit_log WHERE action = 'station_lookup'")]
    assert outcomes == ["not_found"] * 4


def test_already_used_says_so_and_offers_no_new_application(chromium, site, wh):
    cert = site.cert_id(wh, "00002.GCS.01020.25")
    with site.client(site.token()) as c:  # the registry office uses it (registrar API)
        r = c.post(
            f"/api/v1/certificates/{cert}/registration",
            json={"registration_no": "7/2025", "registered_on": "2025-11-12"},
        )
    assert r.status_code == 200, r.text
    page = open_station(chromium, site)
    look_up(page, "GCS", "00002.GCS.01020.25", MOTHER_ID, "2025-11-10")
    assert page.inner_text("#cert-used") == "Đã sử dụng"
    assert "đã được sử dụng để đăng ký khai sinh" in page.inner_text("#next-step")
    assert page.locator("#portal-link").count() == 0


def test_rate_limits_per_station_and_per_address(chromium, monkeypatch, station_env, request):
    monkeypatch.setenv("CERTPIPE_STATION_LIMIT", "3/minute")
    monkeypatch.setenv("CERTPIPE_STATION_ADDR_LIMIT", "5/minute")
    api = request.getfixturevalue("api")
    a = open_station(chromium, api, stations.add(api.dsn, "01020", "Bệnh viện thí điểm Hà Nội"))
    b = open_station(chromium, api, stations.add(api.dsn, "01020", "Bệnh viện thí điểm Hà Nội"))
    for _ in range(3):
        look_up(a, "GCS", "00001.GCS.01020.25", MOTHER_ID, "2025-11-10")
        assert a.inner_text("#cert-number") == "00001.GCS.01020.25"
        a.goto(api.url + "/station")
    look_up(a, "GCS", "00001.GCS.01020.25", MOTHER_ID, "2025-11-10")
    assert "Quá nhiều lượt tra cứu" in a.inner_text("main")  # station a: 4th in a minute
    look_up(b, "GCS", "00001.GCS.01020.25", MOTHER_ID, "2025-11-10")
    assert b.inner_text("#cert-number") == "00001.GCS.01020.25"  # station b has its own limit...
    b.goto(api.url + "/station")
    look_up(b, "GCS", "00001.GCS.01020.25", MOTHER_ID, "2025-11-10")
    assert "Quá nhiều lượt tra cứu" in b.inner_text("main")  # ...but the address has made 6
    with api.client() as c:
        assert c.get("/station").status_code in (200, 303)


def test_a_revoked_station_can_no_longer_look_up(chromium, site, wh):
    page = open_station(chromium, site)
    sid = site.credential.split(".")[0]
    assert stations.revoke(site.dsn, sid)
    look_up(page, "GCS", "00001.GCS.01020.25", MOTHER_ID, "2025-11-10")
    assert page.url.endswith("/station/setup")
    page.fill("#credential", site.credential)
    page.click("button[type=submit]")
    assert "đã bị thu hồi" in page.inner_text("main")
    assert [r[0] for r in stations.listing(site.dsn)] == [sid]


def test_pages_are_not_cached_and_cookies_are_httponly(chromium, site):
    page = open_station(chromium, site)
    cookie = next(c for c in page.context.cookies() if c["name"] == "certpipe_station")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    resp = page.goto(site.url + "/station")
    assert resp.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
    # a forged form (no CSRF token) is refused
    with site.client(cookies={"certpipe_station": site.credential}) as c:
        r = c.post("/station/lookup", data={"kind": "GCS", "number": "1", "factor": MOTHER_ID, "date": "2025-11-10"})
    assert r.status_code == 403 and "Không được phép" in r.text
    assert re.search(r"lang=\"vi\"", r.text)


def test_station_cli_add_list_revoke(warehouse_dsn):
    env = {**os.environ, "CERTPIPE_REGISTRAR_DB_URL": warehouse_dsn}

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "registrar", "station", *args], env=env, capture_output=True, text=True, timeout=120
        )

    added = cli("add", "--facility", "79034", "--name", "Bệnh viện thí điểm TP. Hồ Chí Minh")
    assert added.returncode == 0, added.stderr
    credential = added.stdout.strip()
    assert credential.startswith("st-79034-1.")
    listed = cli("list").stdout
    assert "st-79034-1\t79034\tBệnh viện thí điểm TP. Hồ Chí Minh" in listed and "active" in listed
    assert credential.split(".")[1] not in listed  # the secret is shown once, never stored in clear
    assert cli("revoke", "st-79034-1").returncode == 0
    assert "revoked" in cli("list").stdout
    assert cli("revoke", "st-79034-1").returncode == 1


@pytest.mark.parametrize("viewport", [{"width": 1366, "height": 768}, {"width": 768, "height": 1024}])
def test_keyboard_only_and_no_sideways_scrolling(chromium, site, viewport):
    """On a 1366x768 screen and a portrait tablet: the form is used with the keyboard alone (Tab order, Enter) and
    nothing scrolls sideways; the result's facts and next step fit without horizontal scrolling too."""
    ctx = chromium.new_context(viewport=viewport, locale="vi-VN")
    page = ctx.new_page()
    page.goto(site.url + "/station/setup")
    page.fill("#credential", site.credential)
    page.keyboard.press("Enter")
    page.wait_for_url(site.url + "/station")
    order = []
    for _ in range(8):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || document.activeElement.name"))
    # skip link, kind, number, second factor, date (then its day/month/year parts and the button)
    assert order[:5] == ["", "kind", "number", "factor", "date"]
    page.focus("#number")
    page.keyboard.type("00001.GCS.01020.25")
    page.keyboard.press("Tab")
    page.keyboard.type(MOTHER_ID)
    page.fill("#date", "2025-11-10")
    page.keyboard.press("Enter")
    page.wait_for_selector("#cert-number")
    wide = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not wide
    for sel in ("#cert-number", "#portal-link"):
        box = page.locator(sel).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
    ctx.close()
