"""Client for our own security server (national portal guide, section V), Airflow connection `secserver_default`.

Connection: host = our security server's base URL (e.g. http://10.0.0.5:8080), login = our unit code (madonvi),
password = the session token. Optional extra: `papers_token` (Authorization for the papers look-up; default: the
session token), `papers_dstcode` / `papers_providerurl` (the national portal's, per environment; default: the
guide's production values), `timeout`, `attempts`, `backoff`, `max_backoff`.
The session and tokens travel only in the request body / Authorization header; never in logs or errors.

  POST XrdAdapter/RestService/forward/mapi/call  {"session", "madonvi", "service": "LayDanhMucSSTaiTep"}
       → {"result": [{"MACOQUAN", "TENCOQUAN", "DSTCODE"}]}                                        (V.1)
  POST XrdAdapter/RestService/forward/bndp/public/v1/user/papers?dstcode=...&providerurl=...
       → {"errorCode": "0", "message", "signature", "result": {"DanhSachGiayToKetQua": [...]}}    (V.2)
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from certpipe.core.schema import message
from certpipe.errors import SourceError
from certpipe.http.hook import RetryingHttpHook

DIRECTORY_ENDPOINT = "XrdAdapter/RestService/forward/mapi/call"
DIRECTORY_SERVICE = "LayDanhMucSSTaiTep"
PAPERS_ENDPOINT = "XrdAdapter/RestService/forward/bndp/public/v1/user/papers"
PAPERS_DSTCODE = "VN:GOV:000.00.00.G22:vpccpdvcqgsub01"  # national public-service portal (guide, V.2)
PAPERS_PROVIDERURL = "https://apigiaytocanhan.dichvucong.gov.vn"
_SETTINGS = {"timeout": float, "attempts": int, "backoff": float, "max_backoff": float}
_CONFIG_KEYS = (*_SETTINGS, "papers_token", "papers_dstcode", "papers_providerurl")  # never sent as headers


class PapersError(SourceError):
    """The portal answered the papers look-up with errorCode != 0 (or an answer without the documented shape).

    The message names the errorCode only; the portal's own message is kept in `server_message` for the caller.
    """

    def __init__(self, code: str, error_code: str | None = None, server_message: str | None = None):
        self.code, self.error_code, self.server_message = code, error_code, server_message
        detail = f" (errorCode={error_code})" if error_code is not None else ""
        super().__init__(f"{code}: {message(code)}{detail}")


class SecServerHook(RetryingHttpHook):
    conn_name_attr = "secserver_conn_id"
    default_conn_name = "secserver_default"
    conn_type = "http"
    hook_name = "Security server (XRD / VDXP adapter)"
    source_label = "secserver"

    def __init__(
        self,
        conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        attempts: int | None = None,
        backoff: float | None = None,
        max_backoff: float | None = None,
        **kwargs: Any,
    ):
        given = {"timeout": timeout, "attempts": attempts, "backoff": backoff, "max_backoff": max_backoff}
        given = {k: v for k, v in given.items() if v is not None}
        super().__init__(conn_id, **given, **kwargs)
        self._given = set(given)
        self._conn = None
        self._call_headers: dict[str, str] = {}

    # --- connection and session

    def _connection(self):
        if self._conn is None:
            conn = self.get_connection(self.http_conn_id)
            extra = conn.extra_dejson
            for name, cast in _SETTINGS.items():
                if name not in self._given and extra.get(name) is not None:
                    setattr(self, name, cast(extra[name]))
            if not conn.login or not conn.password:
                raise SourceError(
                    f"secserver {self.http_conn_id}: the connection needs login (madonvi) and password (session token)"
                )
            self._set_base_url(conn)
            self._conn = conn
        return self._conn

    def _configure_session_from_auth(self, session, connection):
        session.auth = None  # login/password are madonvi/session for the body, not HTTP Basic
        return session

    def get_conn(self, headers: dict | None = None, extra_options: dict | None = None):
        session = super().get_conn(headers, extra_options)
        for key in _CONFIG_KEYS:  # HttpHook sends the connection's extra as headers; ours are settings
            session.headers.pop(key, None)
        session.headers.update(self._call_headers)
        return session

    def _post(self, endpoint: str, body: dict, headers: dict[str, str] | None = None) -> Any:
        self._call_headers = {"Content-Type": "application/json; charset=utf-8", "Charset": "utf-8", **(headers or {})}
        try:
            return self.call("POST", endpoint, json=body)
        finally:
            self._call_headers = {}

    @property
    def own_base_url(self) -> str:
        """Our security server's base URL (for VDXP download links)."""
        self._connection()
        return self.base_url

    # --- V.1 directory

    def directory(self) -> Any:
        """The raw answer of LayDanhMucSSTaiTep (check it with certpipe.sources.secserver.directory.parse_directory)."""
        conn = self._connection()
        return self._post(
            DIRECTORY_ENDPOINT, {"session": conn.password, "madonvi": conn.login, "service": DIRECTORY_SERVICE}
        )

    # --- V.2 papers look-up

    def papers(self, request: dict) -> list[dict]:
        """DanhSachGiayToKetQua for a request (MaThuTuc, DanhSachDanhMucKetQua, SoDinhDanhChuSoHuu, KenhThucHien,
        HoTenNguoiYeuCau, SoDinhDanhNguoiYeuCau). Invalid requests raise PapersRequestInvalid before any call;
        errorCode != 0 raises PapersError."""
        from certpipe.sources.secserver.directory import validate_papers_request

        body = validate_papers_request(request)
        conn = self._connection()
        extra = conn.extra_dejson
        dst = extra.get("papers_dstcode") or PAPERS_DSTCODE
        provider = extra.get("papers_providerurl") or PAPERS_PROVIDERURL
        endpoint = f"{PAPERS_ENDPOINT}?dstcode={quote(dst, safe=':')}&providerurl={quote(provider, safe=':/')}"
        answer = self._post(endpoint, body, {"Authorization": extra.get("papers_token") or conn.password})
        return parse_papers(answer)


def parse_papers(answer: Any) -> list[dict]:
    """errorCode 0 → the DanhSachGiayToKetQua list (empty when the portal holds nothing); else PapersError."""
    if not isinstance(answer, dict) or answer.get("errorCode") is None:
        raise PapersError("PAPERS_ANSWER")
    error_code = str(answer["errorCode"]).strip()
    if error_code != "0":
        text = answer.get("message")
        raise PapersError("PAPERS_ERROR", error_code[:50], text[:500] if isinstance(text, str) else None)
    result = answer.get("result")
    papers = result.get("DanhSachGiayToKetQua") if isinstance(result, dict) else result
    if papers is None:
        return []
    if not isinstance(papers, list) or not all(isinstance(p, dict) for p in papers):
        raise PapersError("PAPERS_ANSWER")
    return papers
