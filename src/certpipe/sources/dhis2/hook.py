"""DHIS2 tracker API client (2.40, 2.41, 2.42) on the client toolkit: server check, events export, sync import.

Connection `dhis2_default` (HTTP): host = the server's base URL without /api (a context path such as
`https://host/dhis` works). With a login: HTTP Basic; without one, the password is a personal access token sent as
`Authorization: ApiToken <token>`. Extra `{"version": "2.41"}` states the version we expect (a typed setting,
never a header): the server's own version is always read from `/api/system/info` and a mismatch fails the run.

Every run starts with `server()`: version (2.40-2.42 only) and time zone (`serverTimeZoneId`). DHIS2 writes and
reads timestamps in that zone without an offset (dhis2-core `WriteInstantStdSerializer`, `DateUtils.parseDate`).
Only `/api/tracker/*` is used (the legacy `/api/events` is gone in 2.42). Version differences (docs/dhis2.md):
  org-unit mode  2.40 `ouMode`            2.41+ `orgUnitMode` (2.42 silently ignores `ouMode`)
  no paging      2.40 `skipPaging=true`   2.41+ `paging=false`
  event UIDs     2.40 `event=a;b`         2.41+ `events=a,b`
  answer         2.40 `instances`; 2.41 `events` + `pager` (+ flat); 2.42 `events` + `pager`
  import         an invalid UID is E1048 per object up to 2.41; 2.42 refuses the whole request (400)
Bodies are never logged (they carry personal data); errors name the status and the endpoint.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import field_validator

from certpipe.errors import ConfigError, SourceUnavailable
from certpipe.http import HttpSettings, SourceHook
from certpipe.http.auth import BasicAuth, HeaderTokenAuth

EVENTS = "api/tracker/events"
TRACKER = "api/tracker"
SYSTEM_INFO = "api/system/info"
ORG_UNITS = "api/organisationUnits"
PROGRAM_STAGES = "api/programStages"
VERSIONS = ("2.40", "2.41", "2.42")
# request parameters that differ per version (dhis2-core EventRequestParams of each branch)
PARAMS = {
    "2.40": {"ou_mode": "ouMode", "events": ("event", ";"), "no_paging": ("skipPaging", "true")},
    "2.41": {"ou_mode": "orgUnitMode", "events": ("events", ","), "no_paging": ("paging", "false")},
    "2.42": {"ou_mode": "orgUnitMode", "events": ("events", ","), "no_paging": ("paging", "false")},
}
EVENT_FIELDS = "event,status,program,programStage,orgUnit,occurredAt,createdAt,updatedAt,deleted,dataValues"
STAMP = "%Y-%m-%dT%H:%M:%S.%f"


class Dhis2Incompatible(ConfigError):
    """The server is not what this deployment expects (version, time zone, metadata): not retried."""


def short_version(text: Any) -> str:
    """'2.41.3-SNAPSHOT' -> '2.41'; a number from a JSON extra (2.4 for 2.40) is read with two decimals."""
    if isinstance(text, float):
        text = f"{text:.2f}"
    try:
        major, minor = (int(x) for x in str(text).split("-")[0].split(".")[:2])
    except ValueError as e:
        raise ValueError(f"DHIS2 version {text!r} is not understood (expected e.g. 2.41)") from e
    return f"{major}.{minor}"


class Dhis2Settings(HttpSettings):
    system: ClassVar[str] = "DHIS2"
    version: str | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> str | None:
        if v in (None, ""):
            return None
        short = short_version(v)
        if short not in VERSIONS:
            raise ValueError(f"DHIS2 {short} is not supported (supported: {', '.join(VERSIONS)})")
        return short


@dataclass(frozen=True)
class Server:
    """What a run learnt from `/api/system/info`: the version it speaks and the zone of its timestamps."""

    version: str
    full_version: str
    zone_id: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.zone_id)

    def stamp(self, moment: dt.datetime) -> str:
        """An aware moment as the server's wall clock, the form DHIS2 parameters take: 2026-11-18T18:30:00.000."""
        return moment.astimezone(self.zone).replace(tzinfo=None).isoformat(timespec="milliseconds")

    def moment(self, text: str | None) -> dt.datetime | None:
        """A DHIS2 timestamp (server wall clock, or with an offset) as an aware moment; None if unreadable."""
        local = parse_stamp(text)
        if local is None:
            return None
        return local if local.tzinfo else local.replace(tzinfo=self.zone)

    @property
    def params(self) -> dict[str, Any]:
        return PARAMS[self.version]


