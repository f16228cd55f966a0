"""Worklists: certificates not registered after N days, and DHIS2 deaths not yet registered, in the office's
scope."""

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from psycopg import sql

from registrar.auth import Registrar
from registrar.db import exists, jsonable, optional, scope
from registrar.deps import DbDep, Reg
from registrar.messages import MSG
from registrar.models import Worklist

router = APIRouter(prefix="/api/v1/worklists", tags=["worklists"])
DHIS2_VIEW = "wh.dhis2_unregistered_deaths"


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
        items=[jsonable(i) for i in items],
        **extra,
    )


def communes_of(province: str) -> set[str]:
    from certpipe.core import reference

    return {c for era in reference.ERAS for p, c in reference.commune_pairs(era) if p == province}


@router.get(
    "/unregistered",
    response_model=Worklist,
    summary="Certificates received and not registered after N days, in the office's scope",
)
def worklist_unregistered(
    request: Request,
    reg: Reg,
    db: DbDep,
    days: Annotated[int, Query(ge=0, le=3650)] = 7,
    kind: Literal["GCS", "GBT"] | None = None,
) -> Worklist:
    request.state.audit["action"] = "worklist_unregistered"
    cond, sp = scope(reg)
    q = sql.SQL(
        "SELECT c.cert_id, c.kind, c.cert_key, c.facility_code, c.issued_on, "
        "(CASE c.kind WHEN 'GCS' THEN c.record->>'MAXA_CU_TRU' ELSE c.record->>'MAXA_THUONGTRU' END) "
        "AS commune_code, c.created_at AS received_at, "
        "(wh.vn_today() - wh.vn_date(c.created_at)) AS waiting_days FROM wh.certificate c "
        "WHERE c.status = 'received' AND c.created_at <= wh.clock() - make_interval(days => %s) "
        "AND (%s::text IS NULL OR c.kind = %s) AND {} ORDER BY c.created_at, c.cert_id LIMIT 5000"
    ).format(cond)
    with db.connect(reg) as conn:
        items = conn.execute(q, [days, kind, kind, *sp]).fetchall()
    request.state.audit["cert_ids"] = [i["cert_id"] for i in items]
    return _worklist(reg, items)


@router.get(
    "/dhis2-deaths",
    response_model=Worklist,
    summary="Deaths known to DHIS2 and not yet registered, per commune of the office's scope",
)
def worklist_dhis2(
    request: Request, reg: Reg, db: DbDep, commune: Annotated[str | None, Query(pattern=r"^[0-9]{5}$")] = None
) -> Worklist:
    request.state.audit["action"] = "worklist_dhis2"
    if reg.commune and commune and commune != reg.commune:
        raise HTTPException(403, MSG["forbidden"])
    if commune and not reg.commune and commune not in communes_of(reg.province):
        raise HTTPException(403, MSG["forbidden"])
    communes = [commune or reg.commune] if (commune or reg.commune) else sorted(communes_of(reg.province))
    with db.connect(reg) as conn:
        if not exists(conn, DHIS2_VIEW):
            return _worklist(reg, [], available=False, note=MSG["no_dhis2"])
        items = optional(conn, "dhis2_unregistered_deaths", communes=communes)
    request.state.audit["cert_ids"] = [i["cert_id"] for i in items if i.get("cert_id")]
    return _worklist(reg, items)
