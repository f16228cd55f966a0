"""The sandbox FastAPI app: one router per stand-in system, plus the /_control API."""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox import bhxh, faults, his, secserver
from sandbox import dhis2 as dhis2_sandbox

DEFAULTS = {
    "seed": 7,
    "births": 200,
    "deaths": 60,
    "facilities": list(his.DEFAULT_FACILITIES),
    "now": None,
    "bad_ratio": 0.1,
}


def create_app(**dataset_opts) -> FastAPI:
    """dataset_opts: seed, births, deaths (per facility), facilities, now (ISO or datetime), bad_ratio."""
    unknown = set(dataset_opts) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown dataset options: {sorted(unknown)}")
    app = FastAPI(title="CRVS source-system sandbox", docs_url="/_docs", redoc_url=None)
    app.state.started_opts = {**DEFAULTS, **{k: v for k, v in dataset_opts.items() if v is not None}}
    app.state.opts = dict(app.state.started_opts)
    _build(app)
    app.include_router(his.router)
    app.include_router(his.control_router)
    app.include_router(bhxh.router)
    app.include_router(secserver.router)
    app.include_router(dhis2_sandbox.router)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return faults.error(exc.status_code, "http_error", exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        return faults.error(422, "invalid_request", [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()])

    @app.get("/healthz", tags=["control"])
    async def healthz():
        return {"status": "ok"}

    @app.post("/_control/reset", tags=["control"])
    async def reset(request: Request):
        """Rebuild every stand-in (drops acks, faults, upserts) from the options it started with; optional JSON
        overrides some of them for this reset only (a later reset does not inherit them)."""
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return faults.error(422, "invalid_body", "expected a JSON object")
        if not isinstance(body, dict) or set(body) - set(DEFAULTS):
            return faults.error(422, "invalid_body", f"allowed keys: {sorted(DEFAULTS)}")
        app.state.opts = {**app.state.started_opts, **body}
        try:
            _build(app)
        except (TypeError, ValueError) as exc:
            return faults.error(422, "invalid_body", str(exc))
        return summary(app)

    @app.get("/_control/summary", tags=["control"])
    async def get_summary():
        return summary(app)

    return app


def _build(app: FastAPI) -> None:
    app.state.his = his.HisState(**app.state.opts)


def summary(app: FastAPI) -> dict:
    opts = {k: (str(v) if k == "now" and v is not None else v) for k, v in app.state.opts.items()}
    return {
        "options": opts,
        "his": {code: {k: len(v) for k, v in h.feeds.items()} for code, h in app.state.his.hospitals.items()},
    }
