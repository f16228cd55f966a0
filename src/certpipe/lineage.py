"""Airflow assets of the pipeline: where certificates come from, the warehouse tables they land in, the DHIS2
register they go to. Tasks that read a source list it in `inlets`; tasks that write the warehouse or DHIS2 list
it in `outlets` and say what they did in the asset event's `extra` (counts, batch ids, rule codes: never a record).
Airflow's lineage graph (an asset's "data" dependencies) then shows sources → warehouse → DHIS2.

Imported at the top of DAG files: airflow.sdk only; `emit` imports the warehouse lazily.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow.sdk import Asset

GROUP_SOURCE, GROUP_WAREHOUSE, GROUP_DHIS2 = "certpipe-sources", "certpipe-warehouse", "certpipe-dhis2"


def _asset(name: str, path: str, group: str) -> Asset:
    return Asset(name=name, uri=f"x-certpipe://{path}", group=group)


# Source systems (read by the pulls; no Airflow task produces them)
HIS = _asset("source_his_feeds", "source/his", GROUP_SOURCE)
BHXH = _asset("source_bhxh_database", "source/bhxh", GROUP_SOURCE)
EXCEL_INBOX = _asset("source_excel_inbox", "source/excel-inbox", GROUP_SOURCE)
SECSERVER = _asset("source_secserver_directory", "source/secserver/directory", GROUP_SOURCE)
# The DHIS2 A6 commune death register: read by the daily pull, written by the weekly push
DHIS2_A6 = _asset("dhis2_a6_register", "dhis2/a6", GROUP_DHIS2)
# Warehouse tables
CERTIFICATES = {
    "GCS": _asset("warehouse_birth_certificates", "warehouse/wh.certificate/GCS", GROUP_WAREHOUSE),
    "GBT": _asset("warehouse_death_notices", "warehouse/wh.certificate/GBT", GROUP_WAREHOUSE),
}
DHIS2_DEATHS = _asset("warehouse_dhis2_deaths", "warehouse/wh.dhis2_death_event", GROUP_WAREHOUSE)
CAUSES_OF_DEATH = _asset("warehouse_causes_of_death", "warehouse/wh.cause_of_death", GROUP_WAREHOUSE)
SECSERVER_DIRECTORY = _asset("warehouse_secserver_directory", "warehouse/wh.secserver_directory", GROUP_WAREHOUSE)

CERTIFICATE_ASSET_NAMES = tuple(a.name for a in CERTIFICATES.values())
COUNTS = ("received", "stored", "updated", "unchanged", "refused")


def certificates(*kinds: str) -> list[Asset]:
    return [CERTIFICATES[k.upper()] for k in kinds]


def batch_extra(rows: Iterable[Mapping[str, Any]]) -> dict:
    """The asset event's `extra` for some batches of one kind: summed counts, refusals per rule, batch ids,
    sources and their references (facility / province codes)."""
    rows = list(rows)
    extra: dict[str, Any] = {c: sum(int(r.get(c) or 0) for r in rows) for c in COUNTS}
    rules: dict[str, int] = {}
    for r in rows:
        for code, n in (r.get("refusals_by_rule") or {}).items():
            rules[code] = rules.get(code, 0) + int(n)
    extra["refusals_by_rule"] = dict(sorted(rules.items()))
    extra["batch_ids"] = sorted(int(r["batch_id"]) for r in rows)
    extra["sources"] = sorted({str(r["source"]) for r in rows if r.get("source")})
    extra["source_refs"] = sorted({str(r["source_ref"]) for r in rows if r.get("source_ref")})
    return extra


def emit(context: Mapping[str, Any], dsn: str, batch_ids: Iterable[int]) -> dict[str, dict]:
    """Put the counts of `batch_ids` (read back from wh.ingest_batch: what was committed) in the asset events of
    the running task's certificate outlets, one per kind; an outlet kind without a batch gets zero counts.
    Returns {kind: extra}."""
    from certpipe import warehouse

    outlets = {a.name for a in getattr(context["task"], "outlets", None) or () if isinstance(a, Asset)}
    kinds = [k for k, a in CERTIFICATES.items() if a.name in outlets]
    ids = sorted({int(b) for b in batch_ids})
    rows: list[dict] = []
    if ids:
        with warehouse.connect(dsn) as conn:
            cur = conn.execute(
                "SELECT batch_id, source, source_ref, kind, received, stored, updated, unchanged, refused, "
                "refusals_by_rule FROM wh.ingest_batch WHERE batch_id = ANY(%s) AND status <> 'landed'",
                (ids,),
            )
            names = [d.name for d in cur.description or ()]
            rows = [dict(zip(names, r, strict=True)) for r in cur]
    out = {}
    for kind in kinds:
        out[kind] = batch_extra(r for r in rows if r["kind"] == kind)
        context["outlet_events"][CERTIFICATES[kind]].extra = out[kind]
    return out


def excel_file_batches(dsn: str, file_id: int) -> list[int]:
    """The batches an Excel inbox file was landed as (wh.excel_file_batch)."""
    from certpipe import warehouse

    with warehouse.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT batch_id FROM wh.excel_file_batch WHERE file_id = %s", (file_id,))]


def counts_extra(result: Mapping[str, Any]) -> dict:
    """A task's returned counts as an asset event's `extra`: numbers, short codes and {code: number} maps only
    (what XCom already carries; anything else is left out)."""
    out: dict[str, Any] = {}
    for k, v in result.items():
        if isinstance(v, (bool, int, float)) or (isinstance(v, str) and len(v) <= 64):
            out[k] = v
        elif isinstance(v, Mapping) and all(isinstance(n, (int, float)) for n in v.values()):
            out[k] = {str(c): n for c, n in v.items()}
    return out
