"""The API's guards against abuse and lies (docs/security.md): settings, the client's true address, rate limits,
security headers, request size and time limits, a slow-client-proof HTTP protocol.

Settings (environment, read by `Settings.from_env`):
- CERTPIPE_REGISTRAR_TRUSTED_PROXIES   comma-separated addresses/networks of reverse proxies whose
                                       X-Forwarded-For is believed (default: none: the peer is the client)
- CERTPIPE_REGISTRAR_RATE_TOKEN        limits per token, `limits` notation (default "5/second;120/minute;2000/day")
- CERTPIPE_REGISTRAR_RATE_ADDRESS      limits per client address (default "20/second;600/minute")
- CERTPIPE_REGISTRAR_MAX_BODY          largest request body in bytes (default 16384)
- CERTPIPE_REGISTRAR_BODY_TIMEOUT      seconds to receive a request body (default 10)
- CERTPIPE_REGISTRAR_HEADER_TIMEOUT    seconds to receive a request's head (default 10)
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import time
from dataclasses import dataclass, field

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from uvicorn.protocols.http.h11_impl import H11Protocol

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BadRequest(Exception):
    """Malformed input detected before the handler (message: what, never the value)."""


def _networks(text: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in text.split(",") if p.strip())


@dataclass
class Settings:
    trusted_proxies: tuple[Network, ...] = ()
    rate_token: str = "5/second;120/minute;2000/day"  # noqa: S105 - a rate, not a secret
    rate_address: str = "20/second;600/minute"
    max_body: int = 16384
    body_timeout: float = 10.0
    header_timeout: float = 10.0
    max_token_hours: float | None = None  # None: CERTPIPE_REGISTRAR_MAX_TOKEN_HOURS (auth.max_token_hours)
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.rate_token, self.rate_address)

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        e = os.environ
        kw: dict = {
            "trusted_proxies": _networks(e.get("CERTPIPE_REGISTRAR_TRUSTED_PROXIES", "")),
            "rate_token": e.get("CERTPIPE_REGISTRAR_RATE_TOKEN") or cls.rate_token,
            "rate_address": e.get("CERTPIPE_REGISTRAR_RATE_ADDRESS") or cls.rate_address,
            "max_body": int(e.get("CERTPIPE_REGISTRAR_MAX_BODY") or cls.max_body),
            "body_timeout": float(e.get("CERTPIPE_REGISTRAR_BODY_TIMEOUT") or cls.body_timeout),
            "header_timeout": float(e.get("CERTPIPE_REGISTRAR_HEADER_TIMEOUT") or cls.header_timeout),
        }
        kw.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(kw["trusted_proxies"], str):
            kw["trusted_proxies"] = _networks(kw["trusted_proxies"])
        return cls(**kw)


class RateLimiter:
    """Moving-window limits per token id and per client address (in memory: one API process)."""

    def __init__(self, per_token: str, per_address: str):
        self.per_token: list[RateLimitItem] = parse_many(per_token)
        self.per_address: list[RateLimitItem] = parse_many(per_address)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def _hit(self, items: list[RateLimitItem], key: str) -> int | None:
        for item in items:
            if not self._limiter.hit(item, key):
                reset = self._limiter.get_window_stats(item, key).reset_time
                return max(1, math.ceil(reset - time.time()))
        return None

    def retry_after(self, address: str | None, token_id: str | None) -> int | None:
        """None when the call may go on, else the seconds to wait (Retry-After)."""
        wait = self._hit(self.per_address, f"addr:{address}") if address else None
        if wait is None and token_id:
            wait = self._hit(self.per_token, f"token:{token_id}")
        return wait


def client_address(scope: dict, headers: list[tuple[bytes, bytes]], trusted: tuple[Network, ...]) -> str | None:
    """The client's address: the direct peer, unless the peer is a trusted proxy; then the right-most address of
    X-Forwarded-For that is not itself a trusted proxy. A malformed X-Forwarded-For from a proxy: BadRequest."""
    peer = (scope.get("client") or (None,))[0]
    try:
        peer_ip = ipaddress.ip_address(peer) if peer else None
    except ValueError:
        return None
    if peer_ip is None or not any(peer_ip in n for n in trusted):
        return str(peer_ip) if peer_ip else None
    hops: list[str] = []
    for k, v in headers:
        if k == b"x-forwarded-for":
            hops += [h.strip() for h in v.decode("latin-1").split(",")]
    addr = peer_ip
    for hop in reversed(hops):
        try:
            addr = ipaddress.ip_address(hop)
        except ValueError:
            raise BadRequest("x-forwarded-for") from None
        if not any(addr in n for n in trusted):
            break
    return str(addr)


API_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"interest-cohort=()"),
]
# JSON only under /api/: nothing may be loaded or framed
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'")


class Guard:
    """Pure ASGI, inside the audit middleware: security headers on every answer; for /api/ calls, the whole body
    read first within `max_body` bytes and `body_timeout` seconds (413 / 408 otherwise) and refused when it holds a
    NUL character; the handler then reads it from memory."""

    def __init__(self, app, settings: Settings):
        self.app, self.settings = app, settings

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        api = scope["path"].startswith("/api/")

        async def send_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [h for h in API_HEADERS if h[0] not in names]
                if api and API_CSP[0] not in names:
                    extra.append(API_CSP)
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        if not api or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send_headers)
        body, status = b"", None
        try:
            async with asyncio.timeout(self.settings.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    body += message.get("body", b"")
                    if len(body) > self.settings.max_body:
                        status = 413
                        break
                    if not message.get("more_body"):
                        break
        except TimeoutError:
            status = 408
        if status is None and (b"\x00" in body or b"\\u0000" in body.lower()):
            status = 400
        if status is not None:
            from registrar.messages import MSG

            payload = ('{"detail":"' + MSG["invalid"] + '"}').encode()
            await send_headers(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return None
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send_headers)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request's head (slowloris): a connection that has not
    sent a complete request head within `header_timeout` seconds of opening (or of its previous answer) is
    closed. No access log of its own (registrar.audit logs the route template instead)."""

    header_timeout = 10.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # never uvicorn's access line (it carries the raw path and query string), whatever logging config says
        self.access_log = False

    def connection_made(self, transport):  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        if getattr(self, "_head_timer", None) is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timeout)

    def _head_timeout(self) -> None:
        self._head_timer = None
        waiting_for_head = self.cycle is None or self.cycle.response_complete
        if waiting_for_head and not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete and self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()

    def connection_lost(self, exc):
        if getattr(self, "_head_timer", None) is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)
