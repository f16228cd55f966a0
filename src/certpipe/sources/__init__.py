"""Source adapters: extract from a source, land raw, hand to the ingestion core, feed back.

Each external system has its package here (`his`, `bhxh`, `excel`, `dhis2`, `secserver`): its hook (how to talk to
it) and its adapter (what the DAG tasks call). What every certificate adapter shares is below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import psycopg

from certpipe import warehouse


def land_batch(
    conn: psycopg.Connection,
    envelopes: Iterable[dict],
    *,
    source: str,
    source_ref: str,
    kind: str,
    run_id: str | None = None,
    meta: dict | None = None,
) -> tuple[int, int]:
    """A new batch holding the records exactly as received: (batch id, records landed)."""
    batch_id = warehouse.create_batch(conn, source=source, source_ref=source_ref, kind=kind, run_id=run_id, meta=meta)
    return batch_id, warehouse.land(conn, batch_id, envelopes)


def ingest_batch(
    conn: psycopg.Connection,
    batch_id: int,
    *,
    kind: str,
    source: str,
    source_ref: str,
    fill: Callable[[dict], None] | None = None,
):
    """Run a landed batch through the ingestion core (`fill` may complete each raw record first, e.g. the
    hospital's facility code); returns the core's BatchResult."""
    from certpipe.core.ingest import ingest

    ids, payloads = warehouse.landed(conn, batch_id)
    if fill:
        for p in payloads:
            if isinstance(p, dict):
                fill(p)
    return ingest(
        conn, batch_id=batch_id, kind=kind, source=source, source_ref=source_ref, records=payloads, record_ids=ids
    )
