"""Registrar console: the registrar API's look-ups, marking used / cancelling, worklists and (for supervisors) the
office's audit trail, as server-rendered pages.

Same tokens, scopes and audit as the API: the login form takes the registrar's token (`python -m registrar token`),
kept in an HttpOnly, SameSite=Strict cookie (Secure over TLS); every POST carries a CSRF token bound to that cookie.
Changes go through the API's own handlers (registrar.routers.registration), so the rules and audit rows are the
same; each page writes one audit row. Personal IDs travel only in POST bodies.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Annotated, Literal

import jwt
from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from certpipe import clock
from registrar import db as q
from registrar.auth import ALGORITHM, AUDIENCE, Registrar, TokenError, issue_token, verify_token
from registrar.db import revoked
from registrar.models import Cancellation, Registration
from registrar.routers import registration, worklists
from registrar.web.common import (
    PRE_CSRF,
    audit,
    csrf_for,
    csrf_ok,
    error_page,
    page,
    pre_csrf,
    set_cookie,
    sha256,
)

router = APIRouter(prefix="/console", include_in_schema=False)
COOKIE = "certpipe_console"
_PERSON = re.compile(r"^(\d{12}|\d{9})$")
KIND_NAME = {"GCS": "Giấy chứng sinh", "GBT": "Giấy báo tử"}
STATUS_NAME = {"received": "Đã tiếp nhận, chưa sử dụng", "used": "Đã sử dụng để đăng ký"}
LISTS = {
    "unregistered": "Giấy đã tiếp nhận nhưng chưa đăng ký sau N ngày",
    "dhis2": "Ca tử vong trong DHIS2 chưa đăng ký khai tử",
}


class Session:
    def __init__(self, reg: Registrar, token: str, supervisor: bool, exp: int):
        self.reg, self.token, self.supervisor, self.exp = reg, token, supervisor, exp


def issue_supervisor_token(
    sub: str, office: str, province: str, commune: str | None = None, *, secret: str, hours: float = 8
) -> str:
    """A registrar token (registrar.auth) that also opens the office's audit trail in the console."""
    return issue_token(sub, office, province, commune, secret=secret, ttl=dt.timedelta(hours=hours), supervisor=True)


def _open(request: Request, token: str | None) -> Session | None:
    """The session of a valid, not logged-out token."""
    if not token:
        return None
    secret = request.app.state.secret
    try:
        reg = verify_token(token, secret)
    except TokenError:
        return None
    claims = jwt.decode(token, secret, algorithms=[ALGORITHM], audience=AUDIENCE)
    with request.app.state.db.connect(reg) as conn:
        ended = conn.execute("SELECT 1 FROM wh.console_logout WHERE token_hash = %s", (sha256(token),)).fetchone()
        ended = ended or revoked(conn, reg)  # the API's revocation list holds for the console too
    if ended:
        return None
    return Session(reg, token, claims.get("supervisor") is True, int(claims["exp"]))


def _session(request: Request) -> Session:
    s = _open(request, request.cookies.get(COOKIE))
    if s is None:
        raise HTTPException(401)
    request.state.audit["registrar"] = s.reg
    return s


def _check_csrf(request: Request, s: Session, token: str) -> None:
    if not csrf_ok(request.app.state.secret, s.token, token):
        audit(request.app.state.db, request, s.reg, 403, action="console_csrf_refused")
        raise HTTPException(403)


def _page(request: Request, s: Session, name: str, status_code: int = 200, **ctx) -> Response:
    return page(
        request,
        name,
        status_code,
        s=s,
        reg=s.reg,
        csrf=csrf_for(request.app.state.secret, s.token),
        kinds=KIND_NAME,
        statuses=STATUS_NAME,
        **ctx,
    )


# -- login / logout ---------------------------------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request) -> Response:
    token = pre_csrf(request)
    resp = page(request, "console_login.html", csrf=token, error=None, bye=request.query_params.get("bye") == "1")
    set_cookie(request, resp, PRE_CSRF, token, 3600, "/console")
    return resp