def parse_stamp(text: str | None) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


@dataclass
class UpdatedKeyset:
    """Events updated in [since, until] ordered by (updatedAt, event), read with a continuation on updatedAt.

    DHIS2 has offset paging only: an event edited while we page moves to the end and every later event shifts one
    place back, so the one at the page boundary would never be read. Instead each request starts at the last
    updatedAt seen (`updatedAfter` is inclusive: `lastupdated >= ?` in every version's JdbcEventStore) and the
    events already handed out at that instant are dropped (by UID, whatever the database's collation). A full page
    all at one instant is read unpaged for that instant, [t, t + 1 ms] (`updatedBefore` is exclusive in 2.40's
    event list, inclusive from 2.41), then reading goes on after the last instant read (DHIS2 keeps milliseconds)."""

    size: int
    since: str
    until: str
    no_paging: tuple[str, str]
    cursor: str | None = None  # updatedAt of the last event handed out
    seen: set[str] = field(default_factory=set)  # events handed out at `cursor`
    pinned: bool = False  # the last request read one instant unpaged
    handed_out: int = 0  # events the last page added

    def first(self) -> dict[str, Any]:
        return self._window(self.since)

    def _window(self, after: str) -> dict[str, Any]:
        return {"updatedAfter": after, "updatedBefore": self.until, "page": 1, "pageSize": self.size}

    def fresh(self, items: list[dict]) -> list[dict]:
        """The events of a page not handed out yet; moves the cursor to the last of them."""
        out: list[dict] = []
        for ev in items:
            key, uid = _key(ev.get("updatedAt")), ev.get("event")
            if self.cursor is not None and (key < _key(self.cursor) or (key == _key(self.cursor) and uid in self.seen)):
                continue
            if self.cursor is None or key != _key(self.cursor):
                self.cursor, self.seen = ev.get("updatedAt"), set()
            self.seen.add(str(uid))
            out.append(ev)
        self.handed_out = len(out)
        return out

    def next(self, body: Any, items: list) -> dict[str, Any] | None:
        if self.pinned:
            self.pinned = False
            later = _key(self.cursor) + dt.timedelta(milliseconds=1)
            return self._window(later.isoformat(timespec="milliseconds"))
        if len(items) < self.size:
            return None
        if _key(items[0].get("updatedAt")) == _key(items[-1].get("updatedAt")):  # a whole page at one instant
            self.pinned = True
            param, value = self.no_paging
            until = (_key(self.cursor) + dt.timedelta(milliseconds=1)).isoformat(timespec="milliseconds")
            return {"updatedAfter": self.cursor, "updatedBefore": until, param: value}
        if not self.handed_out:  # a full page of events already read: the server does not apply updatedAfter
            raise Dhis2Incompatible("DHIS2: paging over updated events does not advance (updatedAfter not applied)")
        return self._window(self.cursor or self.since)


def _key(stamp: str | None) -> dt.datetime:
    moment = parse_stamp(stamp)
    return moment.replace(tzinfo=None) if moment else dt.datetime.min


