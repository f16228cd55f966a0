"""Registrar API: look-ups, marking certificates used, worklists; every call audited in wh.audit_log.

Personal IDs travel only in POST bodies (never in URLs, so never in access logs); the audit log keeps the query
kind and sha256(pepper || value). A registrar sees only certificates of residents of their province (or commune):
anything else answers exactly like a certificate that does not exist.

The app factory: settings into `app.state` (read by the dependencies in `registrar.deps`), the audit middleware
(`registrar.audit`), the error handlers and the routers (`registrar.routers.*`). A new router takes its
dependencies from `registrar.deps` and is included here.
"""

import os

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from registrar import audit, web
from registrar.auth import secret_from_env
from registrar.db import Db
from registrar.messages import MSG, OUTCOME
from registrar.routers import lookup, registration, worklists

__all__ = ["MSG", "OUTCOME", "create_app"]


def create_app(dsn: str | None = None, *, jwt_secret: str | None = None, db_role: str | None = None) -> FastAPI:
    """The API. Defaults: DSN from CERTPIPE_REGISTRAR_DB_URL (else the Airflow connection `warehouse_db`), signing
    key from CERTPIPE_REGISTRAR_JWT_SECRET, session role from CERTPIPE_REGISTRAR_DB_ROLE."""
    if dsn is None:
        dsn = os.environ.get("CERTPIPE_REGISTRAR_DB_URL")
        if not dsn:
            from certpipe.warehouse import warehouse_dsn

            dsn = warehouse_dsn()
    app = FastAPI(
        title="certpipe registrar API",
        version="1.0.0",
        description="Civil registrars' access to the birth (GCS) and death (GBT) certificate warehouse: "
        "look-ups, marking certificates used, worklists. Every call is audited.",
    )
    app.state.secret = jwt_secret or secret_from_env()
    app.state.db = Db(dsn, db_role if db_role is not None else os.environ.get("CERTPIPE_REGISTRAR_DB_ROLE") or None)
    audit.install(app)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        # never echo the input back (it may be a personal ID): field and error type only
        errors = [{"field": ".".join(str(p) for p in e.get("loc", ())), "type": e.get("type")} for e in exc.errors()]
        return JSONResponse({"detail": MSG["invalid"], "errors": errors}, status_code=422)

    for r in (lookup.router, registration.router, worklists.router):
        app.include_router(r)
    web.mount(app)  # the station and console pages (registrar.web)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"status": "ok"}

    return app
