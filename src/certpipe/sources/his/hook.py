"""Client for a hospital HIS certificate feed (solution 1): one Airflow connection per hospital.

Feed contract (v1), relative to the connection's host URL:
  GET  api/v1/certificates?kind=GCS|GBT&updated_since=<ISO-8601>&page=N&page_size=M
       → {"items": [{"id", "updated_at", "record": {GIAYCHUNGSINH | GIAYBAOTU fields}}], "has_more": bool, ...}
  POST api/v1/acknowledgements  {"kind", "batch", "results": [{"id", "status", "outcome", "certificate", "errors"}]}
Authentication: the connection's login/password (HTTP Basic).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from certpipe.errors import SourceUnavailable
from certpipe.http.hook import RetryingHttpHook


class HisHook(RetryingHttpHook):
    conn_name_attr = "his_conn_id"
    default_conn_name = "his_default"
    conn_type = "http"
    hook_name = "Hospital HIS certificate feed"
    source_label = "HIS"

    def pages(self, kind: str, updated_since: dt.datetime | None, page_size: int = 500) -> Iterator[list[dict]]:
        """Yield the feed page by page, oldest change first."""
        page = 1
        while True:
            params = {"kind": kind, "page": page, "page_size": page_size}
            if updated_since is not None:
                params["updated_since"] = updated_since.isoformat()
            body = self.call("GET", "api/v1/certificates", params=params)
            items = body.get("items") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise SourceUnavailable(f"HIS {self.http_conn_id}: page {page} has no 'items' list")
            yield items
            if not body.get("has_more") or not items:
                return
            page += 1

    def acknowledge(self, kind: str, batch: str, results: list[dict], chunk: int = 1000) -> int:
        sent = 0
        for start in range(0, len(results), chunk):
            part = results[start : start + chunk]
            self.call("POST", "api/v1/acknowledgements", json={"kind": kind, "batch": batch, "results": part})
            sent += len(part)
        return sent
