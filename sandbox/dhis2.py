"""DHIS2 stand-in (MoH "Phần mềm Thống kê y tế"): the A6 death register as a tracker event program, behaving as
DHIS2 2.40, 2.41 or 2.42 do (dhis2-core branches; details in docs/dhis2.md). State and rules: sandbox.dhis2_model.

API under /dhis2 (a context path, as on a real server):
  GET  /dhis2/api/system/info                       version, serverTimeZoneId, serverDate (server wall clock)
  GET  /dhis2/api/organisationUnits?filter=path:like:<uid>
  GET  /dhis2/api/programStages/<uid>               data elements, value types, option sets (404 if unknown)
  GET  /dhis2/api/tracker/events                    see below
  POST /dhis2/api/tracker?async=false&importStrategy=&atomicMode=    {"events": [...]}
Auth: Basic admin/district, or `Authorization: ApiToken d2pat_sandbox`.

What a real server does and this one models:
- timestamps in the server's zone without an offset (`zone`: Asia/Ho_Chi_Minh or Etc/UTC, ...); naive date
  parameters read in that zone; `updatedAfter` inclusive, `updatedBefore` exclusive on 2.40, inclusive after;
- per-version parameters, unknown ones silently ignored: 2.40 `ouMode`/`skipPaging`/`event=a;b` and answers
  `instances` + flat paging; 2.41 both spellings (both at once: 400) and `events` + `pager` + flat fields; 2.42
  `orgUnitMode`/`paging`/`events` only (`ouMode` ignored: the org unit alone is SELECTED; `paging=false` with
  `page`/`pageSize`: 400);
- `order` honoured with the internal id as last tie-break; without it 2.40 newest update first, 2.41+ newest id;
- offset paging over live data: station edits between two pages (`/_control/dhis2/edits`) move events;
- import: atomicMode=OBJECT commits the valid objects and answers 200 with errorReports; ALL answers 409; 2.42
  refuses the whole request (400) when one event UID is invalid (E1048 per object before); E1082 deleted, E1083
  completed event reopened without F_UNCOMPLETE_EVENT, E1043 completeness expired, E1304/E1305 data element
  unknown / not on the stage, E1125 option code, E1302 value type;
- metadata that does not fit (`/_control/dhis2/metadata`: remove an element from the stage, change a value type).
Control (no auth): /_control/dhis2/{reset,config,events,events/{uid}/delete,edits,errors,faults,metadata,requests}.
"""

from __future__ import annotations

import base64
import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sandbox.dhis2_model import (
    STAGE,
    UID,
    VERSIONS,
    Dhis2State,
    event_error,
    now,
    ordered,
    select_fields,
    stage_metadata,
)

router = APIRouter(tags=["dhis2"])
TOKEN, BASIC = "d2pat_sandbox", ("admin", "district")


class BadRequest(Exception):
    pass


def state(request: Request) -> Dhis2State:
    if not hasattr(request.app.state, "dhis2"):
        request.app.state.dhis2 = Dhis2State()
    return request.app.state.dhis2


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
    st.requests.append(
        {
            "method": request.method,
            "path": request.url.path,
            "params": dict(request.query_params),
            "headers": sorted(request.headers.keys()),  # names only
        }
    )
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


def _web_message(status: int, message: str) -> JSONResponse:
    names = {400: "Bad Request", 404: "Not Found", 409: "Conflict"}
    return JSONResponse(
        {"httpStatus": names.get(status, "Error"), "httpStatusCode": status, "status": "ERROR", "message": message},
        status_code=status,
    )


@router.get("/dhis2/api/system/info")
async def system_info(request: Request):
    st = state(request)
    return _gate(request, st) or {
        "contextPath": str(request.base_url).rstrip("/") + "/dhis2",
        "version": st.reported or VERSIONS[st.version],
        "revision": "sandbox",
        "calendar": "iso8601",
        "serverDate": st.show(now()),
        "serverTimeZoneId": st.zone,
        "serverTimeZoneDisplayName": st.zone,
    }


@router.get("/dhis2/api/organisationUnits")
async def org_units(request: Request):
    st = state(request)
    if (denied := _gate(request, st)) is not None:
        return denied
    flt = request.query_params.get("filter", "")
    root = flt.split("path:like:", 1)[1] if "path:like:" in flt else ""
    units = [{k: u[k] for k in ("id", "code", "level")} for u in st.org_units if root in u["path"]]
    return {"organisationUnits": units}


@router.get("/dhis2/api/programStages/{uid}")
async def program_stage(uid: str, request: Request):
    st = state(request)
    if (denied := _gate(request, st)) is not None:
        return denied
    if uid != STAGE:
        return _web_message(404, f"ProgramStage with id {uid} could not be found.")
    return stage_metadata(st)


