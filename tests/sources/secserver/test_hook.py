"""The security-server client against the sandbox over real HTTP: directory (V.1), papers look-up (V.2)."""

import copy
import json
import logging

import pytest

from certpipe.errors import SourceRejected, SourceUnavailable
from certpipe.sources.secserver.hook import SecServerHook
from certpipe.sources.secserver.papers import PapersError, PapersRequestInvalid
from sandbox.secserver import GUIDE_DIRECTORY, GUIDE_PAPERS_ANSWER, SESSION
from tests.sources.secserver.conftest import secserver_conn

# The guide's sample request (V.2).
GUIDE_REQUEST = {
    "MaThuTuc": "1.001193",
    "DanhSachDanhMucKetQua": [
        {"MaKetQua": "000.00.00.G02-KQ0685", "SoKyHieu": ""},
        {"MaKetQua": "000.00.00.G40-KQ0686", "SoKyHieu": ""},
    ],
    "SoDinhDanhChuSoHuu": "013419012",
    "HoTenNguoiYeuCau": "Nguyễn Văn Thanh",
    "KenhThucHien": "1",
    "SoDinhDanhNguoiYeuCau": "013419012",
}


def test_directory_returns_the_guides_answer_with_credentials_in_the_body_only(control):
    answer = SecServerHook().directory()
    assert answer == {"result": GUIDE_DIRECTORY}
    assert answer["result"][0] == {
        "MACOQUAN": "000.00.00.G01",
        "TENCOQUAN": "Bộ Công an",
        "DSTCODE": "VN:COM:0108212803:DVCTYBXDNTL",
    }
    seen = control.requests()["last"]["directory"]
    assert seen["keys"] == ["madonvi", "service", "session"]
    assert seen["authorization_header"] is False  # login/password are not sent as HTTP Basic
    assert seen["content_type"].startswith("application/json")


def test_5xx_and_timeouts_are_retried_then_succeed(control):
    control.fault(status=503, count=1)
    control.fault(delay_seconds=1.5, count=1)
    before = control.served("directory")
    assert SecServerHook(timeout=0.5, attempts=3, backoff=0.01).directory()["result"]
    assert control.served("directory") - before == 3


def test_5xx_beyond_the_attempts_fails_clearly(control):
    control.fault(status=502, count=10)
    with pytest.raises(SourceUnavailable, match="HTTP 502"):
        SecServerHook(attempts=2, backoff=0.01).directory()
    assert control.served("directory") == 2


def test_wrong_session_fails_at_once_and_the_session_is_never_logged(control, ss, monkeypatch, caplog, capfd):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SECSERVER_BAD", json.dumps({**json.loads(secserver_conn(ss)), "password": "wrong-secret-token"})
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SourceRejected, match="HTTP 401") as e:
        SecServerHook("secserver_bad").directory()
    assert control.served("directory") == 1
    control.fault(status=503, count=1)
    SecServerHook().directory()
    out = capfd.readouterr()
    text = caplog.text + out.out + out.err + str(e.value)
    assert "wrong-secret-token" not in text and SESSION not in text


def test_settings_in_the_connection_extra_are_not_sent_as_headers(control, ss, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SECSERVER_DEFAULT", secserver_conn(ss, papers_token=SESSION))
    hook = SecServerHook()
    session = hook.get_conn()
    assert not {"attempts", "backoff", "timeout", "papers_token"} & {k.lower() for k in session.headers}
    assert hook.papers(GUIDE_REQUEST)


def test_papers_lookup_sends_the_guides_request_and_reads_the_guides_answer(control):
    papers = SecServerHook().papers(GUIDE_REQUEST)
    assert papers == GUIDE_PAPERS_ANSWER["result"]["DanhSachGiayToKetQua"]
    assert [p["TenGiayTo"] for p in papers] == ["Giấy khai sinh", "Giấy chứng minh nhân dân"]
    assert [f["DuongDan"] for p in papers for f in p["DanhSachTepDinhKem"]] == [
        "https://abc.gov.vn/123.pdf",
        "https://abc.gov.vn/124.pdf",
    ]
    seen = control.requests()["last"]["papers"]
    assert seen["query_string"] == (
        "dstcode=VN:GOV:000.00.00.G22:vpccpdvcqgsub01&providerurl=https://apigiaytocanhan.dichvucong.gov.vn"
    )
    assert seen["body"] == GUIDE_REQUEST and seen["authorized"]


def test_papers_error_code_other_than_0_is_an_error(control):
    control.papers({"errorCode": "2", "message": "Mã kết quả không thuộc thủ tục", "signature": ""})
    with pytest.raises(PapersError, match="errorCode=2") as e:
        SecServerHook().papers(GUIDE_REQUEST)
    assert e.value.error_code == "2" and e.value.server_message == "Mã kết quả không thuộc thủ tục"
    assert "013419012" not in str(e.value)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"errorCode": 0, "message": "Successfully", "result": {"DanhSachGiayToKetQua": []}}, []),
        ({"errorCode": "0", "message": "Successfully", "result": None}, []),
    ],
)
def test_papers_nothing_found_is_an_empty_list(control, answer, expected):
    control.papers(answer)
    assert SecServerHook().papers(GUIDE_REQUEST) == expected


