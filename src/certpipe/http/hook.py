"""`SourceHook`: the base of every HTTP source's hook (HIS, BHXH, DHIS2, the security server).

One hook per external system, configured from its Airflow connection (typed settings, validated once), with one
retry policy and one error mapping:
- 5xx, 429, timeouts, connection failures, an unreadable answer → `SourceUnavailable`, retried (Retry-After
  honoured); after the last try the task fails and Airflow's own retries apply;
- other 4xx → `SourceRejected` (an AirflowFailException: not retried) naming the system, the connection and what
  to check; a bad connection or setting → `ConfigError` (also not retried).
Neither requests nor answers are logged: they may carry personal data. Errors name status and endpoint only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cached_property
from typing import Any, ClassVar

import httpx
from airflow.sdk import BaseHook

from certpipe.errors import SourceRejected, SourceUnavailable
from certpipe.http.auth import BasicAuth
from certpipe.http.paginate import Paginator
from certpipe.http.retry import RetryPolicy, retry_after_seconds
from certpipe.http.settings import HttpSettings

_CODE = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
HINTS = {
    401: "check the connection's login and password (or token)",
    403: "the account of the connection lacks a permission on the source",
    404: "check the connection's host URL (base path) and the source's API version",
    405: "check the connection's host URL (base path)",
}


class SourceHook(BaseHook):
    """Subclasses set `system`, `settings_class`, `default_conn_name`, and may override `auth()`."""

    system: ClassVar[str] = "source"
    settings_class: ClassVar[type[HttpSettings]] = HttpSettings
    conn_type = "http"
    conn_name_attr = "conn_id"
    default_conn_name = "http_default"

    def __init__(self, conn_id: str | None = None, **overrides: Any):
        super().__init__()
        self.conn_id = conn_id or self.default_conn_name
        self._overrides = overrides

    # ------------------------------------------------------------------ configuration

    @cached_property
    def settings(self) -> HttpSettings:
        return self.settings_class.from_connection(self.conn_id, **self._overrides)

    @property
    def where(self) -> str:
        return f"{self.system} (connection '{self.conn_id}')"

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    @cached_property
    def policy(self) -> RetryPolicy:
        s = self.settings
        return RetryPolicy(s.attempts, s.backoff, s.max_backoff, s.max_retry_after)

    def auth(self) -> httpx.Auth | None:
        """HTTP Basic with the connection's login/password when it has a login; override per system."""
        s = self.settings
        return BasicAuth(s.login, s.secret() or "") if s.login else None

    def headers(self) -> dict[str, str]:
        return {"Accept": "application/json"}

    @cached_property
    def client(self) -> httpx.Client:
        s = self.settings
        return httpx.Client(
            base_url=s.base_url,
            auth=self.auth(),
            timeout=httpx.Timeout(s.timeout),
            headers=self.headers(),
            verify=s.verify,
            follow_redirects=False,
        )

    def get_conn(self) -> httpx.Client:
        return self.client

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.close()
            del self.__dict__["client"]

    # ------------------------------------------------------------------ calls

    def _error_detail(self, resp: httpx.Response) -> str:
        """A machine-readable code from an error answer (never free text: it may quote personal data)."""
        try:
            body = resp.json()
        except ValueError:
            return ""
        if not isinstance(body, dict):
            return ""
        codes = [str(body[k]) for k in ("code", "error", "errorCode", "httpStatus") if k in body]
        codes = [c for c in codes if _CODE.match(c)]
        return f" ({', '.join(codes)})" if codes else ""

    def _once(
        self,
        method: str,
        endpoint: str,
        accept: tuple[int, ...],
        parse: bool,
        client: httpx.Client | None = None,
        **kwargs: Any,
    ) -> Any:
        try:
            resp = (client or self.client).request(method, endpoint, **kwargs)
        except httpx.TimeoutException as e:
            raise SourceUnavailable(f"{self.where}: timeout on {endpoint}") from e
        except httpx.TransportError as e:
            raise SourceUnavailable(f"{self.where}: connection failed on {endpoint} ({type(e).__name__})") from e
        status = resp.status_code
        if status >= 400 and status not in accept:
            if status >= 500 or status == 429:
                raise SourceUnavailable(
                    f"{self.where}: HTTP {status} on {endpoint}",
                    status,
                    retry_after=retry_after_seconds(resp.headers.get("Retry-After")),
                )
            hint = HINTS.get(status, "the source refused the request; retrying will not help")
            raise SourceRejected(f"{self.where}: HTTP {status} on {endpoint}{self._error_detail(resp)}: {hint}", status)
        if not parse:
            return resp
        try:
            return resp.json()
        except ValueError as e:  # cut off or not JSON at all: the source is not answering properly
            raise SourceUnavailable(f"{self.where}: the answer on {endpoint} is not JSON (cut off?)") from e

    def send(self, method: str, endpoint: str, *, accept: tuple[int, ...] = (), **kwargs: Any) -> httpx.Response:
        """One call (`params`, `json`, `headers`) under the retry policy; statuses in `accept` are returned as
        they are (e.g. an import report that comes with 409)."""
        return self.policy.run(lambda: self._once(method, endpoint, accept, False, **kwargs))

    def call(self, method: str, endpoint: str, *, accept: tuple[int, ...] = (), **kwargs: Any) -> Any:
        """As `send`, returning the answer as JSON; an answer that is not JSON (e.g. cut off) is retried."""
        return self.policy.run(lambda: self._once(method, endpoint, accept, True, **kwargs))

    def paginate(
        self,
        endpoint: str,
        paginator: Paginator,
        *,
        params: dict | None = None,
        items: str | tuple[str, ...] = "items",
    ) -> Iterator[tuple[Any, list]]:
        """(body, items) page by page; a page without the items list is a transient failure of the source."""
        keys = (items,) if isinstance(items, str) else items
        page_params: dict[str, Any] | None = paginator.first()
        page = 0
        while page_params is not None:
            page += 1
            body = self.call("GET", endpoint, params={**(params or {}), **page_params})
            found = next((body[k] for k in keys if isinstance(body, dict) and k in body), None)
            if not isinstance(found, list):
                raise SourceUnavailable(f"{self.where}: page {page} of {endpoint} has no '{keys[0]}' list")
            yield body, found
            page_params = paginator.next(body, found)
