"""DHIS2 tracker API client (2.40, 2.41, 2.42): events export with paging, sync tracker import.

Connection `dhis2_default` (HTTP): host = the server's base URL (without /api). Authentication: with a login,
HTTP Basic; without one, the password is a personal access token sent as `Authorization: ApiToken <token>`.
Extra `{"version": "2.41"}` pins the version (a typed setting, never a header); otherwise it is read once from
`/api/system/info`. A base URL with a context path (`https://host/dhis`) works.
Only `/api/tracker/*` is used (the legacy `/api/events` is gone in 2.42). Version differences handled here:
  org-unit mode  2.40 `ouMode`           2.41+ `orgUnitMode`
  no paging      2.40 `skipPaging=true`  2.41+ `paging=false`
  answer         2.40 `instances` + flat page fields; 2.41 `events` + `pager` (+ flat); 2.42 `events` + `pager`
Bodies are never logged (they carry personal data); errors name the status and the endpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any

import httpx
from pydantic import field_validator

from certpipe.errors import SourceUnavailable
from certpipe.http import HttpSettings, PageNumberPaginator, SourceHook
from certpipe.http.auth import BasicAuth, HeaderTokenAuth

EVENTS = "api/tracker/events"
TRACKER = "api/tracker"
SYSTEM_INFO = "api/system/info"
ORG_UNITS = "api/organisationUnits"
VERSIONS = ("2.40", "2.41", "2.42")


def short_version(text: str) -> str:
    """'2.41.3-SNAPSHOT' -> '2.41'; unknown newer versions speak like 2.42, older like 2.40."""
    try:
        major, minor = (int(x) for x in str(text).split("-")[0].split(".")[:2])
    except ValueError as e:
        raise ValueError(f"DHIS2 version {text!r} is not understood") from e
    return "2.40" if (major, minor) <= (2, 40) else ("2.41" if (major, minor) == (2, 41) else "2.42")


class Dhis2Settings(HttpSettings):
    system = "DHIS2"
    version: str | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> str | None:
        return None if v in (None, "") else short_version(str(v))


def _more_pages(body: Any) -> bool | None:
    """From the pager (2.41+: `pager`, 2.40: flat fields): more pages after this one? None when not said."""
    pager = body.get("pager") if isinstance(body.get("pager"), dict) else body
    count, page = pager.get("pageCount"), pager.get("page")
    if count is None or page is None:
        return None
    return int(page) < int(count)


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

    @cached_property
    def version(self) -> str:
        pinned = getattr(self.settings, "version", None)
        if pinned:
            return pinned
        info = self.call("GET", SYSTEM_INFO)
        try:
            return short_version(info.get("version", "") if isinstance(info, dict) else "")
        except ValueError as e:
            raise SourceUnavailable(f"{self.where}: {SYSTEM_INFO} gives no version") from e

    # ------------------------------------------------------------------ export

    def event_params(
        self,
        *,
        program: str,
        org_unit: str,
        updated_after: str,
        updated_before: str,
        include_deleted: bool = True,
        program_stage: str | None = None,
    ) -> dict:
        params = {
            "program": program,
            "orgUnit": org_unit,
            "updatedAfter": updated_after,
            "updatedBefore": updated_before,
            "order": "updatedAt:asc,event:asc",
            "includeDeleted": str(include_deleted).lower(),
            ("ouMode" if self.version == "2.40" else "orgUnitMode"): "DESCENDANTS",
        }
        if program_stage:
            params["programStage"] = program_stage
        return params

    def event_pages(self, *, page_size: int = 200, **query: Any) -> Iterator[list[dict]]:
        """Events of a program under an org unit updated in [updated_after, updated_before), page by page.
        The fixed upper bound keeps pages from drifting; the last page is the first one shorter than pageSize
        (totals are not requested: expensive) or the one at pageCount when the server sends it."""
        paginator = PageNumberPaginator(page_size, size_param="pageSize", has_more=_more_pages)
        for _, items in self.paginate(
            EVENTS, paginator, params=self.event_params(**query), items=("events", "instances")
        ):
            yield items

    def org_units(self, root: str) -> list[dict]:
        """The org unit and its descendants: [{"id", "code", "level"}] (metadata API: `paging=false` everywhere)."""
        body = self.call(
            "GET", ORG_UNITS, params={"filter": f"path:like:{root}", "fields": "id,code,level", "paging": "false"}
        )
        units = body.get("organisationUnits") if isinstance(body, dict) else None
        if not isinstance(units, list):
            raise SourceUnavailable(f"{self.where}: {ORG_UNITS} answer has no organisationUnits")
        return units

    # ------------------------------------------------------------------ import

    def import_events(self, events: list[dict]) -> dict:
        """Synchronous tracker import, one report per object (atomicMode=OBJECT: valid objects are committed).

        Returns the ImportReport, also when it comes with 409 (an import with errors)."""
        params = {
            "async": "false",
            "importStrategy": "CREATE_AND_UPDATE",
            "atomicMode": "OBJECT",
            "reportMode": "ERRORS",
        }
        report = self.call("POST", TRACKER, params=params, json={"events": events}, accept=(409,))
        if not isinstance(report, dict) or not ({"validationReport", "bundleReport", "status"} & report.keys()):
            raise SourceUnavailable(f"{self.where}: the import answer on {TRACKER} is not an import report")
        return report


def object_outcomes(report: dict, uids: list[str]) -> dict[str, dict]:
    """Per event UID: {"ok": bool, "codes": [...], "messages": [...]}, from validationReport.errorReports and the
    bundle report's objectReports (2.41+ lists objects in request order without an index; both carry the uid)."""
    errors: dict[str, list[dict]] = {}
    for e in (report.get("validationReport") or {}).get("errorReports") or []:
        if e.get("trackerType", "EVENT") == "EVENT" and e.get("uid"):
            errors.setdefault(e["uid"], []).append(e)
    type_report = ((report.get("bundleReport") or {}).get("typeReportMap") or {}).get("EVENT") or {}
    for o in type_report.get("objectReports") or []:
        for e in o.get("errorReports") or []:
            errors.setdefault(o.get("uid"), []).append(e)
    if report.get("status") == "ERROR" and not errors:  # whole-import failure without object detail
        return {
            uid: {"ok": False, "codes": ["E9999"], "messages": [str(report.get("message", ""))[:500]]} for uid in uids
        }
    return {
        uid: {
            "ok": uid not in errors,
            "codes": sorted({str(e.get("errorCode", "E9999")) for e in errors.get(uid, [])}),
            "messages": [str(e.get("message", ""))[:500] for e in errors.get(uid, [])],
        }
        for uid in uids
    }