@router.post("/login")
def login(request: Request, token: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = "") -> Response:
    if not csrf or csrf != request.cookies.get(PRE_CSRF):
        return error_page(request, 403)
    token = token.strip()
    s = _open(request, token)
    db = request.app.state.db
    if s is None:
        audit(db, request, None, 401, action="console_login")
        msg = "Mã truy cập không hợp lệ, đã hết hạn hoặc đã đăng xuất."
        return page(request, "console_login.html", 401, csrf=csrf, error=msg, bye=False)
    audit(db, request, s.reg, 200, action="console_login")
    resp = RedirectResponse("/console", status_code=303)
    ttl = max(0, s.exp - int(dt.datetime.now(dt.UTC).timestamp()))
    set_cookie(request, resp, COOKIE, token, ttl, "/console")
    resp.delete_cookie(PRE_CSRF, path="/console")
    return resp


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    s = _session(request)
    _check_csrf(request, s, csrf)
    db = request.app.state.db
    with db.connect(s.reg) as conn:
        conn.execute(
            "INSERT INTO wh.console_logout (token_hash, expires_at) VALUES (%s, to_timestamp(%s)) "
            "ON CONFLICT DO NOTHING",
            (sha256(s.token), s.exp),
        )
        audit(db, request, s.reg, 200, conn, action="console_logout")
        conn.commit()
    resp = RedirectResponse("/console/login?bye=1", status_code=303)
    resp.delete_cookie(COOKIE, path="/console")
    return resp


# -- look-up and certificate card -------------------------------------------------------------------------------


@router.get("")
def home(request: Request) -> Response:
    s = _open(request, request.cookies.get(COOKIE))
    if s is None:
        return RedirectResponse("/console/login", status_code=303)
    return _page(request, s, "console_lookup.html", results=None, by="mother", error=None)


