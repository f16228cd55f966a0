"""Marking a certificate used by a registration (once), and undoing it with a reason; each change and its audit
row in one transaction."""

from fastapi import APIRouter, HTTPException, Request
from psycopg import sql
from psycopg.types.json import Jsonb

from certpipe import clock
from registrar.audit import write_audit
from registrar.auth import Registrar
from registrar.db import Db, scope
from registrar.deps import NOT_FOUND, DbDep, Reg
from registrar.messages import MSG
from registrar.models import Cancellation, Registration

router = APIRouter(prefix="/api/v1/certificates/{cert_id}/registration", tags=["registration"])


def change(db: Db, request: Request, reg: Registrar, action: str, cert_id: int, apply) -> dict:
    """Run `apply(conn, scope, scope_params)` and its audit row in one transaction."""
    a = request.state.audit
    a.update(action=action, cert_ids=[cert_id])
    with db.connect() as conn:
        cond, sp = scope(reg)
        try:
            result = apply(conn, cond, sp)
        except HTTPException as e:
            conn.rollback()
            write_audit(db, conn, request, e.status_code)
            conn.commit()
            a["done"] = True
            raise
        write_audit(db, conn, request, 200)
        conn.commit()
        a["done"] = True
        return result


def _state(conn, cert_id, cond, sp) -> str | None:
    row = conn.execute(
        sql.SQL("SELECT c.status FROM wh.certificate c WHERE c.cert_id = %s AND {}").format(cond), [cert_id, *sp]
    ).fetchone()
    return row["status"] if row else None


def _same_registration(conn, cert_id: int, info: dict) -> dict | None:
    """The live registration of a used certificate when it is the very one asked for again (same number, date,
    office and officer): the answer of the first call, so a retried request is not refused as "already used"."""
    row = conn.execute(
        "SELECT r.registration_id, c.used_at FROM wh.registration r JOIN wh.certificate c USING (cert_id) "
        "WHERE r.cert_id = %s AND r.cancelled_at IS NULL AND r.registration_no = %s AND r.registered_on = %s "
        "AND r.office = %s AND r.officer = %s",
        (cert_id, info["registration_no"], info["registered_on"], info["office"], info["officer"]),
    ).fetchone()
    if row is None:
        return None
    return {
        "cert_id": cert_id,
        "status": "used",
        "used_at": row["used_at"].isoformat(),
        "registration_id": row["registration_id"],
        "registration": info,
    }


@router.post(
    "",
    responses={**NOT_FOUND, 409: {"description": MSG["used"]}},
    summary="Mark a certificate used by a registration (once)",
)
def mark_used(cert_id: int, body: Registration, request: Request, reg: Reg, db: DbDep) -> dict:
    if body.registered_on > clock.vn_today():
        raise HTTPException(422, MSG["invalid"])
    info = {
        "registration_no": body.registration_no,
        "registered_on": body.registered_on.isoformat(),
        "office": reg.office,
        "officer": reg.sub,
    }

    def apply(conn, cond, sp):
        # conditional update: of concurrent callers exactly one finds status = 'received'
        row = conn.execute(
            sql.SQL(
                "UPDATE wh.certificate c SET status = 'used', used_at = now(), registration = %s "
                "WHERE c.cert_id = %s AND c.status = 'received' AND {} RETURNING c.cert_id, c.kind, c.used_at"
            ).format(cond),
            [Jsonb(info), cert_id, *sp],
        ).fetchone()
        if row is None:
            state = _state(conn, cert_id, cond, sp)
            if state == "used":
                if (same := _same_registration(conn, cert_id, info)) is not None:
                    return same  # a retry of a mark whose answer was lost (e.g. the database restarted): done once
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

    return change(db, request, reg, "mark_used", cert_id, apply)


@router.post(
    "/cancel",
    responses={**NOT_FOUND, 409: {"description": MSG["not_used"]}},
    summary="Undo a registration (correction, with a reason): the certificate can be used again",
)
def cancel_registration(cert_id: int, body: Cancellation, request: Request, reg: Reg, db: DbDep) -> dict:
    def apply(conn, cond, sp):
        row = conn.execute(
            sql.SQL(
                "UPDATE wh.certificate c SET status = 'received', used_at = NULL, registration = NULL "
                "WHERE c.cert_id = %s AND c.status = 'used' AND {} RETURNING c.cert_id"
            ).format(cond),
            [cert_id, *sp],
        ).fetchone()
        if row is None:
            state = _state(conn, cert_id, cond, sp)
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

    return change(db, request, reg, "cancel_registration", cert_id, apply)
