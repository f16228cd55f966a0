"""Papers look-up through our security server (national portal guide, section V.2): the request's validation
before anything is sent, and the portal's answer."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from certpipe.core.schema import message, reason
from certpipe.errors import SourceError


class PapersRequestInvalid(ValueError):
    """The papers look-up request breaks the V.2 contract; nothing was sent. `reasons`: [{field, code, message}]."""

    def __init__(self, reasons: list[dict]):
        self.reasons = reasons
        super().__init__(
            "Yêu cầu tra cứu giấy tờ kết quả không hợp lệ: "
            + "; ".join(f"{r['field']}: {r['code']} – {r['message']}" for r in reasons)
        )


class PapersError(SourceError):
    """The portal answered the papers look-up with errorCode != 0 (or an answer without the documented shape).

    The message names the errorCode only; the portal's own message is kept in `server_message` for the caller.
    """

    def __init__(self, code: str, error_code: str | None = None, server_message: str | None = None):
        self.code, self.error_code, self.server_message = code, error_code, server_message
        detail = f" (errorCode={error_code})" if error_code is not None else ""
        super().__init__(f"{code}: {message(code)}{detail}")


# ---------------------------------------------------------------- papers look-up request (V.2)

PAPERS_FIELDS = (
    "MaThuTuc",
    "DanhSachDanhMucKetQua",
    "SoDinhDanhChuSoHuu",
    "HoTenNguoiYeuCau",
    "KenhThucHien",
    "SoDinhDanhNguoiYeuCau",
)
CHANNELS = {"1": "trực tiếp", "2": "trực tuyến", "3": "bưu chính công ích"}
_PROCEDURE = re.compile(r"\d+(\.[0-9A-Za-z]+)+")
_OWNER_ID = re.compile(r"\d{9}|\d{12}|\d{10}(-\d{3})?")
_PERSON_ID = re.compile(r"\d{9}|\d{12}")


def validate_papers_request(req: Any) -> dict:
    """Check a DanhSachGiayToKetQua look-up request against V.2; returns the body to send or raises
    PapersRequestInvalid with every reason (field, code, Vietnamese message, never a value)."""
    if not isinstance(req, Mapping):
        raise PapersRequestInvalid([reason(None, "NOT_A_RECORD")])
    reasons = [reason(k, "UNKNOWN_FIELD") for k in req if k not in PAPERS_FIELDS]

    def text(name: str, required: bool, src: Mapping = req, label: str | None = None) -> str | None:
        v = src.get(name)
        if v is None or (isinstance(v, str) and not v.strip()):
            if required:
                reasons.append(reason(label or name, "REQUIRED"))
            return None
        if not isinstance(v, str):
            reasons.append(reason(label or name, "NOT_TEXT"))
            return None
        return unicodedata.normalize("NFC", v.strip())

    procedure = text("MaThuTuc", True)
    if procedure and not _PROCEDURE.fullmatch(procedure):
        reasons.append(reason("MaThuTuc", "CODE_FORMAT"))
    results = req.get("DanhSachDanhMucKetQua")
    wanted: list[dict] = []
    if results is None:
        reasons.append(reason("DanhSachDanhMucKetQua", "REQUIRED"))
    elif not isinstance(results, list) or not results:
        reasons.append(reason("DanhSachDanhMucKetQua", "PAPERS_RESULTS"))
    else:
        for i, item in enumerate(results):
            where = f"DanhSachDanhMucKetQua[{i}]"
            if not isinstance(item, Mapping):
                reasons.append(reason(where, "PAPERS_RESULTS"))
                continue
            reasons.extend(reason(f"{where}.{k}", "UNKNOWN_FIELD") for k in item if k not in ("MaKetQua", "SoKyHieu"))
            code = text("MaKetQua", True, item, f"{where}.MaKetQua")
            number = text("SoKyHieu", False, item, f"{where}.SoKyHieu")
            wanted.append({"MaKetQua": code, "SoKyHieu": number or ""})
    owner = text("SoDinhDanhChuSoHuu", True)
    if owner and not _OWNER_ID.fullmatch(owner):
        reasons.append(reason("SoDinhDanhChuSoHuu", "PAPERS_OWNER_ID"))
    officer_name = text("HoTenNguoiYeuCau", False)
    channel = text("KenhThucHien", True)
    if channel and channel not in CHANNELS:
        reasons.append(reason("KenhThucHien", "PAPERS_CHANNEL"))
    officer_id = text("SoDinhDanhNguoiYeuCau", False)
    if officer_id and not _PERSON_ID.fullmatch(officer_id):
        reasons.append(reason("SoDinhDanhNguoiYeuCau", "PAPERS_OFFICER_ID"))
    if channel in ("1", "3"):
        reasons.extend(
            reason(f, "PAPERS_OFFICER")
            for f, v in (("SoDinhDanhNguoiYeuCau", officer_id), ("HoTenNguoiYeuCau", officer_name))
            if not v
        )
    if reasons:
        raise PapersRequestInvalid(reasons)
    body = {"MaThuTuc": procedure, "DanhSachDanhMucKetQua": wanted, "SoDinhDanhChuSoHuu": owner}
    if officer_name:
        body["HoTenNguoiYeuCau"] = officer_name
    body["KenhThucHien"] = channel
    if officer_id:
        body["SoDinhDanhNguoiYeuCau"] = officer_id
    return body


def parse_papers(answer: Any) -> list[dict]:
    """errorCode 0 → the DanhSachGiayToKetQua list (empty when the portal holds nothing); else PapersError."""
    if not isinstance(answer, dict) or answer.get("errorCode") is None:
        raise PapersError("PAPERS_ANSWER")
    error_code = str(answer["errorCode"]).strip()
    if error_code != "0":
        text = answer.get("message")
        raise PapersError("PAPERS_ERROR", error_code[:50], text[:500] if isinstance(text, str) else None)
    result = answer.get("result")
    papers = result.get("DanhSachGiayToKetQua") if isinstance(result, dict) else result
    if papers is None:
        return []
    if not isinstance(papers, list) or not all(isinstance(p, dict) for p in papers):
        raise PapersError("PAPERS_ANSWER")
    return papers