@router.post("/lookup")
def lookup(
    request: Request,
    by: Annotated[Literal["mother", "deceased", "number"], Form()] = "mother",
    person_id: Annotated[str, Form()] = "",
    number: Annotated[str, Form()] = "",
    issued_on: Annotated[str, Form()] = "",
    facility: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    s = _session(request)
    _check_csrf(request, s, csrf)
    db = request.app.state.db
    pid = re.sub(r"\s", "", person_id)
    params: list
    number, facility = number.strip(), facility.strip().upper()
    if by in ("mother", "deceased"):
        if not _PERSON.match(pid):
            audit(db, request, s.reg, 422, action=f"lookup_{by}_id")
            return _page(
                request,
                s,
                "console_lookup.html",
                422,
                results=None,
                by=by,
                error="Số định danh cá nhân gồm 12 chữ số (hoặc CMND 9 chữ số).",
            )
        kind = "GCS" if by == "mother" else "GBT"
        where, params = f"c.kind = '{kind}' AND c.person_id = %s", [pid]  # kind: one of two constants
        action, qkind, value = (
            ("lookup_mother_id", "mother_id", pid) if by == "mother" else ("lookup_deceased_id", "deceased_id", pid)
        )
    else:
        try:
            on = dt.date.fromisoformat(issued_on)
        except ValueError:
            on = None
        if not number or len(number) > 64 or on is None or not re.match(r"^[0-9A-Za-z]{1,10}$", facility):
            audit(db, request, s.reg, 422, action="lookup_number")
            return _page(
                request,
                s,
                "console_lookup.html",
                422,
                results=None,
                by=by,
                error="Nhập số giấy, ngày cấp và mã cơ sở khám, chữa bệnh.",
            )
        where = (
            "c.issued_on = %s AND c.facility_code = %s AND (c.cert_key = %s "
            "OR c.record->>(CASE c.kind WHEN 'GCS' THEN 'SO' ELSE 'SO_BAOTU' END) = %s)"
        )
        params = [on, facility, number.upper(), number]
        action, qkind, value = "lookup_number", "number", f"|{number}|{on}|{facility}"
    with db.connect(s.reg) as conn:
        rows = q.find(conn, s.reg, where, params)
        audit(
            db,
            request,
            s.reg,
            200 if rows else 404,
            conn,
            action=action,
            query_kind=qkind,
            query_value=value,
            cert_ids=[r["cert_id"] for r in rows],
        )
        conn.commit()
    return _page(request, s, "console_lookup.html", results=rows, by=by, error=None)


def _labels(kind: str) -> dict[str, tuple[str, str]]:
    from certpipe.core.schema import kind_spec

    return {f.name: (f.label, f.type) for f in kind_spec(kind).fields}


def _card(request: Request, s: Session, cert_id: int, status_code: int = 200, **ctx) -> Response:
    db = request.app.state.db
    with db.connect(s.reg) as conn:
        rows = q.find(conn, s.reg, "c.cert_id = %s", [cert_id])
        regs = (
            conn.execute(
                "SELECT registration_no, registered_on, office, officer, recorded_at, cancelled_at, cancelled_by, "
                "cancel_reason FROM wh.registration WHERE cert_id = %s ORDER BY recorded_at",
                (cert_id,),
            ).fetchall()
            if rows
            else []
        )
        if not ctx.get("audited"):
            audit(
                db,
                request,
                s.reg,
                200 if rows else 404,
                conn,
                action="get_certificate",
                query_kind="cert_id",
                cert_ids=[cert_id],
            )
            conn.commit()
    if not rows:
        return error_page(request, 404)
    ctx.pop("audited", None)
    c = rows[0]
    return _page(
        request,
        s,
        "console_card.html",
        status_code,
        c=c,
        labels=_labels(c["kind"]),
        registrations=regs,
        today=clock.vn_today().isoformat(),
        **ctx,
    )


@router.get("/cert/{cert_id}")
def card(request: Request, cert_id: int) -> Response:
    s = _open(request, request.cookies.get(COOKIE))
    if s is None:
        return RedirectResponse("/console/login", status_code=303)
    request.state.audit["registrar"] = s.reg
    done = request.query_params.get("done")
    notice = {
        "used": "Đã ghi nhận: giấy đã được sử dụng để đăng ký.",
        "cancelled": "Đã hủy đăng ký; giấy có thể được sử dụng lại.",
    }.get(done or "")
    return _card(request, s, cert_id, notice=notice)


def _change(request: Request, s: Session, cert_id: int, action: str, build, apply, done: str, hint: str) -> Response:
    """A confirmed change through the API's own handler: a form that does not validate is audited and answered on
    the card (422) with `hint`; the handler's refusal is shown on the card; success goes back to the card."""
    try:
        body = build()
    except ValueError:
        audit(request.app.state.db, request, s.reg, 422, action=action, cert_ids=[cert_id])
        return _card(request, s, cert_id, 422, audited=True, error=hint)
    try:
        apply(cert_id, body, request, s.reg, request.app.state.db)
    except HTTPException as e:
        return _card(request, s, cert_id, e.status_code, audited=True, error=e.detail)
    return RedirectResponse(f"/console/cert/{cert_id}?done={done}", status_code=303)


@router.post("/cert/{cert_id}/use")
def mark_used(
    request: Request,
    cert_id: int,
    registration_no: Annotated[str, Form()] = "",
    registered_on: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    s = _session(request)
    _check_csrf(request, s, csrf)

    def build() -> Registration:
        body = Registration(registration_no=registration_no.strip(), registered_on=registered_on)
        if confirm != "yes" or body.registered_on > clock.vn_today():
            raise ValueError
        return body

    hint = "Nhập số đăng ký, ngày đăng ký (không sau hôm nay) và đánh dấu xác nhận."
    return _change(request, s, cert_id, "mark_used", build, registration.mark_used, "used", hint)


@router.post("/cert/{cert_id}/cancel")
def cancel(
    request: Request,
    cert_id: int,
    reason: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    s = _session(request)
    _check_csrf(request, s, csrf)

    def build() -> Cancellation:
        if confirm != "yes":
            raise ValueError
        return Cancellation(reason=reason.strip())

    hint = "Nhập lý do hủy (ít nhất 10 ký tự) và đánh dấu xác nhận."
    return _change(
        request, s, cert_id, "cancel_registration", build, registration.cancel_registration, "cancelled", hint
    )


# -- worklists --------------------------------------------------------------------------------------------------

COLUMNS = {
    "unregistered": [
        ("cert_key", "Số giấy"),
        ("kind", "Loại"),
        ("facility_code", "Cơ sở KCB"),
        ("issued_on", "Ngày cấp"),
        ("commune_code", "Mã xã/phường"),
        ("received_at", "Tiếp nhận lúc"),
        ("waiting_days", "Số ngày chờ"),
    ],
    "dhis2": [
        ("event_uid", "Mã sự kiện DHIS2"),
        ("commune_code", "Mã xã/phường"),
        ("date_of_death", "Ngày mất"),
        ("waiting_days", "Số ngày chờ"),
        ("status_vi", "Tình trạng"),
    ],
}


def _worklist(request: Request, s: Session, which: str, days: int, kind: str | None, commune: str | None):
    db = request.app.state.db
    if which == "dhis2":
        return worklists.worklist_dhis2(request, s.reg, db, commune or None)
    return worklists.worklist_unregistered(request, s.reg, db, days, kind or None)  # type: ignore[arg-type]


def _cell(v):
    if isinstance(v, str) and re.match(r"^\d{4}-\d{2}-\d{2}T", v):
        return v[:16].replace("T", " ")
    return v


Which = Annotated[Literal["unregistered", "dhis2"], Query(alias="list")]
Days = Annotated[int, Query(ge=0, le=3650)]
KindQ = Annotated[Literal["GCS", "GBT", ""], Query()]
CommuneQ = Annotated[str, Query(pattern=r"^(\d{5})?$")]


@router.get("/worklists")
def worklist_page(
    request: Request, which: Which = "unregistered", days: Days = 7, kind: KindQ = "", commune: CommuneQ = ""
) -> Response:
    s = _open(request, request.cookies.get(COOKIE))
    if s is None:
        return RedirectResponse("/console/login", status_code=303)
    request.state.audit["registrar"] = s.reg
    try:
        wl = _worklist(request, s, which, days, kind, commune)
    except HTTPException as e:
        audit(request.app.state.db, request, s.reg, e.status_code)
        return error_page(request, e.status_code, e.detail)
    audit(request.app.state.db, request, s.reg, 200)
    items = [{k: _cell(i.get(k)) for k, _ in COLUMNS[which]} | {"cert_id": i.get("cert_id")} for i in wl.items]
    return _page(
        request,
        s,
        "console_worklists.html",
        wl=wl,
        which=which,
        days=days,
        kind=kind,
        commune=commune,
        lists=LISTS,
        columns=COLUMNS[which],
        items=items,
    )


@router.get("/worklists.xlsx")
def worklist_export(
    request: Request, which: Which = "unregistered", days: Days = 7, kind: KindQ = "", commune: CommuneQ = ""
) -> Response:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    s = _session(request)
    try:
        wl = _worklist(request, s, which, days, kind, commune)
    except HTTPException as e:
        audit(request.app.state.db, request, s.reg, e.status_code, action="worklist_export")
        return error_page(request, e.status_code, e.detail)
    audit(request.app.state.db, request, s.reg, 200, action="worklist_export")
    wb = Workbook()
    ws = wb.active
    ws.title = "Danh sach"
    ws.append([f"{LISTS[which]} — {s.reg.office}"])
    ws.append(
        [
            f"Lập lúc {clock.vn_now():%d/%m/%Y %H:%M}",
            f"Số ngày: {days}" if which == "unregistered" else "",
            f"Loại: {kind or 'tất cả'}",
        ]
    )
    ws.append([label for _, label in COLUMNS[which]])
    for cell in ws[3]:
        cell.font = Font(bold=True)
    for i in wl.items:
        ws.append([_cell(i.get(k)) for k, _ in COLUMNS[which]])
    for col, width in zip("ABCDEFG", (24, 8, 12, 12, 14, 18, 12), strict=False):
        ws.column_dimensions[col].width = width
    buf = io.BytesIO()
    wb.save(buf)
    name = f"danh-sach-{which}-{clock.vn_today():%Y%m%d}.xlsx"
    return Response(
        buf.getvalue(),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- supervisors: the office's audit trail ----------------------------------------------------------------------

ACTIONS = {
    "lookup_mother_id": "Tra cứu theo số định danh người mẹ",
    "lookup_deceased_id": "Tra cứu theo số định danh người đã mất",
    "lookup_number": "Tra cứu theo số giấy",
    "get_certificate": "Xem giấy",
    "mark_used": "Ghi nhận đã sử dụng",
    "cancel_registration": "Hủy đăng ký",
    "worklist_unregistered": "Xem danh sách chưa đăng ký",
    "worklist_dhis2": "Xem danh sách DHIS2",
    "worklist_export": "Xuất danh sách .xlsx",
    "console_login": "Đăng nhập",
    "console_logout": "Đăng xuất",
    "console_csrf_refused": "Biểu mẫu bị từ chối (CSRF)",
    "audit_trail": "Xem nhật ký",
}


@router.get("/audit")
def audit_trail(request: Request, days: Annotated[int, Query(ge=1, le=366)] = 7) -> Response:
    s = _open(request, request.cookies.get(COOKIE))
    if s is None:
        return RedirectResponse("/console/login", status_code=303)
    db = request.app.state.db
    if not s.supervisor:
        audit(db, request, s.reg, 403, action="audit_trail")
        return error_page(request, 403, "Chỉ lãnh đạo/giám sát của cơ quan được xem nhật ký truy cập.")
    with db.connect(s.reg) as conn:
        rows = conn.execute(
            "SELECT * FROM wh.office_audit(%s, now() - make_interval(days => %s), now() + interval '1 minute', 1000)",
            (s.reg.office, days),
        ).fetchall()
        audit(db, request, s.reg, 200, conn, action="audit_trail")
        conn.commit()
    return _page(request, s, "console_audit.html", rows=rows, days=days, actions=ACTIONS)