@pytest.mark.parametrize(
    "answer",
    [
        {"message": "Successfully"},
        {"errorCode": "0", "result": {"DanhSachGiayToKetQua": "none"}},
        ["not", "an", "object"],
    ],
)
def test_papers_answer_without_the_documented_shape_is_an_error(control, answer):
    control.papers(answer)
    with pytest.raises(PapersError, match="PAPERS_ANSWER"):
        SecServerHook().papers(GUIDE_REQUEST)


def _without(**changes):
    req = copy.deepcopy(GUIDE_REQUEST)
    for k, v in changes.items():
        if v is None:
            req.pop(k)
        else:
            req[k] = v
    return req


@pytest.mark.parametrize(
    ("request_", "reasons"),
    [
        (_without(MaThuTuc=None), {("MaThuTuc", "REQUIRED")}),
        (_without(MaThuTuc="thủ tục 1"), {("MaThuTuc", "CODE_FORMAT")}),
        (_without(DanhSachDanhMucKetQua=[]), {("DanhSachDanhMucKetQua", "PAPERS_RESULTS")}),
        (_without(DanhSachDanhMucKetQua=[{"SoKyHieu": "1"}]), {("DanhSachDanhMucKetQua[0].MaKetQua", "REQUIRED")}),
        (_without(SoDinhDanhChuSoHuu="01341901"), {("SoDinhDanhChuSoHuu", "PAPERS_OWNER_ID")}),
        (_without(KenhThucHien=1), {("KenhThucHien", "NOT_TEXT")}),
        (_without(KenhThucHien="4"), {("KenhThucHien", "PAPERS_CHANNEL")}),
        (
            _without(HoTenNguoiYeuCau=None, SoDinhDanhNguoiYeuCau=None),
            {("HoTenNguoiYeuCau", "PAPERS_OFFICER"), ("SoDinhDanhNguoiYeuCau", "PAPERS_OFFICER")},
        ),
        (_without(SoDinhDanhNguoiYeuCau="12ab"), {("SoDinhDanhNguoiYeuCau", "PAPERS_OFFICER_ID")}),
        (_without(MaThuTic="1.001193"), {("MaThuTic", "UNKNOWN_FIELD")}),
    ],
)
def test_invalid_papers_requests_fail_clearly_before_any_call(control, request_, reasons):
    with pytest.raises(PapersRequestInvalid) as e:
        SecServerHook().papers(request_)
    assert {(r["field"], r["code"]) for r in e.value.reasons} == reasons
    assert all(r["message"] for r in e.value.reasons)
    assert "013419012" not in str(e.value) and "Nguyễn" not in str(e.value)
    assert control.served("papers") == 0


def test_online_channel_needs_no_officer(control):
    papers = SecServerHook().papers(_without(KenhThucHien="2", HoTenNguoiYeuCau=None, SoDinhDanhNguoiYeuCau=None))
    assert len(papers) == 2
    assert control.requests()["last"]["papers"]["body"] == {
        "MaThuTuc": "1.001193",
        "DanhSachDanhMucKetQua": GUIDE_REQUEST["DanhSachDanhMucKetQua"],
        "SoDinhDanhChuSoHuu": "013419012",
        "KenhThucHien": "2",
    }