def _one_of(st: Dhis2State, q, new: str, old: str) -> str | None:
    """A parameter renamed in 2.41: 2.40 knows only the old name, 2.42 only the new one (the other is ignored,
    as Spring ignores any parameter it does not bind); 2.41 takes either, not both."""
    if st.version == "2.40":
        return q.get(old)
    if st.version == "2.42":
        return q.get(new)
    if new in q and old in q:
        raise BadRequest(f"Only one parameter of '{old}' and '{new}' must be specified. Prefer '{new}'.")
    return q.get(new) or q.get(old)


def _query(st: Dhis2State, q) -> tuple[list[dict], bool]:
    """The events a GET /api/tracker/events selects (ordered), and whether paging is off."""
    mode = _one_of(st, q, "orgUnitMode", "ouMode")
    root = q.get("orgUnit")
    units = st.under(root, (mode or ("SELECTED" if root else "ACCESSIBLE")).upper())
    listed = _one_of(st, q, "events", "event")
    wanted = {u for u in (listed or "").replace(";", ",").split(",") if u}
    skip_paging = q.get("skipPaging", "").lower() == "true" and st.version != "2.42"
    paging_off = q.get("paging", "").lower() == "false" and st.version != "2.40"
    if st.version == "2.41" and "paging" in q and "skipPaging" in q:
        raise BadRequest("Only one parameter of 'skipPaging' and 'paging' must be specified. Prefer 'paging'.")
    no_paging = skip_paging or paging_off
    if st.version == "2.42" and paging_off and ({"page", "pageSize"} & set(q) or q.get("totalPages") == "true"):
        raise BadRequest(
            "Paging cannot be disabled with paging=false while also requesting a paginated response with page, "
            "pageSize and/or totalPages=true"
        )
    try:
        after = st.read(q["updatedAfter"]) if "updatedAfter" in q else None
        before = st.read(q["updatedBefore"], end_of_day=True) if "updatedBefore" in q else None
    except ValueError:
        raise BadRequest("Invalid date in updatedAfter / updatedBefore") from None
    deleted = q.get("includeDeleted", "false").lower() == "true"
    rows = [
        e
        for e in st.events.values()
        if e["orgUnit"] in units
        and (not q.get("program") or e["program"] == q["program"])
        and (not q.get("programStage") or e["programStage"] == q["programStage"])
        and (not wanted or e["event"] in wanted)
        and (deleted or not e.get("deleted"))
        and (after is None or e["_updated"] >= after)
        and (before is None or e["_updated"] < before or (e["_updated"] == before and st.version != "2.40"))
    ]
    try:
        return ordered(st.version, rows, q.get("order")), no_paging
    except ValueError as e:
        raise BadRequest(str(e)) from None


