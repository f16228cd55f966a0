"""The "Data quality" page: a FastAPI app mounted by the `certpipe` plugin under /data-quality in the api-server.

Every route is behind Airflow's own login: plugin apps are not authenticated by Airflow, so the app depends on
`requires_access_dag("GET", RUN)` (the session cookie of the UI, or a bearer token); an anonymous request gets 401
or 403. It reads the warehouse through the connection `warehouse_quality` when defined (meant for a login of the
read-only role `certpipe_quality`), else `warehouse_db`, in read-only transactions with a statement timeout.

Pages (HTML, no script) and the same figures as JSON under /api:
- `/` overview: per-day chart, per source and facility, jumps, rules ranked, batches; filters in the query
- `/batch/{id}` drill-down: counts, refusals per rule and field with row positions, links to the run and task
- `/run?dag_id=&run_id=[&task_id=&map_index=]` the batches and refusals of a DAG run / task instance
- `/ops` Excel inbox, DHIS2, watermarks; stale highlighted
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import psycopg
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from certpipe import clock
from certpipe.quality import URL_PREFIX, airflow_meta, chart, ops, queries

log = logging.getLogger(__name__)
CONN_IDS = ("warehouse_quality", "warehouse_db")
LINKS_JS = (Path(__file__).parent / "static" / "airflow-links.js").read_bytes()
STATEMENT_TIMEOUT = "10s"
HEADERS = {
    # one static script of ours (links to Airflow pages), no third party; framed by the Airflow UI only
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Unavailable(RuntimeError):
    """The warehouse cannot be reached or is not configured (the page says so; never a 500)."""


def _warehouse_dsn() -> str:
    from certpipe import warehouse
    from certpipe.errors import ConfigError

    for conn_id in CONN_IDS:
        try:
            return warehouse.warehouse_dsn(conn_id)
        except ConfigError as e:
            last = e
    raise Unavailable(f"no warehouse connection ({' or '.join(CONN_IDS)}): {last}")


class DsnCache:
    """The warehouse DSN from the Airflow connections, looked up at most once a minute."""

    def __init__(self, lookup: Callable[[], str] = _warehouse_dsn, ttl: float = 60.0):
        self.lookup, self.ttl, self.at = lookup, ttl, 0.0
        self.value: str | None = None

    def __call__(self) -> str:
        value = self.value
        if value is None or time.monotonic() - self.at > self.ttl:
            value = self.value = self.lookup()
            self.at = time.monotonic()
        return value


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(n=_n, pct=_pct, age=_age, ts=_ts)
    env.globals.update(
        chart=chart,
        prefix=airflow_meta.ui_root() + URL_PREFIX,
        run_href=airflow_meta.run_href,
        ti_href=airflow_meta.ti_href,
        query=_query,
    )
    return env


def _query(params: dict, **over) -> str:
    """A query string: `params` with `over` on top, empty values left out."""
    return urlencode({k: v for k, v in {**params, **over}.items() if v not in (None, "")})


def _n(v) -> str:
    return "–" if v is None else f"{v:,}"


def _pct(v) -> str:
    return "–" if v is None else f"{v * 100:.1f} %"


def _age(v: dt.timedelta | None) -> str:
    if v is None:
        return "–"
    minutes = int(v.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes // (24 * 60)} d {minutes // 60 % 24} h"


def _ts(v: dt.datetime | None) -> str:
    return "–" if v is None else clock.as_vn(v).strftime("%Y-%m-%d %H:%M")


def create_app(dsn: Callable[[], str] | None = None, *, authenticate: bool = True) -> FastAPI:
    """The page's app. `dsn`: returns the warehouse DSN (default: the Airflow connections); `authenticate=False`
    only for tests that call the queries without an api-server."""
    dependencies = []
    if authenticate:
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
        from airflow.api_fastapi.core_api.security import requires_access_dag

        dependencies.append(Depends(requires_access_dag("GET", DagAccessEntity.RUN)))
    app = FastAPI(title="certpipe data quality", dependencies=dependencies, docs_url=None, redoc_url=None)
    env = _env()
    get_dsn = dsn or DsnCache()

    @contextmanager
    def warehouse() -> Iterator[psycopg.Connection]:
        try:
            conn = psycopg.connect(get_dsn(), application_name="certpipe-quality", connect_timeout=10)
        except psycopg.Error as e:
            raise Unavailable(f"warehouse unreachable ({type(e).__name__})") from None
        try:
            conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            conn.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
            with conn.transaction():
                yield conn
        finally:
            conn.close()

    def page(request: Request, template: str, status: int = 200, **ctx) -> HTMLResponse:
        html = env.get_template(template).render(request=request, **ctx)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    @app.exception_handler(queries.BadFilter)
    def bad_filter(request: Request, exc: queries.BadFilter):
        if request.url.path.startswith(f"{request.scope.get('root_path', '')}/api/"):
            return JSONResponse({"detail": str(exc)}, status_code=400, headers=HEADERS)
        return page(request, "error.html", 400, title="Bad filter", message=str(exc))

    @app.exception_handler(Unavailable)
    def unavailable(request: Request, exc: Unavailable):
        log.warning("data-quality page: %s", exc)
        return page(request, "error.html", 503, title="Warehouse unavailable", message=str(exc))

    @app.exception_handler(psycopg.Error)
    def db_error(request: Request, exc: psycopg.Error):
        log.warning("data-quality page: database error %s", type(exc).__name__)
        message = (
            "The warehouse did not answer in time."
            if isinstance(exc, psycopg.errors.QueryCanceled)
            else (f"The warehouse refused the query ({type(exc).__name__}).")
        )
        return page(request, "error.html", 503, title="Warehouse error", message=message)

    @app.get("/static/airflow-links.js")
    def links_js():
        return Response(LINKS_JS, media_type="text/javascript", headers=HEADERS)

    def overview_data(request: Request) -> tuple[queries.Filters, dict]:
        f = queries.parse_filters(dict(request.query_params))
        with warehouse() as conn:
            return f, queries.overview(conn, f)

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request):
        f, data = overview_data(request)
        return page(request, "overview.html", f=f, **data)

    @app.get("/api/overview")
    def overview_json(request: Request):
        f, data = overview_data(request)
        return JSONResponse(_jsonable({"filters": f.params(), **data}), headers=HEADERS)

    def batch_data(batch_id: int) -> dict | None:
        with warehouse() as conn:
            b = queries.batch(conn, batch_id)
        if b is not None:
            b["airflow"] = _airflow(lambda s: airflow_meta.batch_task(s, b))
        return b

    @app.get("/batch/{batch_id}", response_class=HTMLResponse)
    def batch(request: Request, batch_id: int):
        b = batch_data(batch_id)
        if b is None:
            return page(request, "error.html", 404, title="No such batch", message=f"Batch {batch_id} does not exist.")
        return page(request, "batch.html", b=b)

    @app.get("/api/batch/{batch_id}")
    def batch_json(batch_id: int):
        b = batch_data(batch_id)
        if b is None:
            return JSONResponse({"detail": f"batch {batch_id} does not exist"}, status_code=404, headers=HEADERS)
        return JSONResponse(_jsonable(b), headers=HEADERS)

    def run_data(dag_id: str, run_id: str, task_id: str | None, map_index: int | None) -> dict:
        meta = _airflow(lambda s: airflow_meta.run_context(s, dag_id, run_id, task_id, map_index)) or {}
        sources = airflow_meta.DAG_SOURCES.get(dag_id)
        with warehouse() as conn:
            if meta.get("batch_ids"):
                rows = queries.batches_by_id(conn, meta["batch_ids"])
                scope = "asset events"
            elif meta.get("file_id") is not None and sources == ("excel",):
                rows = queries.batches_by_id(conn, queries.file_batch_ids(conn, meta["file_id"]))
                scope = "file"
            else:
                rows = queries.run_batches(conn, run_id, sources) if sources or not task_id else []
                label, kind = meta.get("label"), (task_id or "").rsplit("_", 1)[-1].upper()
                if task_id and label:  # a mapped task labelled by facility / province
                    rows = [b for b in rows if b["source_ref"] == label] or rows
                if kind in queries.KINDS:
                    rows = [b for b in rows if b["kind"] == kind]
                scope = "run"
            details = [d for b in rows[:20] if b["refused"] and (d := queries.batch(conn, b["batch_id"]))]
        return {
            "dag_id": dag_id,
            "run_id": run_id,
            "task_id": task_id,
            "map_index": map_index,
            "label": meta.get("label"),
            "found": meta.get("found", True),
            "scope": scope,
            "batches": rows,
            "refusals": {d["batch_id"]: d["refusals"] for d in details},
            "totals": {c: sum(b[c] for b in rows) for c in queries.COUNTS},
        }

    # map_index as text: the UI leaves "{MAP_INDEX}" in the link of a task instance that is not mapped
    @app.get("/run", response_class=HTMLResponse)
    def run(request: Request, dag_id: str, run_id: str, task_id: str | None = None, map_index: str | None = None):
        return page(request, "run.html", r=run_data(dag_id, run_id, task_id, _index(map_index)))

    @app.get("/api/run")
    def run_json(dag_id: str, run_id: str, task_id: str | None = None, map_index: str | None = None):
        return JSONResponse(_jsonable(run_data(dag_id, run_id, task_id, _index(map_index))), headers=HEADERS)

    def ops_data() -> dict:
        with warehouse() as conn:
            return ops.state(conn)

    @app.get("/ops", response_class=HTMLResponse)
    def ops_page(request: Request):
        return page(request, "ops.html", s=ops_data())

    @app.get("/api/ops")
    def ops_json():
        return JSONResponse(_jsonable(ops_data()), headers=HEADERS)

    return app


def _index(v: str | None) -> int | None:
    return int(v) if v and v.lstrip("-").isdigit() else None


def _airflow(fn):
    """Run `fn(session)` on the Airflow metadata DB; None outside an api-server or when it fails (the page still
    shows the warehouse's figures)."""
    try:
        from airflow.utils.session import create_session

        with create_session() as session:
            return fn(session)
    except Exception as e:
        log.warning("data-quality page: Airflow metadata look-up failed (%s)", type(e).__name__)
        return None


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    return v
