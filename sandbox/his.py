"""HIS (hospital information system) stand-in: one app, many hospitals under /his/{facility}.

Feed:  GET  /his/{facility}/api/v1/certificates?kind=GCS|GBT&updated_since=&page=&page_size=
Acks:  POST /his/{facility}/api/v1/acknowledgements
Auth:  HTTP Basic, user = facility code, password = "sandbox-{facility}".
Control (no auth, tests/bring-up): /_control/his/{facility}/{acks,expected,manifest,faults,records,requests}.

The feed is a log of record versions: an id can appear more than once (verbatim
duplicates, re-exports, resubmissions with a changed field and a later updated_at).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hmac
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from sandbox import (
    faults,
    refdata,
)
from sandbox.faults import error
from sandbox.generate import VN_TZ, generate_births, generate_deaths

KINDS = ("GCS", "GBT")
MAX_PAGE_SIZE = 1000
DEFAULT_FACILITIES = tuple(refdata.PILOT_FACILITIES)

router = APIRouter(tags=["his"])
control_router = APIRouter(prefix="/_control/his", tags=["control"])


def parse_ts(text: str) -> datetime:
    """ISO-8601; a naive value is taken as Vietnam time. Tolerates an unencoded '+' (space)."""
    text = text.strip()
    if re.search(r" \d{2}:?\d{2}$", text) and ("T" in text or text.count(" ") > 1):
        text = text[: text.rfind(" ")] + "+" + text[text.rfind(" ") + 1 :]
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=VN_TZ)


# ---------------------------------------------------------------- state


@dataclass
class Fault:
    status: int | None = None
    delay_seconds: float = 0.0
    count: int = 1
    retry_after: int | None = None


@dataclass
class Hospital:
    facility: refdata.Facility
    feeds: dict[str, list[dict]] = field(default_factory=lambda: {k: [] for k in KINDS})
    manifests: dict[str, dict] = field(default_factory=dict)
    acks: list[dict] = field(default_factory=list)
    acks_latest: dict[str, dict] = field(default_factory=dict)
    faults: dict[str, list[Fault]] = field(default_factory=lambda: {"feed": [], "acks": []})
    requests: Counter = field(default_factory=Counter)
    stamps: dict[str, list[datetime]] = field(default_factory=dict)  # parsed updated_at, feed order

    def sort(self, kind: str) -> None:
        feed = self.feeds[kind]
        feed.sort(key=lambda e: (parse_ts(e["updated_at"]), e["id"]))
        self.stamps[kind] = [parse_ts(e["updated_at"]) for e in feed]

    def since(self, kind: str, since: datetime | None) -> list[dict]:
        if since is None:
            return self.feeds[kind]
        return self.feeds[kind][bisect.bisect_left(self.stamps[kind], since) :]

    def upsert(self, kind: str, env: dict) -> str:
        """Replace the version with the same (id, updated_at), else add a new version."""
        feed = self.feeds[kind]
        ts = parse_ts(env["updated_at"])
        hits = [i for i, e in enumerate(feed) if e["id"] == env["id"] and parse_ts(e["updated_at"]) == ts]
        for i in reversed(hits[1:]):
            del feed[i]
        if hits:
            feed[hits[0]] = env
        else:
            feed.append(env)
        self.sort(kind)
        return "replaced" if hits else "added"

    def expected(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for m in self.manifests.values():
            out.update(m["expected"])
        return out


class HisState:
    """All hospitals of the HIS stand-in, built deterministically from the dataset options."""

    def __init__(
        self,
        *,
        seed: int = 7,
        births: int = 200,
        deaths: int = 60,
        facilities: list[str] | tuple[str, ...] = DEFAULT_FACILITIES,
        now: datetime | str | None = None,
        bad_ratio: float = 0.1,
        **_ignored,
    ):
        if isinstance(now, str):
            now = parse_ts(now)
        if isinstance(facilities, str):
            facilities = [c for c in facilities.split(",") if c.strip()]
        self.hospitals: dict[str, Hospital] = {}
        offsets = {"GCS": 0, "GBT": 0}
        for code in facilities:
            fac = refdata.facility(str(code))
            h = Hospital(fac)
            for kind, n, gen in (("GCS", births, generate_births), ("GBT", deaths, generate_deaths)):
                batch = gen(n, facility=fac, seed=seed, now=now, bad_ratio=bad_ratio, rule_offset=offsets[kind])
                offsets[kind] += len(batch.expected)  # rules continue across hospitals
                h.feeds[kind] = list(batch)
                h.sort(kind)
                h.manifests[kind] = batch.manifest()
            self.hospitals[fac.code] = h


def _state(request: Request) -> HisState:
    return request.app.state.his


def _hospital(request: Request, facility: str) -> Hospital | None:
    return _state(request).hospitals.get(facility)


def _unknown(facility: str) -> JSONResponse:
    return error(404, "unknown_facility", f"no hospital with facility code {facility!r}")


def _authorized(request: Request, h: Hospital) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(user, h.facility.code) & hmac.compare_digest(password, h.facility.password)


async def _apply_fault(h: Hospital, target: str) -> JSONResponse | None:
    fault = await faults.take(h.faults[target])
    return faults.status_error(fault, target) if fault else None


def _count(h: Hospital, target: str, resp: JSONResponse) -> JSONResponse:
    h.requests[target] += 1
    h.requests[f"{target}:{resp.status_code}"] += 1
    return resp


_UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Basic realm="his"'}


# ---------------------------------------------------------------- feed


@router.get("/his/{facility}/api/v1/certificates")
async def certificates(facility: str, request: Request):
    h = _hospital(request, facility)
    if h is None:
        return _unknown(facility)
    return _count(h, "feed", await _certificates(h, request))


async def _certificates(h: Hospital, request: Request) -> JSONResponse:
    fault = await _apply_fault(h, "feed")
    if fault is not None:
        return fault
    if not _authorized(request, h):
        return error(401, "unauthorized", "HTTP Basic credentials required", _UNAUTHORIZED_HEADERS)
    q = request.query_params
    kind = (q.get("kind") or "").upper()
    if kind not in KINDS:
        return error(400, "invalid_kind", f"kind must be one of {', '.join(KINDS)}")
    try:
        page = int(q.get("page", "1"))
        page_size = int(q.get("page_size", "100"))
    except ValueError:
        return error(400, "invalid_paging", "page and page_size must be integers")
    if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
        return error(400, "invalid_paging", f"page >= 1 and 1 <= page_size <= {MAX_PAGE_SIZE}")
    since = None
    if q.get("updated_since"):
        try:
            since = parse_ts(q["updated_since"])
        except ValueError:
            return error(400, "invalid_updated_since", "updated_since must be ISO-8601, e.g. 2025-07-01T00:00:00+07:00")
    items = h.since(kind, since)
    total = len(items)
    start = (page - 1) * page_size
    return JSONResponse(
        {
            "kind": kind,
            "page": page,
            "page_size": page_size,
            "total": total,
            "has_more": start + page_size < total,
            "items": items[start : start + page_size],
        }
    )


# ---------------------------------------------------------------- acknowledgements


class AckError(BaseModel):
    field: str | None = None
    code: str
    message: str = ""


class AckResult(BaseModel):
    id: str
    status: Literal["ACCEPTED", "REFUSED"]
    outcome: Literal["stored", "updated", "unchanged", "refused"]
    certificate: str | None = None
    errors: list[AckError] = []

    @model_validator(mode="after")
    def _consistent(self):
        if (self.status == "REFUSED") != (self.outcome == "refused"):
            raise ValueError("status REFUSED goes with outcome 'refused' only")
        return self


class AckBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    kind: Literal["GCS", "GBT"]
    batch: str
    results: list[AckResult]


@router.post("/his/{facility}/api/v1/acknowledgements")
async def acknowledgements(facility: str, request: Request):
    h = _hospital(request, facility)
    if h is None:
        return _unknown(facility)
    return _count(h, "acks", await _acknowledgements(h, request))


async def _acknowledgements(h: Hospital, request: Request) -> JSONResponse:
    fault = await _apply_fault(h, "acks")
    if fault is not None:
        return fault
    if not _authorized(request, h):
        return error(401, "unauthorized", "HTTP Basic credentials required", _UNAUTHORIZED_HEADERS)
    try:
        body = AckBody.model_validate_json(await request.body())
    except ValidationError as exc:
        detail = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return error(422, "invalid_body", detail)
    ack = body.model_dump()
    ack["received_at"] = datetime.now(VN_TZ).isoformat(timespec="seconds")
    h.acks.append(ack)
    for r in ack["results"]:
        h.acks_latest[r["id"]] = {**r, "kind": body.kind, "batch": body.batch}
    return JSONResponse({"received": len(body.results)})


# ---------------------------------------------------------------- control


def _hospital_or_404(request: Request, facility: str):
    h = _hospital(request, facility)
    return (h, None) if h else (None, _unknown(facility))


@control_router.get("/{facility}/acks")
async def control_acks(facility: str, request: Request):
    h, err = _hospital_or_404(request, facility)
    return err or {"count": len(h.acks), "latest": h.acks_latest, "all": h.acks}


@control_router.get("/{facility}/expected")
async def control_expected(facility: str, request: Request):
    """id -> intended rule code of the deliberately bad records."""
    h, err = _hospital_or_404(request, facility)
    return err or h.expected()


@control_router.get("/{facility}/manifest")
async def control_manifest(facility: str, request: Request):
    """Per kind: expected, messy (valid), duplicates, resubmitted, and feed sizes."""
    h, err = _hospital_or_404(request, facility)
    if err:
        return err
    return {
        k: {
            **h.manifests.get(k, {}),
            "feed_entries": len(h.feeds[k]),
            "distinct_ids": len({e["id"] for e in h.feeds[k]}),
        }
        for k in KINDS
    }


class FaultBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: int | None = None
    delay_seconds: float = 0.0
    count: int = 1
    retry_after: int | None = None
    target: Literal["feed", "acks"] = "feed"


@control_router.post("/{facility}/faults")
async def control_faults(facility: str, request: Request):
    """Queue a fault: the next `count` requests to the target answer `status` and/or wait."""
    h, err = _hospital_or_404(request, facility)
    if err:
        return err
    try:
        body = FaultBody.model_validate_json(await request.body())
    except ValidationError as exc:
        return error(422, "invalid_body", [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()])
    if body.count < 1 or (body.status is None and not body.delay_seconds):
        return error(422, "invalid_body", "need count >= 1 and a status or delay_seconds")
    h.faults[body.target].append(Fault(body.status, body.delay_seconds, body.count, body.retry_after))
    return {"queued": {t: sum(f.count for f in q) for t, q in h.faults.items()}}


@control_router.delete("/{facility}/faults")
async def control_clear_faults(facility: str, request: Request):
    h, err = _hospital_or_404(request, facility)
    if err:
        return err
    for q in h.faults.values():
        q.clear()
    return {"queued": dict.fromkeys(h.faults, 0)}


@control_router.post("/{facility}/records")
async def control_records(facility: str, request: Request):
    """Upsert envelopes {id, updated_at, record[, kind]}; kind defaults from the id ("-GCS-"/"-GBT-")."""
    h, err = _hospital_or_404(request, facility)
    if err:
        return err
    try:
        envs = await request.json()
    except ValueError:
        return error(422, "invalid_body", "expected a JSON list of envelopes")
    if isinstance(envs, dict):
        envs = [envs]
    results = []
    for i, env in enumerate(envs if isinstance(envs, list) else [None]):
        if not (
            isinstance(env, dict)
            and isinstance(env.get("id"), str)
            and isinstance(env.get("record"), dict)
            and isinstance(env.get("updated_at"), str)
        ):
            return error(422, "invalid_body", f"item {i}: need id, updated_at, record")
        kind = env.get("kind") or next((k for k in KINDS if f"-{k}-" in env["id"]), None)
        if kind not in KINDS:
            kind = "GCS" if "MA_GCS" in env["record"] else "GBT" if "MA_GBT" in env["record"] else None
        if kind is None:
            return error(422, "invalid_body", f"item {i}: cannot tell the kind")
        try:
            parse_ts(env["updated_at"])
        except ValueError:
            return error(422, "invalid_body", f"item {i}: updated_at is not ISO-8601")
        clean = {"id": env["id"], "updated_at": env["updated_at"], "record": env["record"]}
        results.append({"id": env["id"], "kind": kind, "result": h.upsert(kind, clean)})
    return {"upserted": results}


@control_router.get("/{facility}/requests")
async def control_requests(facility: str, request: Request):
    """Requests served: {"feed": n, "acks": n, "by_status": {"feed:200": n, ...}}."""
    h, err = _hospital_or_404(request, facility)
    if err:
        return err
    return {
        "feed": h.requests["feed"],
        "acks": h.requests["acks"],
        "by_status": {k: v for k, v in sorted(h.requests.items()) if ":" in k},
    }
