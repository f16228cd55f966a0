"""BHXH certificate database stand-in (solution 2): the national copy of what the pilot hospitals sent.

API under /bhxh (contract in docs/bhxh.md):
  POST /bhxh/api/v1/auth/token           {"username": "bhxh-sandbox", "password": "sandbox-bhxh"}
  POST /bhxh/api/v1/certificates/lookup  {"kind", <criteria>}                  (Bearer token)
  GET  /bhxh/api/v1/certificates?kind=&province=&changed_from=&changed_to=&page_size=&cursor=   (Bearer token)
Control (no auth): /_control/bhxh/{records,faults,tokens,tokens/expire,requests}.

Content: built lazily from the HIS stand-in (latest version of every HIS record, received by BHXH 5 minutes
after the hospital's change), rebuilt after /_control/reset. Tests replace it through /_control/bhxh/records.
"""

from __future__ import annotations

import base64
import bisect
import hmac
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from sandbox import faults
from sandbox.faults import error
from sandbox.generate import VN_TZ
from sandbox.his import KINDS, parse_ts

USERNAME, PASSWORD = "bhxh-sandbox", "sandbox-bhxh"
MAX_PAGE_SIZE = 1000
FACILITY = {"GCS": "MA_CSKCB", "GBT": "MACSKCB"}
CRITERIA = {
    "GCS": ({"SO_CCCD_NND"}, {"MA_GCS"}, {"SO", "NGAY_CT", "MA_CSKCB"}),
    "GBT": ({"SO_GIAYTO"}, {"MA_GBT"}, {"SO_BAOTU", "NGAY_CAPGIAYBT", "MACSKCB"}),
}

router = APIRouter(tags=["bhxh"])


@dataclass
class Fault:
    status: int | None = None
    delay_seconds: float = 0.0
    count: int = 1
    retry_after: int | None = None
    malformed: bool = False  # answer 200 with a body that is not JSON
    mutate: bool = False  # pull only: after serving the page, change its first record (it leaves the window)


@dataclass
class BhxhState:
    records: dict[str, list[dict]] = field(default_factory=lambda: {k: [] for k in KINDS})
    stamps: dict[str, list[tuple]] = field(default_factory=lambda: {k: [] for k in KINDS})
    tokens: dict[str, float] = field(default_factory=dict)  # token -> monotonic expiry
    ttl: float = 300.0
    faults: dict[str, list[Fault]] = field(default_factory=lambda: {"token": [], "lookup": [], "pull": []})
    requests: Counter = field(default_factory=Counter)
    source: object = None  # the HisState it was built from

    def sort(self, kind: str) -> None:
        self.records[kind].sort(key=lambda e: (parse_ts(e["updated_at"]), e["id"]))
        self.stamps[kind] = [(parse_ts(e["updated_at"]), e["id"]) for e in self.records[kind]]

    def upsert(self, kind: str, env: dict) -> None:
        feed = self.records[kind]
        feed[:] = [e for e in feed if e["id"] != env["id"]] + [env]
        self.sort(kind)


def _from_his(his) -> BhxhState:
    st = BhxhState(source=his)
    for h in his.hospitals.values():
        for kind in KINDS:
            latest: dict[str, dict] = {}
            for env in h.feeds[kind]:  # feed is in updated_at order: the last version wins
                latest[env["id"]] = env
            for env in latest.values():
                received = parse_ts(env["updated_at"]) + timedelta(minutes=5)
                st.records[kind].append(
                    {"id": f"BHXH-{env['id']}", "updated_at": received.isoformat(), "record": dict(env["record"])}
                )
    for kind in KINDS:
        st.sort(kind)
    return st


def _state(request: Request) -> BhxhState:
    app = request.app
    st = getattr(app.state, "bhxh", None)
    if st is None or st.source is not app.state.his:  # first use, or the sandbox was reset
        st = app.state.bhxh = _from_his(app.state.his)
    return st


