"""VDXP download links (V.3): the guide's two cases, built from the directory, and fetched through the sandbox."""

import httpx
import pytest

from certpipe import warehouse
from certpipe.sources.secserver.directory import refresh_directory
from certpipe.sources.secserver.hook import SecServerHook
from certpipe.sources.secserver.links import Directory, LinkError, download_link
from sandbox.secserver import GUIDE_DIRECTORY

DIRECTORY = Directory({e["MACOQUAN"]: e["DSTCODE"] for e in GUIDE_DIRECTORY})
# The guide's own link, with IP-SS-BNĐP standing for a security server's address.
GUIDE_LINK = (
    "http://IP-SS-BNĐP:8080/VXPAdapter/RestService/forward/download/124.pdf"
    "?dstcode=VN:GOV:000.00.00.H22:hagiangvdxpsvc01&providerurl=https://dichvucong.hagiang.gov.vn"
)
OURS = "http://10.10.1.5:8080"


def test_case_1_a_providers_own_url_goes_through_our_security_server():
    link = download_link(
        "https://dichvucong.hagiang.gov.vn/download/124.pdf",
        DIRECTORY,
        "http://IP-SS-BNĐP:8080",
        macoquan="000.00.00.H22",
    )
    assert link == GUIDE_LINK


def test_case_2_another_agencys_adapter_url_gets_our_address():
    assert download_link(GUIDE_LINK, DIRECTORY, OURS) == (
        "http://10.10.1.5:8080/VXPAdapter/RestService/forward/download/124.pdf"
        "?dstcode=VN:GOV:000.00.00.H22:hagiangvdxpsvc01&providerurl=https://dichvucong.hagiang.gov.vn"
    )
    other = GUIDE_LINK.replace("IP-SS-BNĐP:8080", "10.99.0.7:8080")
    assert download_link(other, DIRECTORY, OURS + "/") == download_link(GUIDE_LINK, DIRECTORY, OURS)


def test_case_1_keeps_ports_and_queries_and_encodes_file_names():
    link = download_link(
        "https://abc.gov.vn:8443/files/QĐXP Lê Thành Bắc.pdf?v=2", DIRECTORY, OURS, macoquan="000.00.00.G02"
    )
    assert link == (
        "http://10.10.1.5:8080/VXPAdapter/RestService/forward/files/Q%C4%90XP%20L%C3%AA%20Th%C3%A0nh"
        "%20B%E1%BA%AFc.pdf?v=2&dstcode=VN:GOV:000.00.00.G02:tmdtktsbctss01"
        "&providerurl=https://abc.gov.vn:8443"
    )


@pytest.mark.parametrize(
    ("url", "macoquan", "code"),
    [
        ("https://dichvucong.hagiang.gov.vn/download/124.pdf", "000.00.00.H99", "SS_LINK_AGENCY"),
        ("https://dichvucong.hagiang.gov.vn/download/124.pdf", None, "SS_LINK_AGENCY"),
        (GUIDE_LINK.replace("hagiangvdxpsvc01", "unknown01"), None, "SS_LINK_DSTCODE"),
        (GUIDE_LINK.split("?")[0], None, "SS_LINK_ADAPTER"),
        ("dichvucong.hagiang.gov.vn/download/124.pdf", "000.00.00.H22", "SS_LINK_URL"),
        ("ftp://dichvucong.hagiang.gov.vn/download/124.pdf", "000.00.00.H22", "SS_LINK_URL"),
        ("https://dichvucong.hagiang.gov.vn/", "000.00.00.H22", "SS_LINK_URL"),
        ("", None, "SS_LINK_URL"),
    ],
)
def test_links_that_cannot_be_built_fail_with_a_reason(url, macoquan, code):
    with pytest.raises(LinkError, match=code) as e:
        download_link(url, DIRECTORY, OURS, macoquan=macoquan)
    assert e.value.code == code


def test_links_from_the_refreshed_directory_download_through_the_security_server(control, warehouse_dsn, wh):
    refresh_directory("secserver_default", warehouse_dsn)
    hook = SecServerHook()
    own = hook.own_base_url
    link = download_link(
        "https://dichvucong.hagiang.gov.vn/download/124.pdf", Directory.load(wh), own, macoquan="000.00.00.H22"
    )
    resp = httpx.get(link)
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/pdf"
    assert resp.content == (
        b"%PDF-sandbox VN:GOV:000.00.00.H22:hagiangvdxpsvc01 https://dichvucong.hagiang.gov.vn/download/124.pdf"
    )
    assert httpx.get(download_link(GUIDE_LINK, Directory.load(wh), own)).content == resp.content

    # Hà Giang moves to a new security server: the next refresh, and the links, follow
    moved = [
        {**e, "DSTCODE": "VN:GOV:000.00.00.H22:hagiangvdxpsvc02"} if e["MACOQUAN"] == "000.00.00.H22" else e
        for e in GUIDE_DIRECTORY
    ]
    control.directory(moved)
    refresh_directory("secserver_default", warehouse_dsn)
    with warehouse.connect(warehouse_dsn) as conn:
        fresh = Directory.load(conn)
    link = download_link("https://dichvucong.hagiang.gov.vn/download/124.pdf", fresh, own, macoquan="000.00.00.H22")
    assert "dstcode=VN:GOV:000.00.00.H22:hagiangvdxpsvc02&" in link and httpx.get(link).status_code == 200
    with pytest.raises(LinkError, match="SS_LINK_DSTCODE"):  # the old adapter link names a retired server
        download_link(GUIDE_LINK, fresh, own)
