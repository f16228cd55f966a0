"""VDXP download links through our own security server (national portal guide, section V.3)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

import psycopg

from certpipe.core.schema import message

ADAPTER_PREFIX = "/VXPAdapter/RestService/forward"  # VDXP download adapter on a security server


class LinkError(ValueError):
    """A download link cannot be built. `code` is a rules.json code (SS_LINK_*)."""

    def __init__(self, code: str, detail: str = ""):
        self.code, self.detail = code, detail
        super().__init__(f"{code}: {message(code)}" + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class Directory:
    """The current directory, for building links: MACOQUAN → DSTCODE."""

    by_agency: Mapping[str, str]

    @classmethod
    def load(cls, conn: psycopg.Connection) -> Directory:
        return cls(dict(conn.execute("SELECT macoquan, dstcode FROM wh.secserver_directory")))

    @property
    def dstcodes(self) -> frozenset[str]:
        return frozenset(self.by_agency.values())

    def dstcode(self, macoquan: str) -> str:
        code = self.by_agency.get((macoquan or "").strip())
        if code is None:
            raise LinkError("SS_LINK_AGENCY", f"MACOQUAN {macoquan or '(trống)'}")
        return code


# ---------------------------------------------------------------- download links (V.3)


def download_link(file_url: str, directory: Directory, own_base: str, macoquan: str | None = None) -> str:
    """The link to download a paper's file through our own security server (VDXP adapter).

    Case 1, a provider's own URL (https://dichvucong.hagiang.gov.vn/download/124.pdf) with its owner agency's
    MACOQUAN → {own_base}/VXPAdapter/RestService/forward/download/124.pdf?dstcode=<DSTCODE>&providerurl=<origin>.
    Case 2, another agency's adapter URL (http://IP-SS-BNĐP:8080/VXPAdapter/RestService/forward/...?dstcode=...)
    → the same path and query on `own_base`; its dstcode must be in the directory.
    `own_base` is our security server's base URL (the `secserver_default` connection's host).
    """
    try:
        u = urlsplit((file_url or "").strip())
        u.port  # noqa: B018 - validates the port
    except ValueError as e:
        raise LinkError("SS_LINK_URL", "không phân tích được") from e
    if u.scheme.lower() not in ("http", "https") or not u.hostname:
        raise LinkError("SS_LINK_URL", "thiếu http(s):// hoặc tên máy")
    base = own_base.rstrip("/")
    at = u.path.find(ADAPTER_PREFIX + "/")
    if at >= 0:  # case 2
        asked = parse_qs(u.query)
        dst, provider = asked.get("dstcode", [""])[0], asked.get("providerurl", [""])[0]
        if not dst or not provider:
            raise LinkError("SS_LINK_ADAPTER")
        if dst not in directory.dstcodes:
            raise LinkError("SS_LINK_DSTCODE", dst)
        return f"{base}{u.path[at:]}?{u.query}"
    path = quote(u.path, safe="/%:@!$&'()*+,;=-._~")
    if path in ("", "/"):
        raise LinkError("SS_LINK_URL", "thiếu đường dẫn tệp")
    dst = directory.dstcode(macoquan or "")
    host = u.hostname + (f":{u.port}" if u.port else "")
    provider = f"{u.scheme.lower()}://{host}"
    extra = f"{u.query}&" if u.query else ""
    query = f"{extra}dstcode={quote(dst, safe=':')}&providerurl={quote(provider, safe=':/')}"
    return f"{base}{ADAPTER_PREFIX}{path}?{query}"
