"""Authentication as small httpx.Auth objects. Credentials and tokens never reach a log or an error message."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator

import httpx

BasicAuth = httpx.BasicAuth


class HeaderTokenAuth(httpx.Auth):
    """`Authorization: <scheme> <token>` on every request (DHIS2 personal access tokens: scheme `ApiToken`)."""

    def __init__(self, token: str, scheme: str = "Bearer"):
        self._value = f"{scheme} {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._value
        yield request


class RenewingTokenAuth(httpx.Auth):
    """A bearer token fetched with `fetch() -> (token, seconds valid)`, shared by every hook of the same source
    (key) in the process, renewed `margin` seconds before it expires, and once more when a call answers 401."""

    _cache: dict[tuple, tuple[str, float]] = {}  # noqa: RUF012 - process-wide token cache, guarded by _lock
    _lock = threading.Lock()

    def __init__(self, key: tuple, fetch: Callable[[], tuple[str, float]], margin: float = 30.0):
        self.key, self.fetch, self.margin = key, fetch, margin

    def token(self, *, renew: bool = False) -> str:
        with self._lock:
            cached = self._cache.get(self.key)
            if cached and not renew and cached[1] - self.margin > time.monotonic():
                return cached[0]
            self._cache.pop(self.key, None)
        value, ttl = self.fetch()
        with self._lock:
            self._cache[self.key] = (value, time.monotonic() + ttl)
        return value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self.token(renew=True)}"
            yield request
