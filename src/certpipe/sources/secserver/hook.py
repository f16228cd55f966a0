"""Client for our own security server (national portal guide, section V), Airflow connection `secserver_default`.

Connection: host = our security server's base URL (e.g. http://10.0.0.5:8080), login = our unit code (madonvi),
password = the session token. Optional extra: `papers_token` (Authorization for the papers look-up; default: the
session token), `papers_dstcode` / `papers_providerurl` (the national portal's, per environment; default: the
guide's production values), and the client settings `timeout`, `attempts`, `backoff`, `max_backoff`, `max_retry_after`.
The session and tokens travel only in the request body / Authorization header; never in logs or errors.

  POST XrdAdapter/RestService/forward/mapi/call  {"session", "madonvi", "service": "LayDanhMucSSTaiTep"}
       → {"result": [{"MACOQUAN", "TENCOQUAN", "DSTCODE"}]}                                        (V.1)
  POST XrdAdapter/RestService/forward/bndp/public/v1/user/papers?dstcode=...&providerurl=...
       → {"errorCode": "0", "message", "signature", "result": {"DanhSachGiayToKetQua": [...]}}    (V.2)
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from certpipe.http import HttpSettings, SourceHook
from certpipe.sources.secserver.papers import parse_papers, validate_papers_request

DIRECTORY_ENDPOINT = "XrdAdapter/RestService/forward/mapi/call"
DIRECTORY_SERVICE = "LayDanhMucSSTaiTep"
PAPERS_ENDPOINT = "XrdAdapter/RestService/forward/bndp/public/v1/user/papers"
PAPERS_DSTCODE = "VN:GOV:000.00.00.G22:vpccpdvcqgsub01"  # national public-service portal (guide, V.2)
PAPERS_PROVIDERURL = "https://apigiaytocanhan.dichvucong.gov.vn"
JSON_UTF8 = {"Content-Type": "application/json; charset=utf-8", "Charset": "utf-8"}


class SecServerSettings(HttpSettings):
    system = "Security server"
    login: str  # our unit code (madonvi)
    password: SecretStr  # the session token
    papers_token: SecretStr | None = None
    papers_dstcode: str = PAPERS_DSTCODE
    papers_providerurl: str = PAPERS_PROVIDERURL


class SecServerHook(SourceHook):
    system = "Security server"
    settings_class = SecServerSettings
    conn_name_attr = "secserver_conn_id"
    default_conn_name = "secserver_default"
    hook_name = "Security server (XRD / VDXP adapter)"

    @property
    def ss(self) -> SecServerSettings:
        s = self.settings
        assert isinstance(s, SecServerSettings)  # noqa: S101 - settings_class above
        return s

    def auth(self) -> httpx.Auth | None:
        return None  # login/password are madonvi/session for the body, not HTTP Basic

    @property
    def own_base_url(self) -> str:
        """Our security server's base URL (for VDXP download links), without the trailing slash."""
        return self.settings.base_url.rstrip("/")

    # --- V.1 directory

    def directory(self) -> Any:
        """The raw answer of LayDanhMucSSTaiTep (checked by certpipe.sources.secserver.directory.parse_directory)."""
        s = self.ss
        body = {"session": s.secret(), "madonvi": s.login, "service": DIRECTORY_SERVICE}
        return self.call("POST", DIRECTORY_ENDPOINT, json=body, headers=JSON_UTF8)

    # --- V.2 papers look-up

    def papers(self, request: dict) -> list[dict]:
        """DanhSachGiayToKetQua for a request (MaThuTuc, DanhSachDanhMucKetQua, SoDinhDanhChuSoHuu, KenhThucHien,
        HoTenNguoiYeuCau, SoDinhDanhNguoiYeuCau). Invalid requests raise PapersRequestInvalid before any call;
        errorCode != 0 raises PapersError."""
        body = validate_papers_request(request)
        s = self.ss
        token = s.papers_token.get_secret_value() if s.papers_token else s.secret()
        dst, provider = quote(s.papers_dstcode, safe=":"), quote(s.papers_providerurl, safe=":/")
        endpoint = f"{PAPERS_ENDPOINT}?dstcode={dst}&providerurl={provider}"
        answer = self.call("POST", endpoint, json=body, headers={**JSON_UTF8, "Authorization": token or ""})
        return parse_papers(answer)
