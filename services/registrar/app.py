"""Registrar API: look-ups, marking certificates used, worklists; every call audited in wh.audit_log.

Personal IDs travel only in POST bodies (never in URLs, so never in access logs); the audit log keeps the query
kind and sha256(pepper || value). A registrar sees only certificates of residents of their province (or commune):
anything else answers exactly like a certificate that does not exist.
"""

import datetime as dt
import hashlib
import json
import logging
import os
from typing import Annotated, Any, Literal

import psycopg
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from certpipe import clock
from registrar.auth import Registrar, TokenError, secret_from_env, verify_token

log = logging.getLogger("registrar")

MSG = {
    "unauthenticated": "Chưa xác thực hoặc mã truy cập không hợp lệ/đã hết hạn.",
    "not_found": "Không tìm thấy Giấy chứng sinh/Giấy báo tử trong phạm vi quản lý của cơ quan.",
    "used": "Giấy này đã được sử dụng để đăng ký hộ tịch, không thể sử dụng lại. "
    "Nếu có sai sót, hãy hủy đăng ký (kèm lý do) trước.",
    "not_used": "Giấy này chưa được sử dụng để đăng ký hộ tịch nên không có đăng ký nào để hủy.",
    "invalid": "Dữ liệu yêu cầu không hợp lệ.",
    "forbidden": "Xã/phường yêu cầu nằm ngoài phạm vi quản lý của cơ quan.",
    "error": "Lỗi hệ thống, vui lòng thử lại sau.",
    "no_dhis2": "Chưa có dữ liệu tử vong từ DHIS2 trong kho (chưa kết nối); danh sách trống.",
}
OUTCOME = {
    200: "ok",
    201: "ok",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    422: "invalid",
}
PROVINCE = {"GCS": "MATINH_CU_TRU", "GBT": "MATINH_THUONGTRU"}
COMMUNE = {"GCS": "MAXA_CU_TRU", "GBT": "MAXA_THUONGTRU"}
DHIS2_VIEW = "wh.dhis2_unregistered_deaths"

PersonId = Annotated[str, Field(pattern=r"^(\d{12}|\d{9})$", description="12-digit personal ID (or 9-digit CMND)")]


class MotherQuery(BaseModel):
    mother_id: PersonId


class DeceasedQuery(BaseModel):
    deceased_id: PersonId


class NumberQuery(BaseModel):
    number: str = Field(min_length=1, max_length=64, description="SO / SO_BAOTU, or the full MA_GCS / MA_GBT")
    issued_on: dt.date = Field(description="NGAY_CT / NGAY_CAPGIAYBT")
    facility: str = Field(pattern=r"^[0-9A-Za-z]{1,10}$", description="issuing facility code (MA_CSKCB / MACSKCB)")
    kind: Literal["GCS", "GBT"] | None = None


class Registration(BaseModel):
    registration_no: str = Field(min_length=1, max_length=64, description="number in the civil register")
    registered_on: dt.date


class Cancellation(BaseModel):
    reason: str = Field(min_length=10, max_length=1000, description="why the registration is undone")


class Source(BaseModel):
    source: str
    source_ref: str
    source_record_id: str | None
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime


class Certificate(BaseModel):
    cert_id: int
    kind: Literal["GCS", "GBT"]
    cert_key: str
    facility_code: str | None
    issued_on: dt.date | None
    status: Literal["received", "used"]
    version: int
    received_at: dt.datetime
    updated_at: dt.datetime
    used_at: dt.datetime | None
    registration: dict[str, Any] | None
    record: dict[str, Any]
    sources: list[Source]
    disagreements: list[dict[str, Any]] | None = Field(None, description="when the disagreement table exists")
    cause_of_death: dict[str, Any] | None = Field(
        None, description="deaths: the notice's cause and ICD-10; wh.cause_of_death per source when present"
    )
    dhis2: dict[str, Any] | None = Field(None, description="deaths: DHIS2 availability and matching A6 events")


class Certificates(BaseModel):
    count: int
    items: list[Certificate]


class Worklist(BaseModel):
    available: bool = True
    note: str | None = None
    office: str
    province: str
    commune: str | None
    count: int
    by_commune: dict[str, int]
    items: list[dict[str, Any]]


