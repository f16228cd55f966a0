"""Registrar API: look-ups, marking certificates used, worklists; every call audited in wh.audit_log.

Personal IDs travel only in POST bodies (never in URLs, so never in access logs); the audit log keeps the query
kind and sha256(pepper || value). A registrar sees only certificates of residents of their province (or commune):
anything else answers exactly like a certificate that does not exist.

The app factory: settings into `app.state` (read by the dependencies in `registrar.deps`), the audit middleware
(`registrar.audit`), the error handlers and the routers (`registrar.routers.*`). A new router takes its
dependencies from `registrar.deps` and is included here.
"""

import os

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from registrar import audit, web
from registrar.auth import secret_from_env
from registrar.db import Db
from registrar.messages import MSG, OUTCOME
from registrar.routers import lookup, registration, worklists
from registrar.security import Guard, Settings

__all__ = ["MSG", "OUTCOME", "create_app"]


def create_app(dsn: str | None = None, *, jwt_secret: str | None = None, settings: Settings | None = None) -> FastAPI:
    """The API. Defaults: DSN from CERTPIPE_REGISTRAR_DB_URL (the API's own login, certpipe_registrar_login; else
    the Airflow connection `warehouse_db`), signing key from CERTPIPE_REGISTRAR_JWT_SECRET, limits and trusted
    proxies from the environment (`registrar.security.Settings.from_env`)."""
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
    app.state.db = Db(dsn)
    app.state.settings = settings or Settings.from_env()
    app.add_middleware(Guard, settings=app.state.settings)  # inside the audit middleware: its answers are audited
    audit.install(app)

    @app.exception_handler(psycopg.DataError)
    async def bad_value(request: Request, exc: psycopg.DataError):
        # a value the database cannot hold (out of range, bad encoding): the caller's input, not our failure
        return JSONResponse({"detail": MSG["invalid"]}, status_code=400)

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
