"""Look-ups (Bước 3): by the mother's ID, the deceased's ID, number + date + facility, or warehouse id."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request

from registrar import db as q
from registrar.auth import Registrar
from registrar.db import Db
from registrar.deps import NOT_FOUND, DbDep, Reg
from registrar.messages import MSG
from registrar.models import Certificate, Certificates, DeceasedQuery, MotherQuery, NumberQuery

router = APIRouter(prefix="/api/v1", tags=["look-up"], responses=NOT_FOUND)
CertId = Annotated[int, Path(ge=1, le=2**63 - 1, description="warehouse id (bigint)")]


def lookup(
    db: Db, request: Request, reg: Registrar, action: str, query_kind: str, value: str | None, where: str, params: list
) -> Certificates:
    """Certificates in scope matching `where`; the audit row gets the action, query kind and hashed value."""
    a = request.state.audit
    a.update(action=action, query_kind=query_kind, query_value=value)
    with db.connect(reg) as conn:
        rows = q.find(conn, reg, where, params)
    a["cert_ids"] = [r["cert_id"] for r in rows] or a.get("cert_ids", [])
    if not rows:
        raise HTTPException(404, MSG["not_found"])
    return Certificates(count=len(rows), items=[Certificate(**r) for r in rows])


@router.post("/lookup/births", response_model=Certificates, summary="Birth certificates by the mother's personal ID")
def lookup_births(q: MotherQuery, request: Request, reg: Reg, db: DbDep) -> Certificates:
    where = "c.kind = 'GCS' AND c.person_id = %s"
    return lookup(db, request, reg, "lookup_mother_id", "mother_id", q.mother_id, where, [q.mother_id])


@router.post("/lookup/deaths", response_model=Certificates, summary="Death notices by the deceased's personal ID")
def lookup_deaths(q: DeceasedQuery, request: Request, reg: Reg, db: DbDep) -> Certificates:
    where = "c.kind = 'GBT' AND c.person_id = %s"
    return lookup(db, request, reg, "lookup_deceased_id", "deceased_id", q.deceased_id, where, [q.deceased_id])


@router.post(
    "/lookup/by-number",
    response_model=Certificates,
    summary="Either kind by number, date of issue and issuing facility",
)
def lookup_by_number(q: NumberQuery, request: Request, reg: Reg, db: DbDep) -> Certificates:
    where = (
        "c.issued_on = %s AND c.facility_code = %s AND (c.cert_key = %s "
        "OR c.record->>(CASE c.kind WHEN 'GCS' THEN 'SO' ELSE 'SO_BAOTU' END) = %s)"
    )
    params: list = [q.issued_on, q.facility.upper(), q.number.upper(), q.number]
    if q.kind:
        where += " AND c.kind = %s"
        params.append(q.kind)
    value = f"{q.kind or ''}|{q.number}|{q.issued_on}|{q.facility.upper()}"
    return lookup(db, request, reg, "lookup_number", "number", value, where, params)


@router.get(
    "/certificates/{cert_id}",
    response_model=Certificate,
    summary="One certificate by its warehouse id (from a look-up or a worklist)",
)
def get_certificate(cert_id: CertId, request: Request, reg: Reg, db: DbDep) -> Certificate:
    request.state.audit["cert_ids"] = [cert_id]
    return lookup(db, request, reg, "get_certificate", "cert_id", None, "c.cert_id = %s", [cert_id]).items[0]