class Dhis2Hook(SourceHook):
    system = "DHIS2"
    settings_class = Dhis2Settings
    conn_name_attr = "dhis2_conn_id"
    default_conn_name = "dhis2_default"
    hook_name = "DHIS2 (Phần mềm Thống kê y tế)"

    def auth(self) -> httpx.Auth | None:
        """HTTP Basic with a login; without one, the password is a personal access token (`ApiToken`)."""
        s = self.settings
        if s.login:
            return BasicAuth(s.login, s.secret() or "")
        token = s.secret()
        return HeaderTokenAuth(token, "ApiToken") if token else None

    # ------------------------------------------------------------------ the server

    @cached_property
    def server(self) -> Server:
        """Version and time zone from `/api/system/info`, checked: an unsupported version, a version other than the
        connection's `version`, or no readable zone fails the run before anything is read or written."""
        info = self.call("GET", SYSTEM_INFO)
        info = info if isinstance(info, dict) else {}
        full = str(info.get("version") or "")
        try:
            version = short_version(full)
        except ValueError:
            raise SourceUnavailable(f"{self.where}: {SYSTEM_INFO} gives no readable version") from None
        if version not in VERSIONS:
            raise Dhis2Incompatible(f"{self.where}: the server runs DHIS2 {full}; supported: {', '.join(VERSIONS)}")
        expected = getattr(self.settings, "version", None)
        if expected and expected != version:
            raise Dhis2Incompatible(
                f"{self.where}: the server runs DHIS2 {full} but the connection's field 'version' says {expected}; "
                "correct the connection (its version decides which request parameters are sent)"
            )
        zone = str(info.get("serverTimeZoneId") or "")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise Dhis2Incompatible(
                f"{self.where}: {SYSTEM_INFO} gives no usable serverTimeZoneId ({zone[:40]!r})"
            ) from None
        return Server(version=version, full_version=full, zone_id=zone)

    @property
    def version(self) -> str:
        return self.server.version

    # ------------------------------------------------------------------ metadata

    def program_stage(self, stage: str) -> dict:
        """The program stage with its data elements, value types and option sets (metadata API, all versions)."""
        fields = (
            "id,name,program[id],programStageDataElements[compulsory,dataElement[id,code,name,valueType,"
            "optionSet[id,options[code,name]]]]"
        )
        resp = self.send("GET", f"{PROGRAM_STAGES}/{stage}", params={"fields": fields}, accept=(404,))
        if resp.status_code == 404:
            raise Dhis2Incompatible(f"{self.where}: program stage {stage} does not exist on the server")
        body = self._json(resp, PROGRAM_STAGES)
        if not isinstance(body, dict) or not isinstance(body.get("programStageDataElements"), list):
            raise SourceUnavailable(f"{self.where}: {PROGRAM_STAGES} answer has no programStageDataElements")
        return body

    def org_units(self, root: str) -> list[dict]:
        """The org unit and its descendants: [{"id", "code", "level"}] (metadata API: `paging=false` everywhere)."""
        body = self.call(
            "GET", ORG_UNITS, params={"filter": f"path:like:{root}", "fields": "id,code,level", "paging": "false"}
        )
        units = body.get("organisationUnits") if isinstance(body, dict) else None
        if not isinstance(units, list):
            raise SourceUnavailable(f"{self.where}: {ORG_UNITS} answer has no organisationUnits")
        return units

    # ------------------------------------------------------------------ export

    def changed_events(
        self,
        *,
        program: str,
        program_stage: str,
        org_unit: str,
        since: dt.datetime,
        until: dt.datetime,
        page_size: int = 200,
        include_deleted: bool = True,
    ) -> Iterator[list[dict]]:
        """Events of a program stage under an org unit (descendants included) updated in [since, until], page by
        page, each event once, none skipped when stations edit while we read (`UpdatedKeyset`)."""
        server = self.server
        keyset = UpdatedKeyset(page_size, server.stamp(since), server.stamp(until), server.params["no_paging"])
        params = {
            "program": program,
            "programStage": program_stage,
            "orgUnit": org_unit,
            server.params["ou_mode"]: "DESCENDANTS",
            "order": "updatedAt:asc,event:asc",
            "includeDeleted": str(include_deleted).lower(),
            "fields": EVENT_FIELDS,
        }
        for _, items in self.paginate(EVENTS, keyset, params=params, items=("events", "instances")):
            fresh = keyset.fresh(items)  # before the generator resumes: `next()` continues from its cursor
            if fresh:
                yield fresh

    def events_by_uid(self, program: str, uids: list[str], *, chunk: int = 50) -> dict[str, dict]:
        """The current state of the given events (deleted ones included, all fields), by UID."""
        server = self.server
        name, sep = server.params["events"]
        param, value = server.params["no_paging"]
        found: dict[str, dict] = {}
        for i in range(0, len(uids), chunk):
            part = uids[i : i + chunk]
            params = {"program": program, name: sep.join(part), "includeDeleted": "true", param: value}
            body = self.call("GET", EVENTS, params=params)  # every field: an update must send them all back
            items = next((body[k] for k in ("events", "instances") if isinstance(body, dict) and k in body), None)
            if not isinstance(items, list):
                raise SourceUnavailable(f"{self.where}: {EVENTS} answer has no events list")
            wanted = set(part)
            found.update({e["event"]: e for e in items if e.get("event") in wanted})
        return found

    # ------------------------------------------------------------------ import

    def import_events(self, events: list[dict]) -> dict[str, dict]:
        """Synchronous tracker import (atomicMode=OBJECT: valid objects are committed), read per object whatever the
        HTTP status: 200 with errorReports (OBJECT), 409 (errors with status ERROR), or a whole-request 400 (2.42
        refuses the request when one UID is invalid: the batch is split in halves and re-sent down to single
        objects). Returns {uid: {"ok", "codes", "messages"}}; messages may quote values: store them, never log."""
        if not events:
            return {}
        uids = [str(e.get("event") or "") for e in events]
        params = {
            "async": "false",
            "importStrategy": "CREATE_AND_UPDATE",
            "atomicMode": "OBJECT",
            "reportMode": "ERRORS",
        }
        resp = self.send("POST", TRACKER, params=params, json={"events": events}, accept=(400, 409))
        body = self._json(resp, TRACKER)
        if resp.status_code == 400:
            if len(events) > 1:
                half = len(events) // 2
                return {**self.import_events(events[:half]), **self.import_events(events[half:])}
            message = str(body.get("message", "") if isinstance(body, dict) else "")[:500]
            return {uids[0]: {"ok": False, "codes": ["HTTP400"], "messages": [message]}}
        if not isinstance(body, dict) or not ({"validationReport", "bundleReport", "status"} & body.keys()):
            raise SourceUnavailable(f"{self.where}: the answer on {TRACKER} is not an import report")
        return object_outcomes(body, uids)

    def _json(self, resp: httpx.Response, endpoint: str) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise SourceUnavailable(f"{self.where}: the answer on {endpoint} is not JSON (cut off?)") from None


