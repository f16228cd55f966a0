"""The DHIS2 stand-in's state and rules, written from dhis2-core 2.40/2.41/2.42 (see docs/dhis2.md):
server time zone, per-version request parameters, ordering, tracker import validation.

Timestamps are kept as aware UTC moments (milliseconds, as DHIS2 keeps them) and shown as the server's wall clock
without an offset (`WriteInstantStdSerializer`); naive parameters are read in the server's zone.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

PROGRAM, STAGE = "uX3pS8aZHN2", "qgYbmBm4kx8"
UID = re.compile(r"^[A-Za-z][A-Za-z0-9]{10}$")
VERSIONS = {"2.40": "2.40.7", "2.41": "2.41.4", "2.42": "2.42.1"}
# a province with two communes (org unit codes = administrative commune codes)
ORG_UNITS = [
    {"id": "VnHaNoi0001", "code": "01", "level": 2, "path": "/VietNam0001/VnHaNoi0001"},
    {"id": "TytOChoDua1", "code": "00190", "level": 4, "path": "/VietNam0001/VnHaNoi0001/TytOChoDua1"},
    {"id": "TytHoaLac01", "code": "09988", "level": 4, "path": "/VietNam0001/VnHaNoi0001/TytHoaLac01"},
    {"id": "VnHcm000001", "code": "79", "level": 2, "path": "/VietNam0001/VnHcm000001"},
]
OPTION_SETS = {
    "SexMF000001": [("M", "Nam"), ("F", "Nữ")],
    "NoiTuVong01": [("BVH", "Bệnh viện huyện"), ("NHA", "Tại nhà"), ("KHAC", "Khác")],
    "XbbUOlVRCHo": [
        ("R54", "Suy yếu tuổi già tự nhiên"),
        ("I21.9", "Nhồi máu cơ tim cấp"),
        ("I50.9", "Suy tim"),
        ("J18.9", "Viêm phổi"),
        ("C34.9", "Ung thư phổi"),
    ],
}
# (uid, code, name, value type, option set): the register's columns, the ages analytics use, and the pilot's
# extra fields (their UIDs are this server's own: a deployment gives them in the Variable, not in code)
ELEMENTS = [
    ("fcbbx6y83mn", "A6_NGAY_GHI_SO", "Ngày ghi sổ", "DATE", None),
    ("f0wPk4WKCmU", "A6_HO_TEN", "Họ và tên", "TEXT", None),
    ("O24nNmlRpxX", "A6_GIOI_TINH", "Giới tính", "TEXT", "SexMF000001"),
    ("amfixvUrTEW", "A6_NGAY_SINH", "Ngày tháng năm sinh", "DATE", None),
    ("W636zm2n4bX", "A6_GIAY_TO", "ĐDCN / giấy tờ tùy thân", "TEXT", None),
    ("RRoodjfWLoX", "A6_DIA_CHI", "Địa chỉ", "LONG_TEXT", None),
    ("F8ONvz0jpwf", "A6_NGHE", "Nghề nghiệp", "TEXT", None),
    ("VKt28EykKgX", "A6_DAN_TOC", "Dân tộc", "TEXT", None),
    ("j3Yo9Dl5wN5", "A6_NGAY_TV", "Ngày tháng tử vong", "DATE", None),
    ("tfXeGE4u5ok", "A6_NOI_TV", "Nơi tử vong", "TEXT", "NoiTuVong01"),
    ("iEz9szT8t1L", "A6_NGUYEN_NHAN", "Nguyên nhân chính gây tử vong", "TEXT", "XbbUOlVRCHo"),
    ("vwczPFDKv9X", "A6_NHOM_ICD", "Nhóm ICD", "TEXT", None),
    ("ATSqSaZnepy", "A6_GIAY_BAO_TU", "Được cấp giấy báo tử", "BOOLEAN", None),
    ("apLYj7N7izK", "A6_NGUOI_THU_THAP", "Người thu thập", "TEXT", None),
    ("rQuQyPKAX9q", "A6_GHI_CHU", "Ghi chú", "LONG_TEXT", None),
    ("v32efSNbncR", "A6_TUOI_NAM", "Tuổi (năm)", "INTEGER_ZERO_OR_POSITIVE", None),
    ("lzpaZruNgBK", "A6_TUOI_THANG", "Tuổi (tháng)", "INTEGER_ZERO_OR_POSITIVE", None),
    ("lR8ENNJ8S4C", "A6_TUOI_NGAY", "Tuổi (ngày)", "INTEGER_ZERO_OR_POSITIVE", None),
    ("TpDaDangKy1", "TP_DA_DANG_KY", "Tư pháp: đã đăng ký khai tử", "BOOLEAN", None),
    ("TpNgayDk001", "TP_NGAY_DANG_KY", "Tư pháp: ngày đăng ký khai tử", "DATE", None),
    ("TpSoDk00001", "TP_SO_DANG_KY", "Tư pháp: số đăng ký khai tử", "TEXT", None),
    ("TpNguyenNh1", "TP_NGUYEN_NHAN", "Tư pháp: nguyên nhân tử vong", "LONG_TEXT", None),
    ("TpMaNguyen1", "TP_MA_NGUYEN_NHAN", "Tư pháp: mã nguyên nhân", "TEXT", None),
    ("TpTuTuPhap1", "TP_TU_TU_PHAP", "Ghi nhận từ tư pháp", "TRUE_ONLY", None),
]


def _elements() -> dict[str, dict]:
    return {
        uid: {"id": uid, "code": code, "name": name, "valueType": vt, "optionSet": os}
        for uid, code, name, vt, os in ELEMENTS
    }


@dataclass
class Dhis2State:
    version: str = "2.41"
    zone: str = "Asia/Ho_Chi_Minh"
    reported: str | None = None  # the version /api/system/info gives, if not the one spoken (e.g. "2.43.0")
    org_units: list[dict] = field(default_factory=lambda: [dict(u) for u in ORG_UNITS])
    elements: dict[str, dict] = field(default_factory=_elements)  # every data element of the server
    stage_elements: list[str] = field(default_factory=lambda: [e[0] for e in ELEMENTS])
    events: dict[str, dict] = field(default_factory=dict)
    seq: int = 0  # the database's internal id (2.41+ order newest first by it)
    uncomplete: bool = False  # the API user has F_UNCOMPLETE_EVENT
    complete_expiry_days: int = 0  # program's completeEventsExpiryDays (0: never)
    errors: dict[str, str] = field(default_factory=dict)  # event uid -> error code forced on import
    faults: list[dict] = field(default_factory=list)  # [{"status", "count"}] answered before serving
    edits: list[dict] = field(default_factory=list)  # [{"after": n, "events": [...]}]: station edits mid-pull
    exports: int = 0  # GET /api/tracker/events served
    requests: list[dict] = field(default_factory=list)

    # ------------------------------------------------------------------ time

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    def show(self, moment: dt.datetime | None) -> str | None:
        return moment.astimezone(self.tz).replace(tzinfo=None).isoformat(timespec="milliseconds") if moment else None

    def read(self, text: str, *, end_of_day: bool = False) -> dt.datetime:
        """A DHIS2 date parameter: naive = the server's wall clock; a bare date as a day's start (or end)."""
        if len(text) == 10 and end_of_day:
            text += "T23:59:59.999"
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (moment if moment.tzinfo else moment.replace(tzinfo=self.tz)).astimezone(dt.UTC)

    # ------------------------------------------------------------------ events

    def store(self, ev: dict, *, updated: dt.datetime | None = None, replace: bool = False) -> dict:
        """Insert or update an event; dataValues merged (a null value removes one). `replace` (a tracker import
        update): event-level fields not in the payload are cleared, as DHIS2 does ("the payload must include all
        fields of the object you are updating")."""
        stamp = updated or now()
        old = self.events.get(ev["event"])
        if old is None:
            self.seq += 1
            old = {"_id": self.seq, "_created": stamp, "program": PROGRAM, "programStage": STAGE, "deleted": False}
            old["status"] = "ACTIVE"
        values = {d["dataElement"]: d for d in old.get("dataValues", [])}
        for d in ev.get("dataValues") or []:
            if d.get("value") is None:
                values.pop(d["dataElement"], None)
            else:
                values[d["dataElement"]] = {"dataElement": d["dataElement"], "value": str(d["value"])}
        public = {k: v for k, v in ev.items() if k not in ("dataValues", "createdAt", "updatedAt", "completedAt")}
        kept = {k: v for k, v in old.items() if k.startswith("_") or k in ("program", "programStage", "event")}
        new = {**(kept if replace else old), **public, "dataValues": list(values.values()), "_updated": stamp}
        if new.get("status") == "COMPLETED" and old.get("status") != "COMPLETED":
            new["_completed"] = stamp
        self.events[ev["event"]] = new
        return new

    def render(self, ev: dict) -> dict:
        out = {k: v for k, v in ev.items() if not k.startswith("_")}
        out.update(createdAt=self.show(ev["_created"]), updatedAt=self.show(ev["_updated"]))
        if ev.get("_completed"):
            out["completedAt"] = self.show(ev["_completed"])
        return out

    def under(self, root: str | None, mode: str) -> set[str]:
        paths = {u["id"]: u["path"] for u in self.org_units}
        if mode in ("ACCESSIBLE", "CAPTURE", "ALL"):
            return set(paths)
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


def now() -> dt.datetime:
    moment = dt.datetime.now(dt.UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


# ---------------------------------------------------------------------- export: order and fields

ORDERABLE = {
    "updatedAt": lambda e: e["_updated"],
    "createdAt": lambda e: e["_created"],
    "occurredAt": lambda e: e.get("occurredAt") or "",
    "event": lambda e: (e["event"].casefold(), e["event"]),  # the database's collation, not code points
    "status": lambda e: e.get("status") or "",
}


def ordered(version: str, rows: list[dict], order: str | None) -> list[dict]:
    """`order=prop:asc|desc,...` then the internal id descending (JdbcEventStore); without `order`: 2.40 newest
    update first, 2.41+ newest internal id first. Raises ValueError for a property that cannot be ordered by."""
    rows = sorted(rows, key=lambda e: e["_id"], reverse=True)
    if not order:
        return sorted(rows, key=lambda e: e["_updated"], reverse=True) if version == "2.40" else rows
    for part in reversed([p for p in order.split(",") if p]):
        prop, _, direction = part.partition(":")
        if prop not in ORDERABLE:
            raise ValueError(f"Order by property `{prop}` is not supported. Supported are `{', '.join(ORDERABLE)}`")
        rows = sorted(rows, key=ORDERABLE[prop], reverse=direction.lower() == "desc")
    return rows


def select_fields(event: dict, fields: str | None) -> dict:
    """Top-level field filter (`a,b,c[x,y]`, `*`, `!a`); nested selections are kept whole."""
    if not fields:
        return {k: v for k, v in event.items() if k != "relationships"}
    names, depth, current = [], 0, ""
    for ch in fields:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            names.append(current)
            current = ""
        else:
            current += ch
    names.append(current)
    wanted = {n.split("[", 1)[0].strip() for n in names if n and not n.startswith("!")}
    dropped = {n[1:].strip() for n in names if n.startswith("!")}
    keep = set(event) if "*" in wanted else wanted
    return {k: v for k, v in event.items() if k in keep and k not in dropped}


# ---------------------------------------------------------------------- import validation

INTEGER = re.compile(r"^-?\d+$")


def value_problem(value_type: str, value: str) -> str | None:
    """E1302-style check of a value against its data element's value type (None when valid)."""
    checks = {
        "DATE": lambda v: bool(re.match(r"^\d{4}-\d{2}-\d{2}$", v)) and dt.date.fromisoformat(v) is not None,
        "INTEGER": lambda v: bool(INTEGER.match(v)),
        "INTEGER_POSITIVE": lambda v: bool(INTEGER.match(v)) and int(v) > 0,
        "INTEGER_ZERO_OR_POSITIVE": lambda v: bool(INTEGER.match(v)) and int(v) >= 0,
        "BOOLEAN": lambda v: v in ("true", "false"),
        "TRUE_ONLY": lambda v: v == "true",
        "TEXT": lambda v: len(v) <= 50000,
        "LONG_TEXT": lambda v: True,
    }
    try:
        ok = checks.get(value_type, lambda v: True)(value)
    except ValueError:
        ok = False
    return None if ok else f"Value is not a valid {value_type}"


def event_error(st: Dhis2State, ev: dict, strategy: str) -> tuple[str, str] | None:
    """The first validation error of one event (code, message), as dhis2-core's validators report it."""
    uid = str(ev.get("event") or "")
    existing = st.events.get(uid)
    if not UID.match(uid):
        return "E1048", f"Object: `{uid}`, uid: `{uid}`, has an invalid uid format."
    if existing and existing.get("deleted"):
        return "E1082", f"Event: `{uid}`, is already deleted and cannot be modified."
    if existing and strategy == "CREATE":
        return "E1030", f"Event: `{uid}`, already exists."
    if not existing and strategy == "UPDATE":
        return "E1032", f"Event: `{uid}`, do not exist."
    if ev.get("program") != PROGRAM:
        return "E1010", f"Could not find Program: `{ev.get('program')}`, linked to Event."
    if ev.get("programStage") != STAGE:
        return "E1013", f"Could not find ProgramStage: `{ev.get('programStage')}`, linked to Event."
    if ev.get("orgUnit") not in {u["id"] for u in st.org_units}:
        return "E1011", f"Could not find OrganisationUnit: `{ev.get('orgUnit')}`, linked to Event."
    if not ev.get("occurredAt"):
        return "E1031", "Event OccurredAt date is missing."
    if existing and existing.get("status") == "COMPLETED":
        if ev.get("status", "ACTIVE") != "COMPLETED" and not st.uncomplete:
            return "E1083", "User: `sandbox`, is not authorized to modify completed events."
        expiry = dt.timedelta(days=st.complete_expiry_days)
        if st.complete_expiry_days and existing.get("_completed") and now() - existing["_completed"] > expiry:
            return "E1043", f"Event: `{uid}`, completeness date has expired. Not possible to make changes."
    for d in ev.get("dataValues") or []:
        de = st.elements.get(d.get("dataElement", ""))
        if de is None:
            return "E1304", f"DataElement `{d.get('dataElement')}` is not a valid data element"
        if de["id"] not in st.stage_elements:
            return "E1305", f"DataElement `{de['id']}` is not part of ProgramStage `{STAGE}`"
        value = d.get("value")
        if value is None:
            continue
        codes = [c for c, _ in OPTION_SETS.get(de.get("optionSet") or "", [])]
        if codes and str(value) not in codes:
            return "E1125", f"Value `{value}` is not a valid option code in option set `{de['optionSet']}`"
        problem = value_problem(de["valueType"], str(value))
        if problem:
            return "E1302", f"DataElement `{de['id']}` is not valid: `{problem}`"
    if uid in st.errors:
        return st.errors[uid], f"Event: `{uid}`, rejected by the sandbox."
    return None


def stage_metadata(st: Dhis2State) -> dict[str, Any]:
    """GET /api/programStages/{uid}?fields=...programStageDataElements[...]: the stage with its elements."""

    def element(uid: str) -> dict:
        de = dict(st.elements[uid])
        os_id = de.pop("optionSet")
        if os_id:
            de["optionSet"] = {"id": os_id, "options": [{"code": c, "name": n} for c, n in OPTION_SETS[os_id]]}
        return de

    return {
        "id": STAGE,
        "name": "Sổ theo dõi tử vong (A6/YTCS)",
        "program": {"id": PROGRAM},
        "programStageDataElements": [{"compulsory": False, "dataElement": element(u)} for u in st.stage_elements],
    }
