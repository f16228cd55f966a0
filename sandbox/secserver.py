"""Security-server stand-in (national portal guide, section V): our own agency's XRD / VDXP adapter.

Base URL {server}/secserver (the host of the `secserver_default` connection).
  POST /secserver/XrdAdapter/RestService/forward/mapi/call  {"session", "madonvi", "service": "LayDanhMucSSTaiTep"}
       → {"result": [{"MACOQUAN", "TENCOQUAN", "DSTCODE"}]}                     (V.1; 401 bad session/madonvi)
  POST /secserver/XrdAdapter/RestService/forward/bndp/public/v1/user/papers?dstcode=&providerurl=
       Authorization: <token>; body per V.2 → {"errorCode", "message", "signature", "result": {...}}  (V.2)
  GET  /secserver/VXPAdapter/RestService/forward/{path}?dstcode=&providerurl=  → the file (synthetic bytes) (V.3)
Credentials: madonvi "H46", session and papers token "sandbox-session".
Control (no auth), under /_control/secserver: reset, directory (GET/PUT), papers (GET/PUT), faults (POST/DELETE),
requests (GET). A sandbox-wide POST /_control/reset also resets this stand-in.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from sandbox import faults

MADONVI = "H46"
SESSION = "sandbox-session"
SERVICE = "LayDanhMucSSTaiTep"
BASE = "/secserver"
CONTROL = "/_control/secserver"

# The guide's sample answer (V.1), plus Hà Giang (V.3 example) and the national portal (V.2 example).
GUIDE_DIRECTORY = [
    {"MACOQUAN": "000.00.00.G01", "TENCOQUAN": "Bộ Công an", "DSTCODE": "VN:COM:0108212803:DVCTYBXDNTL"},
    {"MACOQUAN": "000.00.00.G02", "TENCOQUAN": "Bộ Công thương", "DSTCODE": "VN:GOV:000.00.00.G02:tmdtktsbctss01"},
    {"MACOQUAN": "000.00.00.G04", "TENCOQUAN": "Bộ Giao thông vận tải", "DSTCODE": "VN:GOV:000.00.00.G04:g04ss01"},
    {"MACOQUAN": "000.00.00.G03", "TENCOQUAN": "Bộ Giáo dục và Đào tạo", "DSTCODE": "VN:GOV:000.00.00.G03:g03ss01"},
    {"MACOQUAN": "000.00.00.G06", "TENCOQUAN": "Bộ Khoa học và Công nghệ", "DSTCODE": "VN:GOV:000.00.00.G06:g06ss01"},
    {
        "MACOQUAN": "000.00.00.G07",
        "TENCOQUAN": "Bộ Lao động - Thương binh và Xã hội",
        "DSTCODE": "VN:GOV:000.00.00.G07:g07svc01",
    },
    {"MACOQUAN": "000.00.00.G08", "TENCOQUAN": "Bộ Ngoại giao", "DSTCODE": "VN:GOV:000.00.00.G08:g08ss01"},
    {
        "MACOQUAN": "000.00.00.H22",
        "TENCOQUAN": "UBND tỉnh Hà Giang",
        "DSTCODE": "VN:GOV:000.00.00.H22:hagiangvdxpsvc01",
    },
    {
        "MACOQUAN": "000.00.00.G22",
        "TENCOQUAN": "Văn phòng Chính phủ",
        "DSTCODE": "VN:GOV:000.00.00.G22:vpccpdvcqgsub01",
    },
]

_FILE = "1662977948612_QĐXP Lê Thành Bắc_signed_signed_sign.pdf"
GUIDE_PAPERS_ANSWER = {  # the guide's sample answer (V.2)
    "errorCode": "0",
    "message": "Successfully",
    "signature": "Signature",
    "result": {
        "DanhSachGiayToKetQua": [
            {
                "MaKetQua": "000.00.00.G01-KQ0266",
                "TenGiayTo": "Giấy khai sinh",
                "SoKyHieu": "123456",
                "CoQuanChuQuan": "G22.99",
                "DanhSachTepDinhKem": [{"TenFile": _FILE, "DuongDan": "https://abc.gov.vn/123.pdf"}],
            },
            {
                "MaKetQua": "000.00.00.G01-KQ0266",
                "TenGiayTo": "Giấy chứng minh nhân dân",
                "SoKyHieu": "A098888",
                "CoQuanChuQuan": "G22.99",
                "DanhSachTepDinhKem": [{"TenFile": _FILE, "DuongDan": "https://abc.gov.vn/124.pdf"}],
            },
        ]
    },
}

Target = Literal["directory", "papers", "download"]
Answer = Literal["empty", "truncated", "missing_keys", "not_json", "broken_json", "no_result", "raw"]


def error(status: int, err: str, detail: Any = "") -> JSONResponse:
    return JSONResponse({"error": err, "detail": detail}, status_code=status)


class FaultBody(BaseModel):
    """The next `count` requests to `target` answer `status`, wait `delay_seconds`, and/or get a bad `answer`:
    empty ({"result": []}), truncated (the first `keep` share), missing_keys (one entry without DSTCODE),
    not_json (an HTML page), broken_json (the guide's own sample, cut JSON), no_result ({"errorCode", "message"}),
    raw (`body` verbatim)."""

    model_config = ConfigDict(extra="forbid")
    target: Target = "directory"
    status: int | None = None
    delay_seconds: float = 0.0
    answer: Answer | None = None
    keep: float = 0.5
    body: str | None = None
    count: int = 1


@dataclass
class SecServerState:
    epoch: Any = None  # the sandbox's HIS state when built: a sandbox-wide reset rebuilds this one too
    directory: list = field(default_factory=lambda: copy.deepcopy(GUIDE_DIRECTORY))
    papers_answer: Any = field(default_factory=lambda: copy.deepcopy(GUIDE_PAPERS_ANSWER))
    faults: dict[str, list[FaultBody]] = field(default_factory=lambda: {"directory": [], "papers": [], "download": []})
    requests: Counter = field(default_factory=Counter)
    last: dict[str, dict] = field(default_factory=dict)


def _state(request: Request) -> SecServerState:
    app_state = request.app.state
    epoch = getattr(app_state, "his", None)
    st = getattr(app_state, "secserver", None)
    if st is None or st.epoch is not epoch:
        st = app_state.secserver = SecServerState(epoch=epoch)
    return st


router = APIRouter(tags=["secserver"])


def _bad_answer(st: SecServerState, fault: FaultBody) -> Response:
    if fault.answer == "empty":
        return JSONResponse({"result": []})
    if fault.answer == "truncated":
        return JSONResponse({"result": st.directory[: int(len(st.directory) * fault.keep)]})
    if fault.answer == "missing_keys":
        entries = copy.deepcopy(st.directory)
        entries[len(entries) // 2].pop("DSTCODE", None)
        return JSONResponse({"result": entries})
    if fault.answer == "not_json":
        return Response("<html><body><h1>502 Bad Gateway</h1></body></html>", media_type="text/html")
    if fault.answer == "broken_json":  # like the guide's sample: the list is closed by "}" instead of "]}"
        text = json.dumps({"result": st.directory}, ensure_ascii=False, indent=2)
        cut = text.rfind("]")
        return Response(text[:cut] + text[cut + 1 :], media_type="application/json")
    if fault.answer == "no_result":
        return JSONResponse({"errorCode": "99", "message": "Phiên làm việc không hợp lệ"})
    return Response(fault.body or "", media_type="application/json")


async def _fault(st: SecServerState, target: str) -> Response | None:
    fault = await faults.take(st.faults[target])
    if fault is None:
        return None
    if (resp := faults.status_error(fault, target)) is not None:
        return resp
    if fault.answer:
        return _bad_answer(st, fault)
    return None


def _arrived(request: Request, target: str) -> SecServerState:
    st = _state(request)
    st.requests[target] += 1  # on arrival: a request the client gave up on (timeout) still counts
    return st


def _count(st: SecServerState, target: str, resp: Response) -> Response:
    st.requests[f"{target}:{resp.status_code}"] += 1
    return resp


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        return None


# ---------------------------------------------------------------- V.1 directory


@router.post(f"{BASE}/XrdAdapter/RestService/forward/mapi/call")
async def mapi_call(request: Request):
    st = _arrived(request, "directory")
    return _count(st, "directory", await _mapi_call(st, request))


async def _mapi_call(st: SecServerState, request: Request) -> Response:
    body = await _json(request)
    st.last["directory"] = {
        "authorization_header": "authorization" in request.headers,
        "content_type": request.headers.get("content-type"),
        "keys": sorted(body) if isinstance(body, dict) else None,
    }
    fault = await _fault(st, "directory")
    if fault is not None:
        return fault
    if not isinstance(body, dict):
        return error(400, "invalid_body", "expected a JSON object")
    if body.get("service") != SERVICE:
        return error(400, "unknown_service", f"service must be {SERVICE}")
    if body.get("session") != SESSION or body.get("madonvi") != MADONVI:
        return error(401, "unauthorized", "invalid session or madonvi")
    return JSONResponse({"result": st.directory})


# ---------------------------------------------------------------- V.2 papers


@router.post(f"{BASE}/XrdAdapter/RestService/forward/bndp/public/v1/user/papers")
async def papers(request: Request):
    st = _arrived(request, "papers")
    return _count(st, "papers", await _papers(st, request))


async def _papers(st: SecServerState, request: Request) -> Response:
    body = await _json(request)
    st.last["papers"] = {
        "query": dict(request.query_params),
        "query_string": request.url.query,
        "body": body,
        "authorized": request.headers.get("authorization") == SESSION,
    }
    fault = await _fault(st, "papers")
    if fault is not None:
        return fault
    if request.headers.get("authorization") != SESSION:
        return error(401, "unauthorized", "invalid Authorization token")
    dst, provider = request.query_params.get("dstcode"), request.query_params.get("providerurl")
    if not provider or dst not in {e.get("DSTCODE") for e in st.directory}:
        return error(400, "unknown_dstcode", "dstcode not in the directory or providerurl missing")
    required = ("MaThuTuc", "DanhSachDanhMucKetQua", "SoDinhDanhChuSoHuu", "KenhThucHien")
    if not isinstance(body, dict) or any(not body.get(k) for k in required):
        return JSONResponse({"errorCode": "1", "message": "Dữ liệu đầu vào không hợp lệ", "signature": ""})
    return JSONResponse(st.papers_answer)


# ---------------------------------------------------------------- V.3 downloads


@router.get(f"{BASE}/VXPAdapter/RestService/forward/{{path:path}}")
async def download(path: str, request: Request):
    st = _arrived(request, "download")
    return _count(st, "download", await _download(st, path, request))


async def _download(st: SecServerState, path: str, request: Request) -> Response:
    st.last["download"] = {"path": path, "query": dict(request.query_params)}
    fault = await _fault(st, "download")
    if fault is not None:
        return fault
    dst, provider = request.query_params.get("dstcode"), request.query_params.get("providerurl")
    if not provider or dst not in {e.get("DSTCODE") for e in st.directory}:
        return error(404, "unknown_dstcode", "dstcode not in the directory or providerurl missing")
    return Response(f"%PDF-sandbox {dst} {provider}/{path}".encode(), media_type="application/pdf")


# ---------------------------------------------------------------- control


@router.post(f"{CONTROL}/reset", tags=["control"])
async def control_reset(request: Request):
    request.app.state.secserver = SecServerState(epoch=getattr(request.app.state, "his", None))
    return {"directory": len(request.app.state.secserver.directory)}


@router.get(f"{CONTROL}/directory", tags=["control"])
async def control_get_directory(request: Request):
    return _state(request).directory


@router.put(f"{CONTROL}/directory", tags=["control"])
async def control_set_directory(request: Request):
    """Replace the directory the security server answers: a JSON list of {MACOQUAN, TENCOQUAN, DSTCODE}
    (not checked, so a test can serve bad entries)."""
    body = await _json(request)
    if not isinstance(body, list):
        return error(422, "invalid_body", "expected a JSON list of entries")
    _state(request).directory = body
    return {"directory": len(body)}


@router.get(f"{CONTROL}/papers", tags=["control"])
async def control_get_papers(request: Request):
    return _state(request).papers_answer


@router.put(f"{CONTROL}/papers", tags=["control"])
async def control_set_papers(request: Request):
    """Replace the answer to every valid papers look-up (any JSON, served verbatim)."""
    body = await _json(request)
    if body is None:
        return error(422, "invalid_body", "expected JSON")
    _state(request).papers_answer = body
    return {"ok": True}


@router.post(f"{CONTROL}/faults", tags=["control"])
async def control_faults(request: Request):
    try:
        fault = FaultBody.model_validate_json(await request.body())
    except ValidationError as exc:
        return error(422, "invalid_body", [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()])
    if fault.count < 1 or not (fault.status or fault.delay_seconds or fault.answer):
        return error(422, "invalid_body", "need count >= 1 and a status, delay_seconds or answer")
    st = _state(request)
    st.faults[fault.target].append(fault)
    return {"queued": {t: sum(f.count for f in q) for t, q in st.faults.items()}}


@router.delete(f"{CONTROL}/faults", tags=["control"])
async def control_clear_faults(request: Request):
    st = _state(request)
    for q in st.faults.values():
        q.clear()
    return {"queued": dict.fromkeys(st.faults, 0)}


@router.get(f"{CONTROL}/requests", tags=["control"])
async def control_requests(request: Request):
    """Requests served per target and status, and the last request of each target (as received)."""
    st = _state(request)
    return {"counts": dict(sorted(st.requests.items())), "last": st.last}
