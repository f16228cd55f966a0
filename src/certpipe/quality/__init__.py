"""The data engineers' view inside the Airflow UI: data quality, operational state, lineage.

- `queries`: what the "Data quality" page shows, from the summaries of migration 0015 (schema `quality`, kept up to
  date by triggers) and the indexed batch list; counts, rule codes, field names and row positions only.
- `ops`: operational state (Excel inbox, DHIS2, watermarks) with what is stale.
- `airflow_meta`: batches ↔ DAG runs and task instances (asset events, task instances of the metadata DB).
- `chart`, `app`, `templates/`: the page (FastAPI app of the `certpipe` plugin, behind Airflow's login).

`page_url` builds links to the page (alerts use it); it imports nothing heavy.
"""

from __future__ import annotations

import os
from urllib.parse import urlencode

URL_PREFIX = "/data-quality"


def base_url() -> str:
    """The Airflow UI's address: `[api] base_url` (AIRFLOW__API__BASE_URL), without a trailing slash."""
    url = os.environ.get("AIRFLOW__API__BASE_URL")
    if url is None:
        try:
            from airflow.configuration import conf

            url = conf.get("api", "base_url", fallback="") or ""
        except Exception:  # outside Airflow: a relative link
            url = ""
    return url.rstrip("/")


def page_url(path: str = "/", **params: object) -> str:
    """Absolute link to the data-quality page (`path`: "/", "/batch/12", "/ops"), filters as query parameters.
    Parameters are identifiers only (source, facility code, rule code, dates, batch id): never personal data."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return f"{base_url()}{URL_PREFIX}{path}" + (f"?{query}" if query else "")
