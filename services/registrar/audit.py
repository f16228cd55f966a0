"""Audit: exactly one wh.audit_log row per /api/ call of an authenticated registrar, written by the handler (in its
transaction) or, for calls refused or failed before that, by the middleware; calls without a valid token are
counted per day, endpoint and status (wh.audit_anonymous), not stored row by row.

Rows are written only through wh.audit_append (SECURITY DEFINER, owned by certpipe_auditor, hash-chained; the
registrar login has no INSERT on the table): who, office and scope come from the transaction's claims.

The middleware also resolves the client's address (X-Forwarded-For only from trusted proxies), applies the rate
limits (429 + Retry-After), refuses malformed input before the handler (400) and logs one line per call (method,
route template, status, duration: never a raw path or query string)."""

import logging
import time

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from registrar.auth import Registrar, TokenError, verify_token
from registrar.db import Db, claims, query_hash
from registrar.messages import MSG, OUTCOME
from registrar.security import BadRequest, Settings, client_address

log = logging.getLogger("registrar")
access = logging.getLogger("registrar.access")
access.setLevel(logging.INFO)  # an access log: on unless configured otherwise, like uvicorn's (which is off)
# query parameters a GET route may take; POST bodies carry the rest (personal IDs never in a URL)
QUERY_PARAMS = frozenset({"days", "kind", "commune"})


def endpoint_of(request: Request) -> str:
    route = request.scope.get("route")
    return f"{request.method} {route.path if route else '(unmatched)'}"[:200]


def write_audit(db: Db, conn: psycopg.Connection, request: Request, status_code: int) -> None:
    """The audit row of this request, from what the handler put in `request.state.audit`, in `conn`'s current
    transaction (its claims are set again: a rollback may have dropped them)."""
    a = request.state.audit
    reg: Registrar = a["registrar"]
    route = request.scope.get("route")
    claims(conn, reg)
    qhash = query_hash(db.pepper(conn), a["query_value"]) if a.get("query_value") else None
    conn.execute(
        "SELECT wh.audit_append(%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            a.get("action") or getattr(route, "name", None) or "unmatched",
            endpoint_of(request),
            [i for i in a.get("cert_ids", []) if isinstance(i, int) and 0 < i < 2**63],
            a.get("query_kind"),
            qhash,
            a.get("client_addr"),
            status_code,
            OUTCOME.get(status_code, "invalid" if 400 <= status_code < 500 else "error"),
        ),
    )


def _audit_alone(db: Db, request: Request, status_code: int) -> None:
    with db.connect() as conn:
        if request.state.audit.get("registrar") is not None:
            write_audit(db, conn, request, status_code)
        else:
            conn.execute("SELECT wh.audit_count_anonymous(%s, %s)", (endpoint_of(request), status_code))
        conn.commit()


def _registrar_of(request: Request, app: FastAPI) -> Registrar | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        return verify_token(token.strip(), app.state.secret, app.state.settings.max_token_hours)
    except TokenError:
        return None


def install(app: FastAPI) -> None:
    """Audit every /api/ call: no audit row (or count), no answer (500)."""

    @app.middleware("http")
    async def audit_every_call(request: Request, call_next):
        request.state.audit = {}
        t0 = time.monotonic()
        if not request.url.path.startswith("/api/"):
            response = await call_next(request)
            if request.url.path != "/healthz":  # pages: the same access line (route template, never the raw URL)
                access.info(
                    "%s %s %d %.0fms",
                    request.method,
                    endpoint_of(request).split(" ", 1)[1],
                    response.status_code,
                    (time.monotonic() - t0) * 1000,
                )
            return response
        settings: Settings = app.state.settings
        a = request.state.audit
        response = None
        try:
            a["client_addr"] = client_address(request.scope, request.scope["headers"], settings.trusted_proxies)
        except BadRequest:
            a["client_addr"] = client_address(request.scope, [], ())  # the peer, for the audit row
            response = JSONResponse({"detail": MSG["invalid"]}, status_code=400)
        reg = _registrar_of(request, app)
        if reg is not None:
            a["registrar"] = reg  # provisional: the dependency confirms it (revocation) or the row says 401
        if response is None:
            wait = settings.limiter.retry_after(a["client_addr"], reg.jti if reg else None)
            if wait is not None:
                response = JSONResponse(
                    {"detail": MSG["rate_limited"]}, status_code=429, headers={"Retry-After": str(wait)}
                )
        if response is None and _malformed(request):
            response = JSONResponse({"detail": MSG["invalid"]}, status_code=400)
        if response is None:
            try:
                response = await call_next(request)
            except Exception as e:
                log.error("registrar API error %s on %s", type(e).__name__, request.method)
                response = JSONResponse({"detail": MSG["error"]}, status_code=500)
        if not a.get("done"):
            try:
                await run_in_threadpool(_audit_alone, app.state.db, request, response.status_code)
            except Exception as e:
                log.error("audit write failed: %s", type(e).__name__)
                response = JSONResponse({"detail": MSG["error"]}, status_code=500)
        access.info(
            "%s %s %d %.0fms",
            request.method,
            endpoint_of(request).split(" ", 1)[1],
            response.status_code,
            (time.monotonic() - t0) * 1000,
        )
        return response


def _malformed(request: Request) -> bool:
    """Input refused before routing: a query string on a POST, unknown or repeated query parameters, NUL or
    control characters in the path or query, a header value with control characters."""
    qs = request.scope.get("query_string", b"")
    if qs:
        if request.method != "GET":
            return True
        params = request.query_params.multi_items()
        names = [k for k, _ in params]
        if any(k not in QUERY_PARAMS for k in names) or len(set(names)) != len(names):
            return True
        if any(_control(v) for _, v in params):
            return True
    if _control(request.url.path) or b"%00" in request.scope.get("raw_path", b""):
        return True
    return any(_control(v.decode("latin-1")) for _, v in request.scope["headers"])


def _control(text: str) -> bool:
    return any((ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in text)
