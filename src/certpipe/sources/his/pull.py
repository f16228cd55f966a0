"""Solution 1: pull GCS/GBT from each pilot hospital's HIS, ingest, acknowledge every record back.

Task functions return batch ids and counts only (they end up in XCom and the UI): never records.
"""

from __future__ import annotations

import datetime as dt
import logging

from certpipe import clock, warehouse
from certpipe.alerts import check_refusal_rate
from certpipe.core.keys import KEYS
from certpipe.http.settings import ClientSettings
from certpipe.sources import ingest_batch, land_batch
from certpipe.sources.his.hook import HisHook

log = logging.getLogger(__name__)
SOURCE = "his"
DEFAULT_OVERLAP = dt.timedelta(minutes=15)


def _hook(hospital: dict) -> HisHook:
    """The hospital's client: its connection, and the client settings of its `his_hospitals` entry."""
    overrides = {k: v for k, v in hospital.items() if k in ClientSettings.model_fields}
    return HisHook(hospital["conn_id"], **overrides)


def _parse_ts(v: str | None) -> dt.datetime | None:
    if not v:
        return None
    t = dt.datetime.fromisoformat(v)
    return clock.as_vn(t)


def extract(
    hospital: dict,
    kind: str,
    dsn: str,
    *,
    run_id: str | None = None,
    overlap: dt.timedelta = DEFAULT_OVERLAP,
    page_size: int = 500,
) -> dict:
    """Pull everything changed since the watermark (minus an overlap) and land it raw as one batch."""
    facility = hospital["facility"]
    hook = _hook(hospital)
    with warehouse.connect(dsn) as conn:
        mark = warehouse.get_watermark(conn, SOURCE, facility, kind)
        since = mark - overlap if mark else None
        envelopes = [env for page in hook.pages(kind, since, page_size) for env in page]
        newest = max((t for e in envelopes if (t := _parse_ts(e.get("updated_at")))), default=None)
        meta = {
            "updated_since": since.isoformat() if since else None,
            "newest_change": newest.isoformat() if newest else None,
        }
        batch_id, _ = land_batch(
            conn, envelopes, source=SOURCE, source_ref=facility, kind=kind, run_id=run_id, meta=meta
        )
    log.info(
        "HIS %s %s: landed %d record(s) as batch %d (changes since %s)",
        facility,
        kind,
        len(envelopes),
        batch_id,
        since.isoformat() if since else "the beginning",
    )
    return {"batch_id": batch_id, "facility": facility, "kind": kind, "received": len(envelopes)}


def ingest_landed(batch: dict, dsn: str) -> dict:
    """Run a landed batch through the ingestion core. Records without a facility code get the hospital's."""
    kind, facility = batch["kind"], batch["facility"]
    fac_field = KEYS[kind]["facility"]

    def fill(p: dict) -> None:
        if not any(p.get(n) for n in (fac_field, "MA_CSKCB", "MACSKCB")):
            p[fac_field] = facility

    with warehouse.connect(dsn) as conn:
        result = ingest_batch(conn, batch["batch_id"], kind=kind, source=SOURCE, source_ref=facility, fill=fill)
    out = {**batch, **result.summary()}
    check_refusal_rate(out, source=SOURCE)  # alert (Variable `alerting`) when too many records were refused
    return out


def acknowledge(hospital: dict, batch: dict, dsn: str) -> dict:
    """Tell the HIS the outcome of every record, then move the watermark past this batch."""
    kind = batch["kind"]
    with warehouse.connect(dsn) as conn:
        results = [
            {
                "id": rid,
                "status": "REFUSED" if outcome == "refused" else "ACCEPTED",
                "outcome": outcome,
                "certificate": key,
                "errors": reasons or [],
            }
            for _, rid, key, outcome, reasons in warehouse.outcomes(conn, batch["batch_id"])
        ]
        sent = _hook(hospital).acknowledge(kind, str(batch["batch_id"]), results) if results else 0
        meta = warehouse.batch_row(conn, batch["batch_id"])["meta"]
        warehouse.mark_batch(conn, batch["batch_id"], "acknowledged", {"acknowledged": sent})
        if meta.get("newest_change"):
            warehouse.set_watermark(
                conn,
                SOURCE,
                hospital["facility"],
                kind,
                dt.datetime.fromisoformat(meta["newest_change"]),
                batch["batch_id"],
            )
    log.info("HIS %s %s: acknowledged %d record(s) of batch %d", hospital["facility"], kind, sent, batch["batch_id"])
    return {"batch_id": batch["batch_id"], "acknowledged": sent}
