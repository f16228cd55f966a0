"""The registrar console in a real Chromium against the registrar service on loopback and a real PostgreSQL: login,
look-ups, the certificate card, mark used and cancel, worklist export (.xlsx opened), supervisors' audit trail,
logout, CSRF refusal."""

import datetime as dt

import httpx
import openpyxl
import pytest

from registrar.web.console import issue_supervisor_token
from tests.services.registrar.conftest import DECEASED_ID, MOTHER_ID


def login(chromium, api, token):
    ctx = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="vi-VN", accept_downloads=True)
    page = ctx.new_page()
    page.goto(api.url + "/console")
    assert page.url.endswith("/console/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(api.url + "/console")
    return page


def status(wh, cert_key):
    wh.rollback()
    return wh.execute("SELECT status FROM wh.certificate WHERE cert_key = %s", (cert_key,)).fetchone()[0]


def test_look_up_mark_used_and_cancel(chromium, api, wh):
    page = login(chromium, api, api.token())
    assert "hn.hotich1" in page.inner_text("header")
    cookie = next(c for c in page.context.cookies() if c["name"] == "certpipe_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]  # plain HTTP here
    page.fill("#mother-id", MOTHER_ID)
    page.click("#by-mother button[type=submit]")
    assert page.url == api.url + "/console/lookup"
    assert page.inner_text("#results-title") == "Kết quả: 3 giấy"
    page.click("text=00001.GCS.01020.25")
    assert "Nguyễn Thị Lan" in page.inner_text("main")  # the card: the certificate's fields
    assert page.inner_text("#status") == "Đã tiếp nhận, chưa sử dụng"
    assert "nhận từ his (01020)" in page.inner_text("#history")
    # confirmation is required: the browser will not submit without it
    page.fill("#registration-no", "42/2025")
    page.click("#use-form button[type=submit]")
    assert status(wh, "00001.GCS.01020.25") == "received"
    page.check("#use-confirm")
    page.click("#use-form button[type=submit]")
    page.wait_for_url("**/console/cert/*?done=used")
    assert page.inner_text("#status") == "Đã sử dụng để đăng ký"
    assert page.inner_text("#reg-no") == "42/2025"
    assert "đăng ký số 42/2025" in page.inner_text("#history")
    assert status(wh, "00001.GCS.01020.25") == "used"
    # cancel, with a reason and a confirmation
    page.fill("#reason", "Nhập sai số đăng ký, cần đăng ký lại")
    page.check("#cancel-confirm")
    page.click("#cancel-form button[type=submit]")
    page.wait_for_url("**/console/cert/*?done=cancelled")
    assert page.inner_text("#status") == "Đã tiếp nhận, chưa sử dụng"
    assert "đã hủy" in page.inner_text("#history")
    assert status(wh, "00001.GCS.01020.25") == "received"
    actions = [r[0] for r in wh.execute("SELECT action FROM wh.audit_log WHERE actor = 'hn.hotich1' ORDER BY audit_id")]
    assert actions[:3] == ["console_login", "lookup_mother_id", "get_certificate"]
    assert "mark_used" in actions and "cancel_registration" in actions
    assert not wh.execute("SELECT 1 FROM wh.audit_log WHERE audit_log::text LIKE %s", (f"%{MOTHER_ID}%",)).fetchone()


def test_look_up_by_deceased_id_and_by_number(chromium, api):
    page = login(chromium, api, api.token(sub="cm.hotich", office="UBND phường An Xuyên", province="96"))
    page.fill("#deceased-id", DECEASED_ID)
    page.click("#by-deceased button[type=submit]")
    assert page.inner_text("#results-title") == "Kết quả: 1 giấy"
    assert "LÊ VĂN HÙNG" in page.inner_text("#results")
    page.goto(api.url + "/console")
    page.fill("#number", "2")
    page.fill("#issued-on", "2025-11-03")
    page.fill("#facility", "96025")
    page.click("#by-number button[type=submit]")
    assert "00002.GBT.96025.25" in page.inner_text("#results")
    # out of scope answers like nothing
    page.goto(api.url + "/console")
    page.fill("#mother-id", MOTHER_ID)
    page.click("#by-mother button[type=submit]")
    assert page.inner_text("#results-title") == "Kết quả: 0 giấy"


def test_worklist_filters_and_xlsx_export(chromium, api, tmp_path):
    page = login(chromium, api, api.token())
    page.goto(api.url + "/console/worklists?list=unregistered&days=0&kind=GCS")
    assert page.inner_text("#count").startswith("4 mục")
    page.select_option("#kind", "GBT")
    page.click("#filters button[type=submit]")
    assert page.inner_text("#count").startswith("0 mục")  # the deaths are in Cà Mau, outside Hà Nội
    page.select_option("#kind", "GCS")
    page.fill("#days", "30")
    page.click("#filters button[type=submit]")
    assert page.inner_text("#count").startswith("0 mục")  # all received today
    page.fill("#days", "0")
    page.click("#filters button[type=submit]")
    with page.expect_download() as dl:
        page.click("#export")
    assert dl.value.suggested_filename.endswith(".xlsx")
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    ws = openpyxl.load_workbook(path).active
    rows = list(ws.iter_rows(values_only=True))
    assert "UBND phường Ba Đình" in rows[0][0]
    assert rows[2][:4] == ("Số giấy", "Loại", "Cơ sở KCB", "Ngày cấp")
    keys = sorted(r[0] for r in rows[3:])
    assert keys == [f"0000{i}.GCS.01020.25" for i in range(1, 5)]
    assert all(r[1] == "GCS" and r[2] == "01020" and r[3] == "2025-11-10" for r in rows[3:])
    page.select_option("#list", "dhis2")
    page.click("#filters button[type=submit]")
    assert "Ca tử vong trong DHIS2" in page.inner_text("#filters")


def test_supervisor_sees_the_office_audit_trail_others_do_not(chromium, api):
    page = login(chromium, api, api.token())
    assert page.locator("text=Nhật ký truy cập").count() == 0
    page.goto(api.url + "/console/audit")
    assert "Không được phép" in page.inner_text("main")
    sup = login(chromium, api, issue_supervisor_token("hn.lanhdao", "UBND phường Ba Đình", "01", secret=api.secret))
    sup.click("text=Nhật ký truy cập")
    table = sup.inner_text("#audit")
    assert "hn.hotich1" in table and "Đăng nhập" in table and "hn.lanhdao" in table
    other = login(chromium, api, api.token(sub="cm.hotich", office="UBND phường An Xuyên", province="96"))
    sup.reload()
    assert "cm.hotich" not in sup.inner_text("#audit")  # another office
    other.context.close()


def test_cookies_are_secure_behind_tls(api):
    with httpx.Client(base_url=api.url, headers={"X-Forwarded-Proto": "https"}) as c:
        r = c.get("/console/login")
        csrf = r.cookies["certpipe_csrf"]
        assert "secure" in r.headers["set-cookie"].lower()  # so the client keeps it for https only: sent by hand
        c.cookies.clear()
        r = c.post(
            "/console/login", data={"token": api.token(), "csrf": csrf}, headers={"Cookie": f"certpipe_csrf={csrf}"}
        )
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert "certpipe_console=" in cookie and "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie


def test_logout_ends_the_session_on_the_server(chromium, api):
    page = login(chromium, api, api.token())
    old = next(c for c in page.context.cookies() if c["name"] == "certpipe_console")
    page.click("#logout")
    page.wait_for_url("**/console/login?bye=1")
    assert page.inner_text("#bye") == "Đã đăng xuất."
    page.goto(api.url + "/console")
    assert page.url.endswith("/console/login")
    page.context.add_cookies([old])  # the old cookie, replayed
    page.goto(api.url + "/console")
    assert page.url.endswith("/console/login")


def test_csrf_refusal(chromium, api, wh):
    page = login(chromium, api, api.token())
    cert = api.cert_id(wh, "00002.GCS.01020.25")
    page.goto(f"{api.url}/console/cert/{cert}")
    page.eval_on_selector("#use-form input[name=csrf]", "e => e.value = 'forged'")
    page.fill("#registration-no", "1/2025")
    page.check("#use-confirm")
    page.click("#use-form button[type=submit]")
    assert "Không được phép" in page.inner_text("main")
    assert status(wh, "00002.GCS.01020.25") == "received"
    # a cross-site form post carries no token either
    with api.client(cookies={"certpipe_console": api.token()}) as c:
        r = c.post(
            f"/console/cert/{cert}/use",
            data={"registration_no": "8/2025", "registered_on": "2025-11-11", "confirm": "yes"},
        )
    assert r.status_code == 403 and "Không được phép" in r.text
    assert status(wh, "00002.GCS.01020.25") == "received"
    refused = wh.execute("SELECT count(*) FROM wh.audit_log WHERE action = 'console_csrf_refused'").fetchone()[0]
    assert refused == 2


@pytest.mark.parametrize("path", ["/console/khong-co", "/station/khong-co"])
def test_error_pages_are_in_vietnamese(api, path):
    with api.client() as c:
        r = c.get(path)
    assert (
        r.status_code == 404 and "Không tìm thấy trang" in r.text and r.headers["content-type"].startswith("text/html")
    )
    with api.client() as c:
        assert c.get("/api/v1/khong-co").headers["content-type"] == "application/json"


def test_registered_on_in_the_future_is_refused(chromium, api, wh):
    page = login(chromium, api, api.token())
    page.goto(f"{api.url}/console/cert/{api.cert_id(wh, '00003.GCS.01020.25')}")
    page.eval_on_selector("#registered-on", "e => e.removeAttribute('max')")
    page.fill("#registration-no", "9/2025")
    page.fill("#registered-on", (dt.date.today() + dt.timedelta(days=30)).isoformat())
    page.check("#use-confirm")
    page.click("#use-form button[type=submit]")
    assert "không sau hôm nay" in page.inner_text("#card-error")
    assert status(wh, "00003.GCS.01020.25") == "received"


def test_a_failure_is_a_vietnamese_error_page(secret, caplog):
    from registrar import create_app
    from registrar.server import run_in_thread

    app = create_app("postgresql://nobody@127.0.0.1:1/none", jwt_secret=secret)  # no database there
    with run_in_thread(app) as url, httpx.Client(base_url=url) as c:
        r = c.get("/station")
        assert r.status_code == 500 and "Lỗi hệ thống" in r.text and r.headers["cache-control"] == "no-store"
        r = c.get("/console", cookies={"certpipe_console": "x"})
        assert r.status_code in (303, 500)
    assert "web page error OperationalError" in caplog.text and "Connection refused" not in caplog.text
