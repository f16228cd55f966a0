"""Audit: exactly one wh.audit_log row per /api/ call, written by the handler (in its transaction) or, for calls
refused or failed before that, by the middleware."""

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from registrar.auth import Registrar, TokenError, verify_token
from registrar.db import Db, query_hash
from registrar.messages import MSG, OUTCOME

log = logging.getLogger("registrar")


def write_audit(db: Db, conn: psycopg.Connection, request: Request, status_code: int) -> None:
    """The audit row of this request, from what the handler put in `request.state.audit`."""
    a = request.state.audit
    reg: Registrar | None = a.get("registrar")
    route = request.scope.get("route")
    endpoint = f"{request.method} {route.path if route else '(unmatched)'}"
    qhash = query_hash(db.pepper(conn), a["query_value"]) if a.get("query_value") else None
    conn.execute(
        "INSERT INTO wh.audit_log (actor, office, province, commune, action, endpoint, cert_ids, query_kind, "
        "query_hash, client_addr, status_code, outcome) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            reg and reg.sub,
            reg and reg.office,
            reg and reg.province,
            reg and reg.commune,
            a.get("action") or getattr(route, "name", None) or "unmatched",
            endpoint,
            a.get("cert_ids", []),
            a.get("query_kind"),
            qhash,
            request.client.host if request.client else None,
            status_code,
            OUTCOME.get(status_code, "error"),
        ),
    )


def _audit_alone(db: Db, request: Request, status_code: int) -> None:
    with db.connect() as conn:
        write_audit(db, conn, request, status_code)
        conn.commit()


def install(app: FastAPI) -> None:
    """Audit every /api/ call: no audit row, no answer (500)."""

    @app.middleware("http")
    async def audit_every_call(request: Request, call_next):
        request.state.audit = {}
        if not request.url.path.startswith("/api/"):
            return await call_next(request)
        try:
            response = await call_next(request)
        except Exception as e:
            log.error("registrar API error %s on %s", type(e).__name__, request.method)
            response = JSONResponse({"detail": MSG["error"]}, status_code=500)
        if not request.state.audit.get("done"):
            if "registrar" not in request.state.audit:  # unmatched route, or refused before authentication
                scheme, _, token = request.headers.get("authorization", "").partition(" ")
                try:
                    if scheme.lower() == "bearer":
                        request.state.audit["registrar"] = verify_token(token, app.state.secret)
                except TokenError:
                    pass
            try:
                await run_in_threadpool(_audit_alone, app.state.db, request, response.status_code)
            except Exception as e:
                log.error("audit write failed: %s", type(e).__name__)
                return JSONResponse({"detail": MSG["error"]}, status_code=500)
        return response