def _count(st: BhxhState, target: str, resp: Response) -> Response:
    st.requests[target] += 1
    st.requests[f"{target}:{resp.status_code}"] += 1
    return resp


async def _fault(st: BhxhState, target: str) -> tuple[Response | None, Fault | None]:
    fault = await faults.take(st.faults[target])
    if fault is None:
        return None, None
    if (resp := faults.status_error(fault, target)) is not None:
        return resp, fault
    if fault.malformed:
        return Response('{"items": [{"id": "truncated', media_type="application/json"), fault
    return None, fault


def _token_error(st: BhxhState, request: Request) -> JSONResponse | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or token.strip() not in st.tokens:
        return error(
            401,
            "invalid_token",
            "a valid bearer token is required",
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if st.tokens[token.strip()] <= time.monotonic():
        return error(
            401, "token_expired", "the token has expired", {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )
    return None


# ---------------------------------------------------------------- API


@router.post("/bhxh/api/v1/auth/token")
async def token(request: Request):
    st = _state(request)
    resp, _ = await _fault(st, "token")
    if resp is None:
        try:
            body = await request.json()
            ok = hmac.compare_digest(str(body.get("username", "")), USERNAME) & hmac.compare_digest(
                str(body.get("password", "")), PASSWORD
            )
        except (ValueError, AttributeError):
            ok = False
        if not ok:
            resp = error(401, "invalid_credentials", "username or password is wrong")
        else:
            value = secrets.token_urlsafe(24)
            st.tokens[value] = time.monotonic() + st.ttl
            resp = JSONResponse({"access_token": value, "token_type": "Bearer", "expires_in": st.ttl})
    return _count(st, "token", resp)


@router.post("/bhxh/api/v1/certificates/lookup")
async def lookup(request: Request):
    st = _state(request)
    resp, _ = await _fault(st, "lookup")
    return _count(st, "lookup", resp or _token_error(st, request) or await _lookup(st, request))


async def _lookup(st: BhxhState, request: Request) -> JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        return error(400, "invalid_body", "expected a JSON object")
    if not isinstance(body, dict) or body.get("kind") not in KINDS:
        return error(400, "invalid_kind", f"kind must be one of {', '.join(KINDS)}")
    kind = body.pop("kind")
    if set(body) not in CRITERIA[kind]:
        return error(
            400, "invalid_criteria", f"criteria for {kind}: " + " | ".join("+".join(sorted(c)) for c in CRITERIA[kind])
        )
    want = {k: str(v).strip().upper() for k, v in body.items()}
    items = [
        e for e in st.records[kind] if all(str(e["record"].get(k, "")).strip().upper() == v for k, v in want.items())
    ]
    return JSONResponse({"kind": kind, "items": items})


def _cursor(stamp: datetime, rid: str) -> str:
    return base64.urlsafe_b64encode(f"{stamp.isoformat()}|{rid}".encode()).decode()


@router.get("/bhxh/api/v1/certificates")
async def pull(request: Request):
    st = _state(request)
    resp, fault = await _fault(st, "pull")
    resp = resp or _token_error(st, request) or _pull(st, request, fault)
    return _count(st, "pull", resp)


def _pull(st: BhxhState, request: Request, fault: Fault | None) -> JSONResponse:
    q = request.query_params
    kind = (q.get("kind") or "").upper()
    if kind not in KINDS:
        return error(400, "invalid_kind", f"kind must be one of {', '.join(KINDS)}")
    province = q.get("province") or ""
    if len(province) != 2 or not province.isdigit():
        return error(400, "invalid_province", "province must be a 2-digit code")
    try:
        lo, hi = parse_ts(q["changed_from"]), parse_ts(q["changed_to"])
        page_size = int(q.get("page_size", "100"))
    except (KeyError, ValueError):
        return error(400, "invalid_window", "changed_from and changed_to (ISO-8601) and an integer page_size")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        return error(400, "invalid_paging", f"1 <= page_size <= {MAX_PAGE_SIZE}")
    start = bisect.bisect_left(st.stamps[kind], (lo, ""))
    if q.get("cursor"):
        try:
            ts, _, rid = base64.urlsafe_b64decode(q["cursor"].encode()).decode().partition("|")
            start = max(start, bisect.bisect_right(st.stamps[kind], (parse_ts(ts), rid)))
        except ValueError:
            return error(400, "invalid_cursor", "cursor is not one this server issued")
    fac = FACILITY[kind]
    items = []
    for i in range(start, len(st.records[kind])):
        stamp, rid = st.stamps[kind][i]
        if stamp >= hi:
            break
        env = st.records[kind][i]
        if str(env["record"].get(fac, ""))[:2] == province:
            items.append(env)
            if len(items) > page_size:
                break
    more = len(items) > page_size
    items = items[:page_size]
    body = {
        "kind": kind,
        "province": province,
        "items": items,
        "next_cursor": _cursor(parse_ts(items[-1]["updated_at"]), items[-1]["id"]) if more else None,
    }
    resp = JSONResponse(body)
    if fault is not None and fault.mutate and items:  # the data changes right after this page was served
        changed = {
            **items[0],
            "record": {**items[0]["record"], "GHI_CHU": "Đã sửa sau khi trả trang"},
            "updated_at": datetime.now(VN_TZ).isoformat(timespec="seconds"),
        }
        st.upsert(kind, changed)
    return resp


# ---------------------------------------------------------------- control


class RecordsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["GCS", "GBT"]
    items: list[dict]
    replace: bool = False  # drop every record of this kind first


class FaultBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: Literal["token", "lookup", "pull"] = "pull"
    status: int | None = None
    delay_seconds: float = 0.0
    count: int = 1
    retry_after: int | None = None
    malformed: bool = False
    mutate: bool = False


async def _body(request: Request, model):
    try:
        return model.model_validate_json(await request.body()), None
    except ValidationError as exc:
        return None, error(422, "invalid_body", [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()])


@router.get("/_control/bhxh/records", tags=["control"])
async def control_records(request: Request, kind: str = "GCS"):
    return {"items": _state(request).records.get(kind.upper(), [])}


@router.post("/_control/bhxh/records", tags=["control"])
async def control_add_records(request: Request):
    """Upsert envelopes {id, updated_at, record} by id (a changed record replaces the old one)."""
    body, err = await _body(request, RecordsBody)
    if err:
        return err
    st = _state(request)
    if body.replace:
        st.records[body.kind] = []
    for env in body.items:
        st.upsert(body.kind, env)
    return {"kind": body.kind, "records": len(st.records[body.kind])}


@router.post("/_control/bhxh/faults", tags=["control"])
async def control_faults(request: Request):
    body, err = await _body(request, FaultBody)
    if err:
        return err
    fields = body.model_dump()
    target = fields.pop("target")
    _state(request).faults[target].append(Fault(**fields))
    return {"queued": {k: len(v) for k, v in _state(request).faults.items()}}


@router.delete("/_control/bhxh/faults", tags=["control"])
async def control_clear_faults(request: Request):
    for q in _state(request).faults.values():
        q.clear()
    return {"cleared": True}


@router.post("/_control/bhxh/tokens", tags=["control"])
async def control_tokens(request: Request):
    """{"ttl": seconds}: lifetime of the tokens issued from now on."""
    body = await request.json()
    _state(request).ttl = float(body["ttl"])
    return {"ttl": _state(request).ttl}


@router.post("/_control/bhxh/tokens/expire", tags=["control"])
async def control_expire(request: Request):
    """Every issued token expires now (the next API call answers 401 token_expired)."""
    st = _state(request)
    for t in st.tokens:
        st.tokens[t] = 0.0
    return {"expired": len(st.tokens)}


@router.get("/_control/bhxh/requests", tags=["control"])
async def control_requests(request: Request):
    return dict(_state(request).requests)