class Db:
    """Connections to the warehouse; with `role`, every session runs as that (least-privilege) role."""

    def __init__(self, dsn: str, role: str | None = None):
        self.dsn, self.role, self._pepper = dsn, role, None

    def connect(self) -> psycopg.Connection:
        conn = psycopg.connect(
            self.dsn, application_name="certpipe-registrar", row_factory=dict_row, connect_timeout=10
        )
        if self.role:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(self.role)))
            conn.commit()
        return conn

    def pepper(self, conn: psycopg.Connection) -> bytes:
        if self._pepper is None:
            self._pepper = bytes(conn.execute("SELECT pepper FROM wh.registrar_pepper").fetchone()["pepper"])
        return self._pepper


def query_hash(pepper: bytes, value: str) -> str:
    """Same construction as the analyst views' person_hash: sha256(pepper || value)."""
    return hashlib.sha256(pepper + value.encode()).hexdigest()


def _scope(reg: Registrar) -> tuple[sql.Composable, list]:
    prov = sql.SQL("(CASE c.kind WHEN 'GCS' THEN c.record->>'MATINH_CU_TRU' ELSE c.record->>'MATINH_THUONGTRU' END)")
    comm = sql.SQL("(CASE c.kind WHEN 'GCS' THEN c.record->>'MAXA_CU_TRU' ELSE c.record->>'MAXA_THUONGTRU' END)")
    if reg.commune:
        return sql.SQL("{} = %s AND {} = %s").format(prov, comm), [reg.province, reg.commune]
    return sql.SQL("{} = %s").format(prov), [reg.province]


def _exists(conn: psycopg.Connection, name: str) -> bool:
    return bool(conn.execute("SELECT to_regclass(%s) IS NOT NULL AS ok", (name,)).fetchone()["ok"])


def _optional(
    conn: psycopg.Connection, table: str, certs: list[int] | None = None, communes: list[str] | None = None
) -> list[dict]:
    """Rows of another branch's table (DHIS2, disagreements) through wh.registrar_optional: [] when absent."""
    return [
        r["j"]
        for r in conn.execute(
            "SELECT j FROM wh.registrar_optional(%s::text, %s::bigint[], %s::text[]) AS j", (table, certs, communes)
        )
    ]


def _jsonable(row: dict) -> dict:
    return json.loads(json.dumps(row, default=str, ensure_ascii=False))


CERT_COLUMNS = sql.SQL(
    "c.cert_id, c.kind, c.cert_key, c.facility_code, c.issued_on, c.status, c.version, "
    "c.created_at AS received_at, c.updated_at, c.used_at, c.registration, c.record"
)


def _find(conn: psycopg.Connection, reg: Registrar, where: str, params: list) -> list[dict]:
    scope, sp = _scope(reg)
    q = sql.SQL("SELECT {} FROM wh.certificate c WHERE ({}) AND {} ORDER BY c.issued_on DESC, c.cert_id").format(
        CERT_COLUMNS, sql.SQL(where), scope
    )
    rows = conn.execute(q, params + sp).fetchall()
    if not rows:
        return rows
    ids = [r["cert_id"] for r in rows]
    sources: dict[int, list] = {i: [] for i in ids}
    for s in conn.execute(
        "SELECT cert_id, source, source_ref, source_record_id, first_seen_at, last_seen_at "
        "FROM wh.certificate_source WHERE cert_id = ANY(%s) ORDER BY first_seen_at",
        (ids,),
    ):
        sources[s.pop("cert_id")].append(s)
    disagreements = None
    if _exists(conn, "wh.source_disagreement"):
        disagreements = {i: [] for i in ids}
        for d in _optional(conn, "source_disagreement", ids):
            disagreements[d.pop("cert_id")].append(d)
    deaths = [i for i, r in zip(ids, rows, strict=True) if r["kind"] == "GBT"]
    dhis2_ok = bool(deaths) and _exists(conn, "wh.dhis2_death_event")
    events: dict[int, list] = {}
    for e in _optional(conn, "dhis2_death_event", deaths) if dhis2_ok else []:
        events.setdefault(e["cert_id"], []).append(e)
    causes_ok = bool(deaths) and _exists(conn, "wh.cause_of_death")
    causes: dict[int, list] = {}
    for m in _optional(conn, "cause_of_death", deaths) if causes_ok else []:
        causes.setdefault(m["cert_id"], []).append(m)
    for r in rows:
        i = r["cert_id"]
        r["sources"] = sources[i]
        r["disagreements"] = disagreements[i] if disagreements is not None else None
        if r["kind"] == "GBT":
            r["cause_of_death"] = {
                "text": r["record"].get("NGUYENNHAN_TV"),
                "icd10": r["record"].get("BENH_ICD10_ID"),
                "by_source": causes.get(i, []) if causes_ok else None,
            }
            found = events.get(i, [])
            r["dhis2"] = (
                {"available": True, "match": found[0] if found else None, "events": found}
                if dhis2_ok
                else {"available": False, "note": MSG["no_dhis2"], "match": None, "events": []}
            )
    return rows


