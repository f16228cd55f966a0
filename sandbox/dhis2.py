"""DHIS2 stand-in (MoH "Phần mềm Thống kê y tế"): the A6 death register as a tracker event program.

API under /dhis2 (speaks 2.40, 2.41 or 2.42, chosen by /_control/dhis2/config):
  GET  /dhis2/api/system/info
  GET  /dhis2/api/organisationUnits?filter=path:like:<uid>&fields=&paging=false
  GET  /dhis2/api/tracker/events?program=&orgUnit=&ouMode|orgUnitMode=&updatedAfter=&updatedBefore=
       &includeDeleted=&page=&pageSize=&totalPages=&skipPaging|paging=
  POST /dhis2/api/tracker?async=false&importStrategy=CREATE_AND_UPDATE&atomicMode=OBJECT   {"events": [...]}
Auth: Basic admin/district, or `Authorization: ApiToken d2pat_sandbox`.
Version shapes: 2.40 `instances` + flat page fields, `ouMode`, `skipPaging`; 2.41 `events` + `pager` + flat fields,
both parameter spellings; 2.42 `events` + `pager` only, `ouMode`/`skipPaging` refused (400).
A sync import answers 409 with the report when any object failed (atomicMode=OBJECT commits the others).
Control (no auth): /_control/dhis2/{reset,config,events,events/{uid}/delete,errors,faults,requests}.
Timestamps are naive, server time (Asia/Ho_Chi_Minh).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sandbox.generate import VN_TZ

router = APIRouter(tags=["dhis2"])
PROGRAM, STAGE = "uX3pS8aZHN2", "qgYbmBm4kx8"
UID = re.compile(r"^[A-Za-z][A-Za-z0-9]{10}$")
TOKEN, BASIC = "d2pat_sandbox", ("admin", "district")
VERSIONS = {"2.40": "2.40.7", "2.41": "2.41.4", "2.42": "2.42.1"}
# a province with two communes (org unit codes = administrative commune codes)
ORG_UNITS = [
    {"id": "VnHaNoi0001", "code": "01", "level": 2, "path": "/VietNam0001/VnHaNoi0001"},
    {"id": "TytOChoDua1", "code": "00190", "level": 4, "path": "/VietNam0001/VnHaNoi0001/TytOChoDua1"},
    {"id": "TytHoaLac01", "code": "09988", "level": 4, "path": "/VietNam0001/VnHaNoi0001/TytHoaLac01"},
    {"id": "VnHcm000001", "code": "79", "level": 2, "path": "/VietNam0001/VnHcm000001"},
]


@dataclass
class Dhis2State:
    version: str = "2.41"
    org_units: list[dict] = field(default_factory=lambda: [dict(u) for u in ORG_UNITS])
    events: dict[str, dict] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # event uid -> error code forced on import
    faults: list[dict] = field(default_factory=list)  # [{"status", "count"}] answered before serving
    requests: list[dict] = field(default_factory=list)


def state(request: Request) -> Dhis2State:
    if not hasattr(request.app.state, "dhis2"):
        request.app.state.dhis2 = Dhis2State()
    return request.app.state.dhis2


def now_text() -> str:
    return datetime.now(VN_TZ).replace(tzinfo=None).isoformat(timespec="milliseconds")


def parse(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.astimezone(VN_TZ).replace(tzinfo=None) if moment.tzinfo else moment


def _authorised(request: Request) -> bool:
    auth = request.headers.get("authorization", "")
    if auth == f"ApiToken {TOKEN}":
        return True
    if auth.startswith("Basic "):
        try:
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return False
        return (user, pw) == BASIC
    return False


def _gate(request: Request, st: Dhis2State) -> JSONResponse | None:
    st.requests.append({"method": request.method, "path": request.url.path, "params": dict(request.query_params)})
    if st.faults:
        f = st.faults[0]
        f["count"] -= 1
        if f["count"] <= 0:
            st.faults.pop(0)
        return JSONResponse(
            {"httpStatus": "Error", "httpStatusCode": f["status"], "status": "ERROR", "message": "sandbox fault"},
            status_code=f["status"],
        )
    if not _authorised(request):
        return JSONResponse({"httpStatusCode": 401, "status": "ERROR", "message": "Unauthorized"}, status_code=401)
    return None


def _bad(message: str) -> JSONResponse:
    return JSONResponse(
        {"httpStatus": "Bad Request", "httpStatusCode": 400, "status": "ERROR", "message": message}, status_code=400
    )


@router.get("/dhis2/api/system/info")
async def system_info(request: Request):
    st = state(request)
    return _gate(request, st) or {"version": VERSIONS[st.version], "serverTimeZoneId": "Asia/Ho_Chi_Minh"}


@router.get("/dhis2/api/organisationUnits")
async def org_units(request: Request):
    st = state(request)
    if (denied := _gate(request, st)) is not None:
        return denied
    flt = request.query_params.get("filter", "")
    root = flt.split("path:like:", 1)[1] if "path:like:" in flt else ""
    units = [{k: u[k] for k in ("id", "code", "level")} for u in st.org_units if root in u["path"]]
    return {"organisationUnits": units}


def _under(st: Dhis2State, root: str, mode: str) -> set[str]:
    paths = {u["id"]: u["path"] for u in st.org_units}
    if root not in paths:
        return set()
    if mode == "SELECTED":
        return {root}
    depth = paths[root].count("/")
    return {
        uid
        for uid, p in paths.items()
        if f"/{root}" in p and (mode == "DESCENDANTS" or (mode == "CHILDREN" and p.count("/") <= depth + 1))
    }


@router.get("/dhis2/api/tracker/events")
async def events(request: Request):
    st = state(request)
    if (denied := _gate(request, st)) is not None:
        return denied
    q = request.query_params
    if st.version == "2.42" and ({"ouMode", "skipPaging", "event", "skipMeta"} & set(q)):
        return _bad("Parameters removed in 2.42: use orgUnitMode, paging, events")
    mode = q.get("ouMode") if st.version == "2.40" else (q.get("orgUnitMode") or q.get("ouMode"))
    mode = (mode or "SELECTED").upper()
    units = _under(st, q.get("orgUnit", ""), mode)
    try:
        after = parse(q["updatedAfter"]) if "updatedAfter" in q else None
        before = parse(q["updatedBefore"]) if "updatedBefore" in q else None
        page, size = int(q.get("page", 1)), int(q.get("pageSize", 50))
    except ValueError:
        return _bad("invalid date or paging parameter")
    deleted = q.get("includeDeleted", "false").lower() == "true"
    rows = [
        e
        for e in st.events.values()
        if e["orgUnit"] in units
        and (not q.get("program") or e["program"] == q["program"])
        and (deleted or not e.get("deleted"))
        and (after is None or parse(e["updatedAt"]) >= after)
        and (before is None or parse(e["updatedAt"]) < before)
    ]
    rows.sort(key=lambda e: (e["updatedAt"], e["event"]))
    no_paging = q.get("paging", "true").lower() == "false" or (
        st.version != "2.42" and q.get("skipPaging", "false").lower() == "true"
    )
    if st.version == "2.40" and q.get("paging", "true").lower() == "false":
        no_paging = False  # 2.40 does not know `paging`
    chunk = rows if no_paging else rows[(page - 1) * size : page * size]
    pager = {"page": page, "pageSize": size}
    if q.get("totalPages", "false").lower() == "true":
        pager.update(total=len(rows), pageCount=max(1, -(-len(rows) // size)))
    if st.version == "2.40":
        return {"instances": chunk, **pager}
    if st.version == "2.41":
        return {"pager": pager, **pager, "events": chunk}
    return {"pager": pager, "events": chunk}


def _error(code: str, uid: str, message: str) -> dict:
    return {"message": message, "errorCode": code, "trackerType": "EVENT", "uid": uid}


@router.post("/dhis2/api/tracker")
async def tracker_import(request: Request):
    st = state(request)
    if (denied := _gate(request, st)) is not None:
        return denied
    q = request.query_params
    if q.get("async", "true").lower() != "false":
        return {
            "httpStatus": "OK",
            "httpStatusCode": 200,
            "status": "OK",
            "message": "Tracker job added",
            "response": {"id": "sandboxJob1", "location": "/api/tracker/jobs/sandboxJob1"},
        }
    strategy = q.get("importStrategy", "CREATE_AND_UPDATE").upper()
    atomic = q.get("atomicMode", "ALL").upper()
    body = await request.json()
    incoming = body.get("events") or []
    units = {u["id"] for u in st.org_units}
    errors, ok = [], []
    for ev in incoming:
        uid = ev.get("event") or ""
        existing = st.events.get(uid)
        if not UID.match(uid):
            errors.append(_error("E1048", uid, f"Object: `{uid}`, uid: `{uid}`, has an invalid uid format."))
        elif ev.get("program") != PROGRAM:
            errors.append(_error("E1010", uid, f"Could not find Program: `{ev.get('program')}`, linked to Event."))
        elif ev.get("programStage") != STAGE:
            errors.append(_error("E1013", uid, "Could not find ProgramStage, linked to Event."))
        elif ev.get("orgUnit") not in units:
            errors.append(_error("E1011", uid, f"Could not find OrganisationUnit: `{ev.get('orgUnit')}`."))
        elif not ev.get("occurredAt"):
            errors.append(_error("E1031", uid, "Event OccurredAt date is missing."))
        elif existing and existing.get("deleted"):
            errors.append(_error("E1082", uid, f"Event: `{uid}`, is already deleted and cannot be modified."))
        elif existing and strategy == "CREATE":
            errors.append(_error("E1030", uid, f"Event: `{uid}`, already exists."))
        elif uid in st.errors:
            errors.append(_error(st.errors[uid], uid, f"Event: `{uid}`, rejected by the sandbox."))
        else:
            ok.append(ev)
    failed = {e["uid"] for e in errors}
    created = updated = 0
    if not (errors and atomic == "ALL"):
        for ev in ok:
            old = st.events.get(ev["event"])
            values = {d["dataElement"]: d for d in (old or {}).get("dataValues", [])}
            for d in ev.get("dataValues") or []:
                if d.get("value") is None:
                    values.pop(d["dataElement"], None)
                else:
                    values[d["dataElement"]] = {"dataElement": d["dataElement"], "value": str(d["value"])}
            stamp = now_text()
            st.events[ev["event"]] = {
                **(old or {"createdAt": stamp}),
                **{k: v for k, v in ev.items() if k != "dataValues"},
                "dataValues": list(values.values()),
                "updatedAt": stamp,
                "deleted": False,
            }
            created += old is None
            updated += old is not None
    ignored = len(incoming) - created - updated
    stats = {"created": created, "updated": updated, "deleted": 0, "ignored": ignored, "total": len(incoming)}
    objects = [
        {
            "trackerType": "EVENT",
            "uid": ev.get("event"),
            "errorReports": [],
            **({"index": i} if st.version == "2.40" else {}),
        }
        for i, ev in enumerate(incoming)
        if ev.get("event") not in failed and not (errors and atomic == "ALL")
    ]
    report = {
        "status": "ERROR" if errors else "OK",
        "validationReport": {"errorReports": errors, "warningReports": []},
        "stats": stats,
        "bundleReport": {
            "typeReportMap": {"EVENT": {"trackerType": "EVENT", "stats": stats, "objectReports": objects}}
        },
    }
    return JSONResponse(report, status_code=409 if errors else 200)


# ---------------------------------------------------------------- control


@router.post("/_control/dhis2/reset", tags=["control"])
async def reset(request: Request):
    body = await request.json() if (await request.body()).strip() else {}
    request.app.state.dhis2 = Dhis2State(version=body.get("version", "2.41"))
    return {"version": request.app.state.dhis2.version}


@router.post("/_control/dhis2/config", tags=["control"])
async def config(request: Request):
    st, body = state(request), await request.json()
    if body.get("version") and body["version"] not in VERSIONS:
        return _bad(f"version must be one of {sorted(VERSIONS)}")
    st.version = body.get("version", st.version)
    if "org_units" in body:
        st.org_units = body["org_units"]
    return {"version": st.version, "org_units": len(st.org_units)}


@router.post("/_control/dhis2/events", tags=["control"])
async def load_events(request: Request):
    """Upsert events as a commune station would enter them: {"events": [...]} (updatedAt defaults to now)."""
    st, body = state(request), await request.json()
    for ev in body.get("events") or []:
        stamp = ev.get("updatedAt") or now_text()
        old = st.events.get(ev["event"], {})
        st.events[ev["event"]] = {
            "program": PROGRAM,
            "programStage": STAGE,
            "status": "COMPLETED",
            "createdAt": old.get("createdAt", stamp),
            "deleted": False,
            **old,
            **ev,
            "updatedAt": stamp,
        }
    return {"events": len(st.events)}


@router.get("/_control/dhis2/events", tags=["control"])
async def all_events(request: Request):
    return {"events": list(state(request).events.values())}


@router.post("/_control/dhis2/events/{uid}/delete", tags=["control"])
async def delete_event(uid: str, request: Request):
    st = state(request)
    body = await request.json() if (await request.body()).strip() else {}
    st.events[uid].update(deleted=True, updatedAt=body.get("updatedAt") or now_text())
    return {"deleted": uid}


@router.post("/_control/dhis2/errors", tags=["control"])
async def force_errors(request: Request):
    """{uid: error code} forces an import error on that event; {uid: null} clears it."""
    for uid, code in (await request.json()).items():
        if code:
            state(request).errors[uid] = code
        else:
            state(request).errors.pop(uid, None)
    return {"errors": len(state(request).errors)}


@router.post("/_control/dhis2/faults", tags=["control"])
async def add_fault(request: Request):
    body = await request.json()
    state(request).faults.append({"status": int(body.get("status", 503)), "count": int(body.get("count", 1))})
    return {"faults": len(state(request).faults)}


@router.get("/_control/dhis2/requests", tags=["control"])
async def requests_log(request: Request):
    return {"requests": state(request).requests}
