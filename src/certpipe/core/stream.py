"""Backfills: many batches of one source in order, preparing the next batch while the database applies one."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import psycopg

from certpipe import warehouse
from certpipe.core.ingest import BatchResult, Prepared, apply, prepare_batch


def ingest_stream(
    dsn: str,
    batches: Iterable[tuple[Sequence[Mapping], Sequence[str | None] | None, dict]],
    *,
    kind: str,
    source: str,
    source_ref: str,
    run_id: str | None = None,
) -> Iterator[BatchResult]:
    """Ingest many batches of one source in order (a backfill): each is its own batch and transaction.

    While the database applies batch N (a worker thread waiting on PostgreSQL), this thread normalises and
    validates batch N+1, so both cores work. `batches` yields (records, record_ids or None, batch meta).
    Results come in order; on an error the batch prepared but not applied is marked failed.
    """
    with (
        warehouse.connect(dsn) as side,
        warehouse.connect(dsn) as conn,
        ThreadPoolExecutor(1, thread_name_prefix="certpipe-apply") as pool,
    ):
        side.autocommit = True
        # A source's first backfill has nothing to skip: no look-up of re-sent records (a record re-sent within
        # the stream still comes out unchanged, by its content).
        fresh = not warehouse.scalar(
            side,
            "SELECT EXISTS (SELECT FROM wh.certificate_source WHERE source = %s AND source_ref = %s)",
            (source, source_ref),
        )
        pending: Future | None = None
        pending_id = waiting = None  # batch being applied; batch prepared but not yet handed over
        try:
            for records, ids, meta in batches:
                waiting = warehouse.create_batch(
                    side, source=source, source_ref=source_ref, kind=kind, run_id=run_id, meta=meta
                )
                t = time.perf_counter()
                p = prepare_batch(
                    None if fresh else side,
                    kind=kind,
                    source=source,
                    source_ref=source_ref,
                    records=records,
                    record_ids=ids,
                )
                prepared = time.perf_counter() - t
                if pending is not None:
                    yield _finish(pending, waited_from=time.perf_counter())
                pending = pool.submit(_timed_apply, conn, waiting, p, prepared)
                pending_id, waiting = waiting, None
            if pending is not None:
                yield _finish(pending, waited_from=time.perf_counter())
        except BaseException:
            failed = [waiting] if waiting is not None else []
            if pending_id is not None and pending is not None and pending.exception() is not None:  # waits for it
                failed.append(pending_id)
            for batch_id in failed:
                warehouse.mark_batch(side, batch_id, "failed")
            raise


def _timed_apply(conn: psycopg.Connection, batch_id: int, p: Prepared, prepared: float) -> BatchResult:
    t = time.perf_counter()
    result = apply(conn, batch_id, p)
    result.timings.update(prepare_s=prepared, apply_s=time.perf_counter() - t)
    return result


def _finish(pending: Future, waited_from: float) -> BatchResult:
    result = pending.result()
    result.timings["waited_s"] = time.perf_counter() - waited_from
    return result