@router.get("/dhis2/api/tracker/events")
async def events(request: Request):
    st = state(request)
    if (denied := _gate(request, st)) is not None:
        return denied
    q = request.query_params
    try:
        rows, no_paging = _query(st, q)
        page, size = int(q.get("page", 1)), int(q.get("pageSize", 50))
    except BadRequest as e:
        return _web_message(400, str(e))
    except ValueError:
        return _web_message(400, "invalid paging parameter")
    chunk = rows if no_paging else rows[(page - 1) * size : page * size]
    items = [select_fields(st.render(e), q.get("fields")) for e in chunk]
    pager = {"page": page, "pageSize": len(rows) if no_paging else size}
    if q.get("totalPages", "false").lower() == "true":
        pager.update(total=len(rows), pageCount=max(1, -(-len(rows) // size)))
    st.exports += 1
    for edit in [e for e in st.edits if e["after"] == st.exports]:  # a station saves while we page
        st.edits.remove(edit)
        _load(st, edit["events"])
    if st.version == "2.40":
        return {"instances": items, **pager}
    if st.version == "2.41":
        return {"pager": pager, **pager, "events": items}
    return {"pager": pager, "events": items}


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
    incoming = (await request.json()).get("events") or []
    if st.version == "2.42":  # the payload's UIDs are typed: one invalid UID fails the JSON parsing
        bad = next((str(e.get("event")) for e in incoming if e.get("event") and not UID.match(str(e["event"]))), None)
        if bad is not None:
            return _web_message(
                400,
                "JSON parse error: Cannot construct instance of `org.hisp.dhis.common.UID`, problem: UID must be "
                f"an alphanumeric string of 11 characters starting with a letter, but was: {bad}",
            )
    errors, ok = [], []
    for ev in incoming:
        problem = event_error(st, ev, strategy)
        if problem:
            code, message = problem
            errors.append({"message": message, "errorCode": code, "trackerType": "EVENT", "uid": ev.get("event")})
        else:
            ok.append(ev)
    commit = not (errors and atomic == "ALL")
    created = updated = 0
    if commit:
        for ev in ok:
            existed = ev["event"] in st.events
            st.store({"status": "ACTIVE", "deleted": False, **ev}, replace=True)
            created, updated = created + (not existed), updated + existed
    stats = {"created": created, "updated": updated, "deleted": 0, "ignored": len(incoming) - created - updated}
    stats["total"] = len(incoming)
    objects = [
        {
            "trackerType": "EVENT",
            "uid": ev["event"],
            "errorReports": [],
            **({"index": i} if st.version == "2.40" else {}),
        }
        for i, ev in enumerate(ok)
        if commit
    ]
    report = {
        "status": "OK" if commit else "ERROR",
        "validationReport": {"errorReports": errors, "warningReports": []},
        "stats": stats,
        "bundleReport": {
            "status": "OK",
            "typeReportMap": {"EVENT": {"trackerType": "EVENT", "stats": stats, "objectReports": objects}},
            "stats": stats,
        },
    }
    return JSONResponse(report, status_code=200 if commit else 409)


# ---------------------------------------------------------------- control


def _load(st: Dhis2State, events: list[dict]) -> None:
    """Events as a commune station saves them (updatedAt: ISO with an offset, or the server's wall clock)."""
    for ev in events:
        stamp = st.read(ev["updatedAt"]) if ev.get("updatedAt") else now()
        new = st.store({"status": "COMPLETED", **ev} if ev["event"] not in st.events else ev, updated=stamp)
        if ev.get("createdAt"):
            new["_created"] = st.read(ev["createdAt"])


async def _body(request: Request) -> dict:
    raw = await request.body()
    return json.loads(raw) if raw.strip() else {}


@router.post("/_control/dhis2/reset", tags=["control"])
async def reset(request: Request):
    body = await _body(request)
    request.app.state.dhis2 = Dhis2State(version=body.get("version", "2.41"), zone=body.get("zone", "Asia/Ho_Chi_Minh"))
    return {"version": request.app.state.dhis2.version, "zone": request.app.state.dhis2.zone}


@router.post("/_control/dhis2/config", tags=["control"])
async def config(request: Request):
    st, body = state(request), await request.json()
    if body.get("version") and body["version"] not in VERSIONS:
        return _web_message(400, f"version must be one of {sorted(VERSIONS)}")
    st.version = body.get("version", st.version)
    st.zone = body.get("zone", st.zone)
    st.reported = body.get("reported_version", st.reported)
    st.uncomplete = bool(body.get("uncomplete", st.uncomplete))
    st.complete_expiry_days = int(body.get("complete_expiry_days", st.complete_expiry_days))
    if "org_units" in body:
        st.org_units = body["org_units"]
    return {"version": st.version, "zone": st.zone, "org_units": len(st.org_units)}


@router.post("/_control/dhis2/metadata", tags=["control"])
async def metadata(request: Request):
    """{"remove": [uid]} takes elements off the program stage; {"valueType": {uid: type}} changes value types."""
    st, body = state(request), await request.json()
    st.stage_elements = [u for u in st.stage_elements if u not in set(body.get("remove") or [])]
    for uid, value_type in (body.get("valueType") or {}).items():
        st.elements[uid]["valueType"] = value_type
    return {"stage_elements": len(st.stage_elements)}


@router.post("/_control/dhis2/events", tags=["control"])
async def load_events(request: Request):
    """Upsert events as a commune station would enter them: {"events": [...]} (updatedAt defaults to now)."""
    st = state(request)
    _load(st, (await request.json()).get("events") or [])
    return {"events": len(st.events)}


@router.get("/_control/dhis2/events", tags=["control"])
async def all_events(request: Request):
    st = state(request)
    return {"events": [st.render(e) for e in st.events.values()]}


@router.post("/_control/dhis2/events/{uid}/delete", tags=["control"])
async def delete_event(uid: str, request: Request):
    st, body = state(request), await _body(request)
    st.store({"event": uid, "deleted": True}, updated=st.read(body["updatedAt"]) if body.get("updatedAt") else None)
    return {"deleted": uid}


@router.post("/_control/dhis2/edits", tags=["control"])
async def edits(request: Request):
    """{"after": n, "events": [...]}: applied right after the n-th events export from now (a station editing
    while a client pages)."""
    st, body = state(request), await request.json()
    st.edits.append({"after": st.exports + int(body.get("after", 1)), "events": body.get("events") or []})
    return {"pending": len(st.edits)}


@router.post("/_control/dhis2/errors", tags=["control"])
async def force_errors(request: Request):
    """{uid: error code} forces an import error on that event; {uid: null} clears it."""
    st = state(request)
    for uid, code in (await request.json()).items():
        if code:
            st.errors[uid] = code
        else:
            st.errors.pop(uid, None)
    return {"errors": len(st.errors)}


@router.post("/_control/dhis2/faults", tags=["control"])
async def add_fault(request: Request):
    body = await request.json()
    state(request).faults.append({"status": int(body.get("status", 503)), "count": int(body.get("count", 1))})
    return {"faults": len(state(request).faults)}


@router.get("/_control/dhis2/requests", tags=["control"])
async def requests_log(request: Request):
    return {"requests": state(request).requests}
