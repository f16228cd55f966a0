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
from collections.abc import Iterator

import httpx

from certpipe.errors import ConfigError, SourceUnavailable
from certpipe.http import CursorPaginator, HttpSettings, SourceHook
from certpipe.http.auth import RenewingTokenAuth

TOKEN_ENDPOINT = "api/v1/auth/token"  # noqa: S105 - an endpoint path, not a secret
LOOKUP_ENDPOINT = "api/v1/certificates/lookup"
PULL_ENDPOINT = "api/v1/certificates"
EXPIRY_MARGIN = 30  # seconds: a token this close to its expiry is renewed before use

# Look-up criteria: one of these field sets (official GIAYCHUNGSINH / GIAYBAOTU names) per request.
CRITERIA = {
    "GCS": (("SO_CCCD_NND",), ("MA_GCS",), ("SO", "NGAY_CT", "MA_CSKCB")),
    "GBT": (("SO_GIAYTO",), ("MA_GBT",), ("SO_BAOTU", "NGAY_CAPGIAYBT", "MACSKCB")),
}


class BhxhSettings(HttpSettings):
    system = "BHXH"


class BhxhHook(SourceHook):
    system = "BHXH"
    settings_class = BhxhSettings
    conn_name_attr = "bhxh_conn_id"
    default_conn_name = "bhxh_default"
    hook_name = "BHXH certificate database"

    # ------------------------------------------------------------------ token

    def auth(self) -> httpx.Auth:
        """The bearer token (not HTTP Basic: the credentials go only to the token endpoint), shared per source."""
        s = self.settings
        return RenewingTokenAuth((self.conn_id, s.base_url, s.login), self._fetch_token, margin=EXPIRY_MARGIN)

    def token(self, *, renew: bool = False) -> str:
        auth = self.client.auth
        assert isinstance(auth, RenewingTokenAuth)  # noqa: S101 - set by auth() above
        return auth.token(renew=renew)

    def _fetch_token(self) -> tuple[str, float]:
        s = self.settings
        if not s.login or not s.password:
            raise ConfigError(f"{self.where}: the connection needs the login and password of the BHXH account")
        credentials = {"username": s.login, "password": s.secret()}
        with httpx.Client(base_url=s.base_url, timeout=httpx.Timeout(s.timeout), verify=s.verify) as plain:
            body = self.policy.run(lambda: self._once("POST", TOKEN_ENDPOINT, (), True, plain, json=credentials))
        try:
            return str(body["access_token"]), float(body.get("expires_in", 300))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise SourceUnavailable(f"{self.where}: the token answer has no access_token") from e

    # ------------------------------------------------------------------ API

    def lookup(self, kind: str, criteria: dict[str, str]) -> list[dict]:
        """Certificates matching one criteria set of CRITERIA[kind] (exact match)."""
        if tuple(sorted(criteria)) not in {tuple(sorted(c)) for c in CRITERIA[kind]}:
            raise ValueError(f"look-up of {kind} by {sorted(criteria)} is not part of the BHXH contract")
        body = self.call("POST", LOOKUP_ENDPOINT, json={"kind": kind, **criteria})
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise SourceUnavailable(f"{self.where}: the look-up answer has no 'items' list")
        return items

    def pages(
        self, kind: str, province: str, changed_from: dt.datetime, changed_to: dt.datetime, page_size: int = 500
    ) -> Iterator[list[dict]]:
        """Certificates of `province` issued or changed in [changed_from, changed_to), page by page (keyset cursor:
        a record changed while we page leaves the window without shifting the pages that follow)."""
        params = {
            "kind": kind,
            "province": province,
            "changed_from": changed_from.isoformat(),
            "changed_to": changed_to.isoformat(),
            "page_size": page_size,
        }
        for _, items in self.paginate(PULL_ENDPOINT, CursorPaginator(), params=params):
            yield items
