"""Web faces of the registrar service: the hospital look-up station (/station, solution 5) and the registrar console
(/console). Server-rendered (Jinja2 templates, a little plain JavaScript in static/), Vietnamese, no build step.

`mount(app)` adds both to the registrar app: routers, static files, security headers and Vietnamese error pages for
their paths (the API keeps its JSON errors). Settings (environment):
  CERTPIPE_PORTAL_GCS_URL / CERTPIPE_PORTAL_GBT_URL   the public service portal's page of each procedure
  CERTPIPE_STATION_LIMIT        look-ups per station (default 30/minute)
  CERTPIPE_STATION_ADDR_LIMIT   look-ups per client address (default 10/minute)
  CERTPIPE_STATION_IDLE         seconds before a station's page clears itself (default 120)
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from registrar.web.common import HEADERS, HERE, RateLimiter, error_page, is_web, parse_limit

log = logging.getLogger("registrar.web")

# national portal, procedure pages: đăng ký khai sinh (1.001193), đăng ký khai tử (1.000656)
PORTAL = {
    "GCS": "https://dichvucong.gov.vn/p/home/dvc-tthc-thu-tuc-hanh-chinh-chi-tiet.html?ma_thu_tuc=1.001193",
    "GBT": "https://dichvucong.gov.vn/p/home/dvc-tthc-thu-tuc-hanh-chinh-chi-tiet.html?ma_thu_tuc=1.000656",
}


@dataclass
class WebConfig:
    portal: dict[str, str]
    station_limit: RateLimiter
    address_limit: RateLimiter
    idle_seconds: int


def config_from_env() -> WebConfig:
    return WebConfig(
        portal={k: os.environ.get(f"CERTPIPE_PORTAL_{k}_URL", v) for k, v in PORTAL.items()},
        station_limit=RateLimiter(*parse_limit(os.environ.get("CERTPIPE_STATION_LIMIT", "30/minute"))),
        address_limit=RateLimiter(*parse_limit(os.environ.get("CERTPIPE_STATION_ADDR_LIMIT", "10/minute"))),
        idle_seconds=int(os.environ.get("CERTPIPE_STATION_IDLE", "120")),
    )


def mount(app: FastAPI) -> None:
    from registrar.web import console, station

    app.state.web = config_from_env()
    app.include_router(station.router)
    app.include_router(console.router)
    app.mount("/static/web", StaticFiles(directory=HERE / "static"), name="web-static")
    api_invalid = app.exception_handlers.get(RequestValidationError)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if is_web(request):
            if exc.status_code == 401 and request.method == "GET":
                return RedirectResponse("/console/login", status_code=303)
            detail = exc.detail if isinstance(exc.detail, str) and exc.detail and exc.status_code != 404 else None
            return error_page(request, exc.status_code, detail if detail and not detail.isascii() else None)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        if is_web(request):
            return error_page(request, 422)
        return await api_invalid(request, exc)  # type: ignore[misc]

    @app.middleware("http")
    async def web_headers(request: Request, call_next):
        if not is_web(request):
            return await call_next(request)
        try:
            response = await call_next(request)
        except Exception as e:
            # like the API's audit middleware: the type only (a database error may quote a value), a Vietnamese page
            log.error("web page error %s on %s", type(e).__name__, request.method)
            response = error_page(request, 500)
        for k, v in HEADERS.items():
            response.headers.setdefault(k, v)
        return response
