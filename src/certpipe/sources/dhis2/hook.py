"""DHIS2 tracker API client (2.40, 2.41, 2.42): events export with paging, sync tracker import.

Connection `dhis2_default` (HTTP): host = the server's base URL (without /api). Authentication: with a login,
HTTP Basic; without one, the password is a personal access token sent as `Authorization: ApiToken <token>`.
Extra `{"version": "2.41"}` pins the version; otherwise it is read once from `/api/system/info`.
Only `/api/tracker/*` is used (the legacy `/api/events` is gone in 2.42). Version differences handled here:
  org-unit mode  2.40 `ouMode`           2.41+ `orgUnitMode`
  no paging      2.40 `skipPaging=true`  2.41+ `paging=false`
  answer         2.40 `instances` + flat page fields; 2.41 `events` + `pager` (+ flat); 2.42 `events` + `pager`
Bodies are never logged (they carry personal data); errors name the status and the endpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import requests

from certpipe.errors import SourceRejected, SourceUnavailable
from certpipe.http.hook import RetryingHttpHook

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


class Dhis2Hook(RetryingHttpHook):
    conn_name_attr = "dhis2_conn_id"
    default_conn_name = "dhis2_default"
    conn_type = "http"
    hook_name = "DHIS2 (Phần mềm Thống kê y tế)"
    source_label = "DHIS2"

    def __init__(self, conn_id: str = default_conn_name, **kwargs: Any):
        super().__init__(conn_id, **kwargs)
        self._version: str | None = None
        self._token: str | None = None
        conn = self.get_connection(conn_id)
        if not conn.login and conn.password:  # personal access token
            self._token = conn.password
            self.auth_type = lambda *_: None
        pinned = (conn.extra_dejson or {}).get("version")
        if pinned:
            self._version = short_version(pinned)

    def run(
        self,
        endpoint: str | None = None,
        data: Any = None,
        headers: dict | None = None,
        extra_options: dict | None = None,
        **request_kwargs: Any,
    ) -> requests.Response:
        headers = {"Accept": "application/json", **(headers or {})}
        if self._token:
            headers["Authorization"] = f"ApiToken {self._token}"
        return super().run(endpoint, data, headers, extra_options, **request_kwargs)

    @property
    def version(self) -> str:
        if self._version is None:
            info = self.call("GET", SYSTEM_INFO)
            self._version = short_version(info.get("version", "") if isinstance(info, dict) else "")
        return self._version

    # ------------------------------------------------------------------ export

    def event_params(
        self,
        *,
        program: str,
        org_unit: str,
        updated_after: str,
        updated_before: str,
        include_deleted: bool = True,
        page_size: int = 200,
        program_stage: str | None = None,
    ) -> dict:
        params = {
            "program": program,
            "orgUnit": org_unit,
            "updatedAfter": updated_after,
            "updatedBefore": updated_before,
            "order": "updatedAt:asc,event:asc",
            "pageSize": page_size,
            "includeDeleted": str(include_deleted).lower(),
            ("ouMode" if self.version == "2.40" else "orgUnitMode"): "DESCENDANTS",
        }
        if program_stage:
            params["programStage"] = program_stage
        return params

    def event_pages(self, **query: Any) -> Iterator[list[dict]]:
        """Events of a program under an org unit updated in [updated_after, updated_before), page by page.
        The fixed upper bound keeps pages from drifting; the last page is the first one shorter than pageSize
        (totals are not requested: expensive) or the one at pageCount when the server sends it."""
        params = self.event_params(**query)
        size = params["pageSize"]
        page = 0
        while True:
            page += 1
            body = self.call("GET", EVENTS, params={**params, "page": page})
            if not isinstance(body, dict):
                raise SourceUnavailable(f"DHIS2 {self.http_conn_id}: page {page} of {EVENTS} is not an object")
            items = body.get("events", body.get("instances"))
            if not isinstance(items, list):
                raise SourceUnavailable(f"DHIS2 {self.http_conn_id}: page {page} of {EVENTS} has no events")
            pager = body.get("pager") if isinstance(body.get("pager"), dict) else body
            yield items
            count = pager.get("pageCount")
            if len(items) < size or not items or (count is not None and page >= int(count)):
                return

    def org_units(self, root: str) -> list[dict]:
        """The org unit and its descendants: [{"id", "code", "level"}] (metadata API: `paging=false` everywhere)."""
        body = self.call(
            "GET", ORG_UNITS, params={"filter": f"path:like:{root}", "fields": "id,code,level", "paging": "false"}
        )
        units = body.get("organisationUnits") if isinstance(body, dict) else None
        if not isinstance(units, list):
            raise SourceUnavailable(f"DHIS2 {self.http_conn_id}: {ORG_UNITS} answer has no organisationUnits")
        return units

    # ------------------------------------------------------------------ import

    def import_events(self, events: list[dict]) -> dict:
        """Synchronous tracker import, one report per object (atomicMode=OBJECT: valid objects are committed).

        Returns the ImportReport. A 409 carries the report of an import with errors; it is returned, not raised."""
        params = {
            "async": "false",
            "importStrategy": "CREATE_AND_UPDATE",
            "atomicMode": "OBJECT",
            "reportMode": "ERRORS",
        }
        try:
            # HttpHook sends `data` of a POST as the body: the parameters go in the query string
            return self.call("POST", f"{TRACKER}?{urlencode(params)}", json={"events": events})
        except SourceRejected as e:
            if e.status != 409 or self.last_conflict is None:
                raise
            return self.last_conflict

    last_conflict: dict | None = None

    def _error_detail(self, resp: requests.Response) -> str:
        # a 409 import report is kept for import_events; messages may quote values, so none go into errors
        self.last_conflict = None
        if resp.status_code == 409:
            try:
                body = resp.json()
            except ValueError:
                body = None
            if isinstance(body, dict) and ("validationReport" in body or "bundleReport" in body):
                self.last_conflict = body
        return ""


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