def create_app(dsn: str | None = None, *, jwt_secret: str | None = None, db_role: str | None = None) -> FastAPI:
    """The API. Defaults: DSN from CERTPIPE_REGISTRAR_DB_URL (else the Airflow connection `warehouse_db`), signing
    key from CERTPIPE_REGISTRAR_JWT_SECRET, session role from CERTPIPE_REGISTRAR_DB_ROLE."""
    if dsn is None:
        dsn = os.environ.get("CERTPIPE_REGISTRAR_DB_URL")
        if not dsn:
            from certpipe.warehouse import warehouse_dsn

            dsn = warehouse_dsn()
    secret = jwt_secret or secret_from_env()
    db = Db(dsn, db_role if db_role is not None else os.environ.get("CERTPIPE_REGISTRAR_DB_ROLE") or None)
    app = FastAPI(
        title="certpipe registrar API",
        version="1.0.0",
        description="Civil registrars' access to the birth (GCS) and death (GBT) certificate warehouse: "
        "look-ups, marking certificates used, worklists. Every call is audited.",
    )
    bearer = HTTPBearer(auto_error=False)

    def write_audit(conn: psycopg.Connection, request: Request, status_code: int) -> None:
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

    def audit_alone(request: Request, status_code: int) -> None:
        with db.connect() as conn:
            write_audit(conn, request, status_code)
            conn.commit()

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
                        request.state.audit["registrar"] = verify_token(token, secret)
                except TokenError:
                    pass
            try:
                await run_in_threadpool(audit_alone, request, response.status_code)
            except Exception as e:
                log.error("audit write failed: %s", type(e).__name__)
                return JSONResponse({"detail": MSG["error"]}, status_code=500)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        # never echo the input back (it may be a personal ID): field and error type only
        errors = [{"field": ".".join(str(p) for p in e.get("loc", ())), "type": e.get("type")} for e in exc.errors()]
        return JSONResponse({"detail": MSG["invalid"], "errors": errors}, status_code=422)

    def registrar(
        request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Registrar:
        if creds is None or creds.scheme.lower() != "bearer":
            raise HTTPException(401, MSG["unauthenticated"], headers={"WWW-Authenticate": "Bearer"})
        try:
            reg = verify_token(creds.credentials, secret)
        except TokenError:
            raise HTTPException(401, MSG["unauthenticated"], headers={"WWW-Authenticate": "Bearer"}) from None
        request.state.audit["registrar"] = reg
        return reg

    Reg = Annotated[Registrar, Depends(registrar)]
    not_found = {404: {"description": MSG["not_found"]}, 401: {"description": MSG["unauthenticated"]}}

    def lookup(
        request: Request, reg: Registrar, action: str, query_kind: str, value: str, where: str, params: list
    ) -> Certificates:
        a = request.state.audit
        a.update(action=action, query_kind=query_kind, query_value=value)
        with db.connect() as conn:
            rows = _find(conn, reg, where, params)
        a["cert_ids"] = [r["cert_id"] for r in rows] or a.get("cert_ids", [])
        if not rows:
            raise HTTPException(404, MSG["not_found"])
        return Certificates(count=len(rows), items=[Certificate(**r) for r in rows])

    @app.post(
        "/api/v1/lookup/births",
        response_model=Certificates,
        responses=not_found,
        tags=["look-up"],
        summary="Birth certificates by the mother's personal ID",
    )
    def lookup_births(q: MotherQuery, request: Request, reg: Reg) -> Certificates:
        return lookup(
            request,
            reg,
            "lookup_mother_id",
            "mother_id",
            q.mother_id,
            "c.kind = 'GCS' AND c.person_id = %s",
            [q.mother_id],
        )

    @app.post(
        "/api/v1/lookup/deaths",
        response_model=Certificates,
        responses=not_found,
        tags=["look-up"],
        summary="Death notices by the deceased's personal ID",
    )
    def lookup_deaths(q: DeceasedQuery, request: Request, reg: Reg) -> Certificates:
        return lookup(
            request,
            reg,
            "lookup_deceased_id",
            "deceased_id",
            q.deceased_id,
            "c.kind = 'GBT' AND c.person_id = %s",
            [q.deceased_id],
        )

    @app.post(
        "/api/v1/lookup/by-number",
        response_model=Certificates,
        responses=not_found,
        tags=["look-up"],
        summary="Either kind by number, date of issue and issuing facility",
    )
    def lookup_by_number(q: NumberQuery, request: Request, reg: Reg) -> Certificates:
        where = (
            "c.issued_on = %s AND c.facility_code = %s AND (c.cert_key = %s "
            "OR c.record->>(CASE c.kind WHEN 'GCS' THEN 'SO' ELSE 'SO_BAOTU' END) = %s)"
        )
        params: list = [q.issued_on, q.facility.upper(), q.number.upper(), q.number]
        if q.kind:
            where += " AND c.kind = %s"
            params.append(q.kind)
        value = f"{q.kind or ''}|{q.number}|{q.issued_on}|{q.facility.upper()}"
        return lookup(request, reg, "lookup_number", "number", value, where, params)

    @app.get(
        "/api/v1/certificates/{cert_id}",
        response_model=Certificate,
        responses=not_found,
        tags=["look-up"],
        summary="One certificate by its warehouse id (from a look-up or a worklist)",
    )
    def get_certificate(cert_id: int, request: Request, reg: Reg) -> Certificate:
        request.state.audit["cert_ids"] = [cert_id]
        return lookup(request, reg, "get_certificate", "cert_id", None, "c.cert_id = %s", [cert_id]).items[0]

    def change(request: Request, reg: Registrar, action: str, cert_id: int, apply) -> dict:
        """Run `apply(conn, scope, scope_params)` and its audit row in one transaction."""
        a = request.state.audit
        a.update(action=action, cert_ids=[cert_id])
        with db.connect() as conn:
            scope, sp = _scope(reg)
            try:
                result = apply(conn, scope, sp)
            except HTTPException as e:
                conn.rollback()
                write_audit(conn, request, e.status_code)
                conn.commit()
                a["done"] = True
                raise
            write_audit(conn, request, 200)
            conn.commit()
            a["done"] = True
            return result

    def _state(conn, cert_id, scope, sp) -> str | None:
        row = conn.execute(
            sql.SQL("SELECT c.status FROM wh.certificate c WHERE c.cert_id = %s AND {}").format(scope), [cert_id, *sp]
        ).fetchone()
        return row["status"] if row else None

    @app.post(
        "/api/v1/certificates/{cert_id}/registration",
        tags=["registration"],
        responses={**not_found, 409: {"description": MSG["used"]}},
        summary="Mark a certificate used by a registration (once)",
    )
    def mark_used(cert_id: int, body: Registration, request: Request, reg: Reg) -> dict:
        if body.registered_on > clock.vn_today():
            raise HTTPException(422, MSG["invalid"])
        info = {
            "registration_no": body.registration_no,
            "registered_on": body.registered_on.isoformat(),
            "office": reg.office,
            "officer": reg.sub,
        }

        def apply(conn, scope, sp):
            # conditional update: of concurrent callers exactly one finds status = 'received'
            row = conn.execute(
                sql.SQL(
                    "UPDATE wh.certificate c SET status = 'used', used_at = now(), registration = %s "
                    "WHERE c.cert_id = %s AND c.status = 'received' AND {} RETURNING c.cert_id, c.kind, c.used_at"
                ).format(scope),
                [Jsonb(info), cert_id, *sp],
            ).fetchone()
            if row is None:
                state = _state(conn, cert_id, scope, sp)
                if state == "used":
                    raise HTTPException(409, MSG["used"])
                raise HTTPException(404, MSG["not_found"])
            rid = conn.execute(
                "INSERT INTO wh.registration (cert_id, kind, registration_no, registered_on, office, "
                "officer) VALUES (%s, %s, %s, %s, %s, %s) RETURNING registration_id",
                (cert_id, row["kind"], body.registration_no, body.registered_on, reg.office, reg.sub),
            ).fetchone()["registration_id"]
            return {
                "cert_id": cert_id,
                "status": "used",
                "used_at": row["used_at"].isoformat(),
                "registration_id": rid,
                "registration": info,
            }

        return change(request, reg, "mark_used", cert_id, apply)

    @app.post(
        "/api/v1/certificates/{cert_id}/registration/cancel",
        tags=["registration"],
        responses={**not_found, 409: {"description": MSG["not_used"]}},
        summary="Undo a registration (correction, with a reason): the certificate can be used again",
    )
    def cancel_registration(cert_id: int, body: Cancellation, request: Request, reg: Reg) -> dict:
        def apply(conn, scope, sp):
            row = conn.execute(
                sql.SQL(
                    "UPDATE wh.certificate c SET status = 'received', used_at = NULL, registration = NULL "
                    "WHERE c.cert_id = %s AND c.status = 'used' AND {} RETURNING c.cert_id"
                ).format(scope),
                [cert_id, *sp],
            ).fetchone()
            if row is None:
                state = _state(conn, cert_id, scope, sp)
                raise HTTPException(409 if state else 404, MSG["not_used"] if state else MSG["not_found"])
            rid = conn.execute(
                "UPDATE wh.registration SET cancelled_at = now(), cancelled_by = %s, cancel_reason = %s "
                "WHERE cert_id = %s AND cancelled_at IS NULL RETURNING registration_id",
                (reg.sub, body.reason, cert_id),
            ).fetchone()
            return {
                "cert_id": cert_id,
                "status": "received",
                "cancelled_registration_id": rid and rid["registration_id"],
            }

        return change(request, reg, "cancel_registration", cert_id, apply)

    def _worklist(reg: Registrar, items: list[dict], **extra) -> Worklist:
        by: dict[str, int] = {}
        for i in items:
            by[i.get("commune_code") or ""] = by.get(i.get("commune_code") or "", 0) + 1
        return Worklist(
            office=reg.office,
            province=reg.province,
            commune=reg.commune,
            count=len(items),
            by_commune=by,
            items=[_jsonable(i) for i in items],
            **extra,
        )

    @app.get(
        "/api/v1/worklists/unregistered",
        response_model=Worklist,
        tags=["worklists"],
        summary="Certificates received and not registered after N days, in the office's scope",
    )
    def worklist_unregistered(
        request: Request,
        reg: Reg,
        days: Annotated[int, Query(ge=0, le=3650)] = 7,
        kind: Literal["GCS", "GBT"] | None = None,
    ) -> Worklist:
        request.state.audit["action"] = "worklist_unregistered"
        scope, sp = _scope(reg)
        q = sql.SQL(
            "SELECT c.cert_id, c.kind, c.cert_key, c.facility_code, c.issued_on, "
            "(CASE c.kind WHEN 'GCS' THEN c.record->>'MAXA_CU_TRU' ELSE c.record->>'MAXA_THUONGTRU' END) "
            "AS commune_code, c.created_at AS received_at, "
            "(wh.vn_today() - wh.vn_date(c.created_at)) AS waiting_days FROM wh.certificate c "
            "WHERE c.status = 'received' AND c.created_at <= wh.clock() - make_interval(days => %s) "
            "AND (%s::text IS NULL OR c.kind = %s) AND {} ORDER BY c.created_at, c.cert_id LIMIT 5000"
        ).format(scope)
        with db.connect() as conn:
            items = conn.execute(q, [days, kind, kind, *sp]).fetchall()
        request.state.audit["cert_ids"] = [i["cert_id"] for i in items]
        return _worklist(reg, items)

    @app.get(
        "/api/v1/worklists/dhis2-deaths",
        response_model=Worklist,
        tags=["worklists"],
        summary="Deaths known to DHIS2 and not yet registered, per commune of the office's scope",
    )
    def worklist_dhis2(
        request: Request, reg: Reg, commune: Annotated[str | None, Query(pattern=r"^\d{5}$")] = None
    ) -> Worklist:
        request.state.audit["action"] = "worklist_dhis2"
        if reg.commune and commune and commune != reg.commune:
            raise HTTPException(403, MSG["forbidden"])
        if commune and not reg.commune and commune not in _communes_of(reg.province):
            raise HTTPException(403, MSG["forbidden"])
        communes = [commune or reg.commune] if (commune or reg.commune) else sorted(_communes_of(reg.province))
        with db.connect() as conn:
            if not _exists(conn, DHIS2_VIEW):
                return _worklist(reg, [], available=False, note=MSG["no_dhis2"])
            items = _optional(conn, "dhis2_unregistered_deaths", communes=communes)
        request.state.audit["cert_ids"] = [i["cert_id"] for i in items if i.get("cert_id")]
        return _worklist(reg, items)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"status": "ok"}

    return app


def _communes_of(province: str) -> set[str]:
    from certpipe.core import reference

    return {c for era in reference.ERAS for p, c in reference.commune_pairs(era) if p == province}