def object_outcomes(report: dict, uids: list[str]) -> dict[str, dict]:
    """Per event UID: {"ok": bool, "codes": [...], "messages": [...]}, from validationReport.errorReports and the
    bundle report's objectReports (both carry the uid; 2.40 adds an index)."""
    errors: dict[str, list[dict]] = {}
    for e in (report.get("validationReport") or {}).get("errorReports") or []:
        if e.get("trackerType", "EVENT") == "EVENT" and e.get("uid"):
            errors.setdefault(str(e["uid"]), []).append(e)
    type_report = ((report.get("bundleReport") or {}).get("typeReportMap") or {}).get("EVENT") or {}
    for o in type_report.get("objectReports") or []:
        for e in o.get("errorReports") or []:
            errors.setdefault(str(o.get("uid")), []).append(e)
    if report.get("status") == "ERROR" and not errors:  # whole-import failure without object detail
        message = str(report.get("message", ""))[:500]
        return {uid: {"ok": False, "codes": ["E9999"], "messages": [message]} for uid in uids}
    return {
        uid: {
            "ok": uid not in errors,
            "codes": sorted({str(e.get("errorCode", "E9999")) for e in errors.get(uid, [])}),
            "messages": [str(e.get("message", ""))[:500] for e in errors.get(uid, [])],
        }
        for uid in uids
    }
