"""Security-server directory and VDXP download links (national portal guide, section V).

- V.1 directory: MACOQUAN (agency) → DSTCODE (the security server that serves its files), refreshed daily into
  `wh.secserver_directory` with every appearance, change and disappearance in `wh.secserver_directory_history`.
  An answer that is empty, not JSON, not the documented shape, or that drops more than `max_shrink` of the current
  mappings is rejected: the directory stays as it was and the refresh fails with the reason.
- V.2 papers look-up: request validation here, the call in `certpipe.sources.secserver.hook.SecServerHook.papers`.
- V.3 download links: `download_link` for a provider's own URL (case 1) and another agency's adapter URL (case 2).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import psycopg
from psycopg.types.json import Jsonb

from certpipe.core.schema import message, reason

REQUIRED_KEYS = ("MACOQUAN", "TENCOQUAN", "DSTCODE")
DSTCODE_RE = re.compile(r"[A-Z]{2}:[A-Z]+:[^:\s]+:[^:\s]+")  # X-Road: instance:class:member:subsystem
DEFAULT_MAX_SHRINK = 0.2
ADAPTER_PREFIX = "/VXPAdapter/RestService/forward"  # VDXP download adapter on a security server (V.3)
_LOCK = "certpipe.secserver_directory"


# ---------------------------------------------------------------- errors


class DirectoryRejected(Exception):
    """The directory was not refreshed; the current one stays. `code` is a rules.json code (SS_DIR_*)."""

    def __init__(self, code: str, detail: str = ""):
        self.code, self.detail = code, detail
        super().__init__(f"{code}: {message(code)}" + (f" ({detail})" if detail else ""))


class LinkError(ValueError):
    """A download link cannot be built. `code` is a rules.json code (SS_LINK_*)."""

    def __init__(self, code: str, detail: str = ""):
        self.code, self.detail = code, detail
        super().__init__(f"{code}: {message(code)}" + (f" ({detail})" if detail else ""))


class PapersRequestInvalid(ValueError):
    """The papers look-up request breaks the V.2 contract; nothing was sent. `reasons`: [{field, code, message}]."""

    def __init__(self, reasons: list[dict]):
        self.reasons = reasons
        super().__init__(
            "Yêu cầu tra cứu giấy tờ kết quả không hợp lệ: "
            + "; ".join(f"{r['field']}: {r['code']} – {r['message']}" for r in reasons)
        )


# ---------------------------------------------------------------- directory (V.1)


@dataclass(frozen=True)
class Entry:
    macoquan: str
    tencoquan: str
    dstcode: str


def parse_directory(body: Any) -> dict[str, Entry]:
    """The documented answer {"result": [{MACOQUAN, TENCOQUAN, DSTCODE}]} → entries by MACOQUAN.

    Raises DirectoryRejected (SS_DIR_SHAPE, SS_DIR_EMPTY, SS_DIR_DSTCODE, SS_DIR_AMBIGUOUS) otherwise."""
    if not isinstance(body, dict) or "result" not in body:
        keys = ", ".join(sorted(map(str, body)))[:200] if isinstance(body, dict) else type(body).__name__
        raise DirectoryRejected("SS_DIR_SHAPE", f"thiếu khóa result; nhận được: {keys}")
    result = body["result"]
    if result is None or result == [] or result == {}:
        raise DirectoryRejected("SS_DIR_EMPTY")
    if not isinstance(result, list):
        raise DirectoryRejected("SS_DIR_SHAPE", "result không phải danh sách")
    out: dict[str, Entry] = {}
    for i, item in enumerate(result):
        if not isinstance(item, dict):
            raise DirectoryRejected("SS_DIR_SHAPE", f"mục {i} không phải đối tượng")
        missing = [k for k in REQUIRED_KEYS if not isinstance(item.get(k), str) or not item[k].strip()]
        if missing:
            raise DirectoryRejected("SS_DIR_SHAPE", f"mục {i} thiếu {', '.join(missing)}")
        entry = Entry(
            item["MACOQUAN"].strip(),
            unicodedata.normalize("NFC", " ".join(item["TENCOQUAN"].split())),
            item["DSTCODE"].strip(),
        )
        if not DSTCODE_RE.fullmatch(entry.dstcode):
            raise DirectoryRejected("SS_DIR_DSTCODE", f"mục {i}, MACOQUAN {entry.macoquan}")
        seen = out.get(entry.macoquan)
        if seen is not None and seen.dstcode != entry.dstcode:
            raise DirectoryRejected("SS_DIR_AMBIGUOUS", f"MACOQUAN {entry.macoquan}")
        out[entry.macoquan] = entry
    return out


def apply_directory(
    conn: psycopg.Connection,
    entries: Mapping[str, Entry],
    *,
    max_shrink: float = DEFAULT_MAX_SHRINK,
    run_id: str | None = None,
    answer: Any = None,
) -> dict:
    """Make `entries` the current directory, recording what appeared, changed, was renamed or disappeared.

    Rejects (DirectoryRejected SS_DIR_TRUNCATED, nothing written) an answer without more than `max_shrink` of
    the current mappings: a truncated answer must not wipe the directory. Returns the refresh's counts.
    """
    if not entries:
        raise DirectoryRejected("SS_DIR_EMPTY")
    if not 0 <= max_shrink <= 1:
        raise ValueError("max_shrink must be between 0 and 1")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_LOCK,))
        current = {
            r[0]: Entry(*r)
            for r in conn.execute("SELECT macoquan, tencoquan, dstcode FROM wh.secserver_directory FOR UPDATE")
        }
        gone = sorted(current.keys() - entries.keys())
        if current and len(gone) / len(current) > max_shrink:
            raise DirectoryRejected(
                "SS_DIR_TRUNCATED",
                (
                    f"thiếu {len(gone)}/{len(current)} cơ quan đang có = {len(gone) / len(current):.0%}, "
                    f"ngưỡng {max_shrink:.0%}; danh mục mới có {len(entries)} cơ quan"
                ),
            )
        new = sorted(entries.keys() - current.keys())
        changed = sorted(k for k in entries.keys() & current.keys() if entries[k].dstcode != current[k].dstcode)
        renamed = sorted(
            k
            for k in entries.keys() & current.keys()
            if entries[k].dstcode == current[k].dstcode and entries[k].tencoquan != current[k].tencoquan
        )
        counts = {
            "received": len(entries),
            "previous": len(current),
            "appeared": len(new),
            "changed": len(changed),
            "renamed": len(renamed),
            "disappeared": len(gone),
            "unchanged": len(entries) - len(new) - len(changed) - len(renamed),
        }
        refresh_id = conn.execute(
            "INSERT INTO wh.secserver_directory_refresh (run_id, status, received, previous, appeared, changed, "
            "renamed, disappeared, unchanged, answer) VALUES (%s, 'applied', %s, %s, %s, %s, %s, %s, %s, %s) "
            "RETURNING refresh_id",
            (
                run_id,
                counts["received"],
                counts["previous"],
                counts["appeared"],
                counts["changed"],
                counts["renamed"],
                counts["disappeared"],
                counts["unchanged"],
                Jsonb(answer) if answer is not None else None,
            ),
        ).fetchone()[0]
        cur = conn.cursor()
        history = (
            "INSERT INTO wh.secserver_directory_history (refresh_id, macoquan, change, dstcode, tencoquan, "
            "old_dstcode, old_tencoquan) VALUES (%s, %s, %s, %s, %s, %s, %s)"
        )
        if new:
            cur.executemany(
                "INSERT INTO wh.secserver_directory (macoquan, tencoquan, dstcode, last_refresh_id) "
                "VALUES (%s, %s, %s, %s)",
                [(k, entries[k].tencoquan, entries[k].dstcode, refresh_id) for k in new],
            )
            cur.executemany(
                history,
                [(refresh_id, k, "appeared", entries[k].dstcode, entries[k].tencoquan, None, None) for k in new],
            )
        if changed:
            cur.executemany(
                "UPDATE wh.secserver_directory SET dstcode = %s, tencoquan = %s, valid_from = now() "
                "WHERE macoquan = %s",
                [(entries[k].dstcode, entries[k].tencoquan, k) for k in changed],
            )
        if renamed:
            cur.executemany(
                "UPDATE wh.secserver_directory SET tencoquan = %s WHERE macoquan = %s",
                [(entries[k].tencoquan, k) for k in renamed],
            )
        if changed or renamed:
            cur.executemany(
                history,
                [
                    (
                        refresh_id,
                        k,
                        "changed" if k in changed else "renamed",
                        entries[k].dstcode,
                        entries[k].tencoquan,
                        current[k].dstcode,
                        current[k].tencoquan,
                    )
                    for k in changed + renamed
                ],
            )
        if gone:
            cur.execute("DELETE FROM wh.secserver_directory WHERE macoquan = ANY(%s)", (gone,))
            cur.executemany(
                history,
                [(refresh_id, k, "disappeared", None, None, current[k].dstcode, current[k].tencoquan) for k in gone],
            )
        cur.execute("UPDATE wh.secserver_directory SET last_seen_at = now(), last_refresh_id = %s", (refresh_id,))
    return {"refresh_id": refresh_id, **counts}


def record_failure(
    conn: psycopg.Connection, exc: DirectoryRejected, *, run_id: str | None = None, answer: Any = None
) -> int:
    status = "failed" if exc.code == "SS_DIR_UNAVAILABLE" else "rejected"
    with conn.transaction():
        return conn.execute(
            "INSERT INTO wh.secserver_directory_refresh (run_id, status, reason_code, reason, answer) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING refresh_id",
            (run_id, status, exc.code, str(exc), Jsonb(answer) if answer is not None else None),
        ).fetchone()[0]


def refresh_directory(
    conn_id: str, dsn: str, *, max_shrink: float = DEFAULT_MAX_SHRINK, run_id: str | None = None
) -> dict:
    """Fetch the directory from our security server and apply it; a rejected answer is recorded, then raised."""
    from certpipe import warehouse
    from certpipe.errors import SourceError, SourceUnavailable
    from certpipe.sources.secserver.hook import SecServerHook

    answer = None
    with warehouse.connect(dsn) as conn:
        conn.autocommit = True
        try:
            try:
                answer = SecServerHook(conn_id).directory()
            except SourceUnavailable as e:
                code = "SS_DIR_NOT_JSON" if isinstance(e.__cause__, ValueError) else "SS_DIR_UNAVAILABLE"
                raise DirectoryRejected(code, str(e)) from e
            except SourceError as e:
                raise DirectoryRejected("SS_DIR_UNAVAILABLE", str(e)) from e
            return apply_directory(conn, parse_directory(answer), max_shrink=max_shrink, run_id=run_id, answer=answer)
        except DirectoryRejected as e:
            record_failure(conn, e, run_id=run_id, answer=answer)
            raise


@dataclass(frozen=True)
class Directory:
    """The current directory, for building links: MACOQUAN → DSTCODE."""

    by_agency: Mapping[str, str]

    @classmethod
    def load(cls, conn: psycopg.Connection) -> Directory:
        return cls(dict(conn.execute("SELECT macoquan, dstcode FROM wh.secserver_directory")))

    @property
    def dstcodes(self) -> frozenset[str]:
        return frozenset(self.by_agency.values())

    def dstcode(self, macoquan: str) -> str:
        code = self.by_agency.get((macoquan or "").strip())
        if code is None:
            raise LinkError("SS_LINK_AGENCY", f"MACOQUAN {macoquan or '(trống)'}")
        return code


# ---------------------------------------------------------------- download links (V.3)


def download_link(file_url: str, directory: Directory, own_base: str, macoquan: str | None = None) -> str:
    """The link to download a paper's file through our own security server (VDXP adapter).

    Case 1, a provider's own URL (https://dichvucong.hagiang.gov.vn/download/124.pdf) with its owner agency's
    MACOQUAN → {own_base}/VXPAdapter/RestService/forward/download/124.pdf?dstcode=<DSTCODE>&providerurl=<origin>.
    Case 2, another agency's adapter URL (http://IP-SS-BNĐP:8080/VXPAdapter/RestService/forward/...?dstcode=...)
    → the same path and query on `own_base`; its dstcode must be in the directory.
    `own_base` is our security server's base URL (the `secserver_default` connection's host).
    """
    try:
        u = urlsplit((file_url or "").strip())
        u.port  # noqa: B018 - validates the port
    except ValueError as e:
        raise LinkError("SS_LINK_URL", "không phân tích được") from e
    if u.scheme.lower() not in ("http", "https") or not u.hostname:
        raise LinkError("SS_LINK_URL", "thiếu http(s):// hoặc tên máy")
    base = own_base.rstrip("/")
    at = u.path.find(ADAPTER_PREFIX + "/")
    if at >= 0:  # case 2
        query = parse_qs(u.query)
        dst, provider = query.get("dstcode", [""])[0], query.get("providerurl", [""])[0]
        if not dst or not provider:
            raise LinkError("SS_LINK_ADAPTER")
        if dst not in directory.dstcodes:
            raise LinkError("SS_LINK_DSTCODE", dst)
        return f"{base}{u.path[at:]}?{u.query}"
    path = quote(u.path, safe="/%:@!$&'()*+,;=-._~")
    if path in ("", "/"):
        raise LinkError("SS_LINK_URL", "thiếu đường dẫn tệp")
    dst = directory.dstcode(macoquan or "")
    host = u.hostname + (f":{u.port}" if u.port else "")
    provider = f"{u.scheme.lower()}://{host}"
    extra = f"{u.query}&" if u.query else ""
    query = f"{extra}dstcode={quote(dst, safe=':')}&providerurl={quote(provider, safe=':/')}"
    return f"{base}{ADAPTER_PREFIX}{path}?{query}"


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
