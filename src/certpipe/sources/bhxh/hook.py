"""Client for the BHXH certificate database (solution 2): token auth, registrar look-ups, windowed bulk pull.

API contract (v1, relative to the connection's host URL; docs/bhxh.md):
  POST api/v1/auth/token            {"username", "password"} → {"access_token", "token_type": "Bearer", "expires_in"}
  POST api/v1/certificates/lookup   {"kind": "GCS"|"GBT", <criteria in official field names>} → {"items": [...]}
  GET  api/v1/certificates?kind=&province=&changed_from=&changed_to=&page_size=&cursor=
       → {"items": [{"id", "updated_at", "record"}], "next_cursor": str | null}   (keyset paging)
Credentials: the connection's login/password, exchanged for a bearer token that is reused until it expires and
refreshed once on a 401. The token and the credentials are never logged; look-up criteria go in the POST body,
never in a URL.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests

from certpipe.errors import SourceRejected, SourceUnavailable
from certpipe.http.hook import RetryingHttpHook

TOKEN_ENDPOINT = "api/v1/auth/token"  # noqa: S105 - an endpoint path, not a secret
LOOKUP_ENDPOINT = "api/v1/certificates/lookup"
PULL_ENDPOINT = "api/v1/certificates"
EXPIRY_MARGIN = 30  # seconds: a token this close to its expiry is renewed before use

# Look-up criteria: one of these field sets (official GIAYCHUNGSINH / GIAYBAOTU names) per request.
CRITERIA = {
    "GCS": (("SO_CCCD_NND",), ("MA_GCS",), ("SO", "NGAY_CT", "MA_CSKCB")),
    "GBT": (("SO_GIAYTO",), ("MA_GBT",), ("SO_BAOTU", "NGAY_CAPGIAYBT", "MACSKCB")),
}

_tokens: dict[tuple, tuple[str, float]] = {}  # (conn_id, base_url, login) -> (token, monotonic expiry)
_lock = threading.Lock()


class BhxhHook(RetryingHttpHook):
    conn_name_attr = "bhxh_conn_id"
    default_conn_name = "bhxh_default"
    conn_type = "http"
    hook_name = "BHXH certificate database"
    source_label = "BHXH"

    def __init__(self, conn_id: str = default_conn_name, **kwargs: Any):
        super().__init__(conn_id, **kwargs)
        self.auth_type = lambda *_: None  # no HTTP Basic on API calls: the credentials only go to the token endpoint

    # ------------------------------------------------------------------ token

    def _cache_key(self) -> tuple:
        conn = self.get_connection(self.http_conn_id)
        self._set_base_url(conn)
        return self.http_conn_id, self.base_url, conn.login

    def token(self, *, renew: bool = False) -> str:
        key = self._cache_key()
        with _lock:
            cached = _tokens.get(key)
            if cached and not renew and cached[1] - EXPIRY_MARGIN > time.monotonic():
                return cached[0]
            _tokens.pop(key, None)
        conn = self.get_connection(self.http_conn_id)
        where = f"BHXH {self.http_conn_id}"
        try:
            resp = self.get_conn().post(
                self.url_from_endpoint(TOKEN_ENDPOINT),
                timeout=self.timeout,
                json={"username": conn.login, "password": conn.password},
            )
        except requests.Timeout as e:
            raise SourceUnavailable(f"{where}: timeout on {TOKEN_ENDPOINT}") from e
        except requests.ConnectionError as e:
            raise SourceUnavailable(f"{where}: cannot connect") from e
        if resp.status_code >= 500 or resp.status_code == 429:
            raise SourceUnavailable(f"{where}: HTTP {resp.status_code} on {TOKEN_ENDPOINT}", resp.status_code)
        if resp.status_code >= 400:
            raise SourceRejected(
                f"{where}: HTTP {resp.status_code} on {TOKEN_ENDPOINT} (credentials refused)", resp.status_code
            )
        try:
            body = resp.json()
            value, ttl = str(body["access_token"]), float(body.get("expires_in", 300))
        except (ValueError, KeyError, TypeError) as e:
            raise SourceUnavailable(f"{where}: token answer is not valid JSON with an access_token") from e
        with _lock:
            _tokens[key] = (value, time.monotonic() + ttl)
        return value

    def run(
        self,
        endpoint: str | None = None,
        data: Any = None,
        headers: dict | None = None,
        extra_options: dict | None = None,
        **request_kwargs: Any,
    ) -> requests.Response:
        """Every API call carries the bearer token; a 401 renews the token and repeats the call once."""
        method = self.method
        for renew in (False, True):
            auth = {"Authorization": f"Bearer {self.token(renew=renew)}"}
            self.method = method
            resp = super().run(endpoint, data, {**(headers or {}), **auth}, extra_options, **request_kwargs)
            if resp.status_code != 401:
                break
        if resp.status_code == 429:  # honour Retry-After (capped) before the retry loop's own backoff
            try:
                wait = float(resp.headers.get("Retry-After", 0))
            except ValueError:
                wait = 0.0
            time.sleep(min(max(wait, 0.0), self.max_backoff))
        return resp

    # ------------------------------------------------------------------ API

    def lookup(self, kind: str, criteria: dict[str, str]) -> list[dict]:
        """Certificates matching one criteria set of CRITERIA[kind] (exact match)."""
        if tuple(sorted(criteria)) not in {tuple(sorted(c)) for c in CRITERIA[kind]}:
            raise ValueError(f"look-up of {kind} by {sorted(criteria)} is not part of the BHXH contract")
        body = self.call("POST", LOOKUP_ENDPOINT, json={"kind": kind, **criteria})
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise SourceUnavailable(f"BHXH {self.http_conn_id}: look-up answer has no 'items' list")
        return items

    def pages(
        self, kind: str, province: str, changed_from: dt.datetime, changed_to: dt.datetime, page_size: int = 500
    ) -> Iterator[list[dict]]:
        """Certificates of `province` issued or changed in [changed_from, changed_to), page by page (keyset cursor:
        a record changed while we page leaves the window without shifting the pages that follow)."""
        cursor = None
        page = 0
        while True:
            page += 1
            params = {
                "kind": kind,
                "province": province,
                "changed_from": changed_from.isoformat(),
                "changed_to": changed_to.isoformat(),
                "page_size": page_size,
            }
            if cursor:
                params["cursor"] = cursor
            body = self.call("GET", PULL_ENDPOINT, params=params)
            items = body.get("items") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise SourceUnavailable(f"BHXH {self.http_conn_id}: page {page} has no 'items' list")
            yield items
            cursor = body.get("next_cursor")
            if not cursor or not items:
                return
