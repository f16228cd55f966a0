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

from certpipe.http import HttpSettings, PageNumberPaginator, SourceHook

FEED = "api/v1/certificates"
ACKS = "api/v1/acknowledgements"


class HisSettings(HttpSettings):
    system = "HIS"


class HisHook(SourceHook):
    system = "HIS"
    settings_class = HisSettings
    conn_name_attr = "his_conn_id"
    default_conn_name = "his_default"
    hook_name = "Hospital HIS certificate feed"

    def pages(self, kind: str, updated_since: dt.datetime | None, page_size: int = 500) -> Iterator[list[dict]]:
        """Yield the feed page by page, oldest change first."""
        params = {"kind": kind, **({"updated_since": updated_since.isoformat()} if updated_since else {})}
        paginator = PageNumberPaginator(page_size, has_more=lambda body: bool(body.get("has_more")))
        for _, items in self.paginate(FEED, paginator, params=params):
            yield items

    def acknowledge(self, kind: str, batch: str, results: list[dict], chunk: int = 1000) -> int:
        sent = 0
        for start in range(0, len(results), chunk):
            part = results[start : start + chunk]
            self.call("POST", ACKS, json={"kind": kind, "batch": batch, "results": part})
            sent += len(part)
        return sent
