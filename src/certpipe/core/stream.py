"""Backfills: many batches of one source in order, preparing the next batch while the database applies one."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass

import psycopg

from certpipe import warehouse
from certpipe.core.ingest import BatchResult, Prepared, apply, lookup_resent, prepare, raw_hashes

# Batches a look-up may run ahead of the one being prepared, and so the batches not yet committed when it ran:
# the one being applied and the one being prepared.
_IN_FLIGHT = 2


@dataclass
class _Read:
    """A batch read from the source and hashed; its look-up of re-sent records runs meanwhile."""

    batch_id: int
    records: Sequence[Mapping]
    ids: Sequence[str | None] | None
    raws: list[bytes]
    resent: Future | None
    seconds: float


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
    validates batch N+1, so both cores work. When the source sent records before, the look-up of what it re-sends
    runs on a third connection one batch ahead, so its round trip overlaps this thread's work. A look-up cannot see
    batches not yet committed: a record it finds re-sent whose certificate one of those batches changes goes the
    full way (compared under the apply's lock), so the outcome is the one batch-by-batch ingestion gives.
    `batches` yields (records, record_ids or None, batch meta). Results come in order; on an error every batch
    read but not applied is marked failed.
    """
    with ExitStack() as stack:
        side = stack.enter_context(warehouse.connect(dsn))
        conn = stack.enter_context(warehouse.connect(dsn))
        pool = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="certpipe-apply"))
        side.autocommit = True
        # A source's first backfill has nothing to skip: no look-up of re-sent records (a record re-sent within
        # the stream still comes out unchanged, by its content).
        fresh = not warehouse.scalar(
            side,
            "SELECT EXISTS (SELECT FROM wh.certificate_source WHERE source = %s AND source_ref = %s)",
            (source, source_ref),
        )
        lookups: tuple[ThreadPoolExecutor, psycopg.Connection] | None = None
        if not fresh:
            lookup_conn = stack.enter_context(warehouse.connect(dsn))
            lookup_conn.autocommit = True
            lookups = (stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="certpipe-lookup")), lookup_conn)
        ahead: deque[_Read] = deque()
        changing: deque[set[str]] = deque(maxlen=_IN_FLIGHT)  # keys staged by the batches last prepared
        pending: Future | None = None
        pending_id: int | None = None  # batch being applied

        def step() -> Iterator[BatchResult]:
            nonlocal pending, pending_id
            read = ahead[0]  # left in `ahead` until handed over, so that an error marks it failed
            t = time.perf_counter()
            resent = read.resent.result() if read.resent is not None else {}
            if resent and changing:
                hot = set().union(*changing)
                resent = {h: v for h, v in resent.items() if v[1] not in hot}
            p = prepare(
                kind=kind,
                source=source,
                source_ref=source_ref,
                records=read.records,
                record_ids=read.ids,
                raws=read.raws,
                resent=resent,
            )
            changing.append(set(p.staged))
            prepared = read.seconds + time.perf_counter() - t
            if pending is not None:
                yield _finish(pending, waited_from=time.perf_counter())
            pending = pool.submit(_timed_apply, conn, read.batch_id, p, prepared)
            pending_id = read.batch_id
            ahead.popleft()

        try:
            for records, ids, meta in batches:
                batch_id = warehouse.create_batch(
                    side, source=source, source_ref=source_ref, kind=kind, run_id=run_id, meta=meta
                )
                t = time.perf_counter()
                raws = raw_hashes(records)
                found = None
                if lookups is not None:
                    found = lookups[0].submit(
                        lookup_resent, lookups[1], kind=kind, source=source, source_ref=source_ref, raws=raws
                    )
                ahead.append(_Read(batch_id, records, ids, raws, found, time.perf_counter() - t))
                if len(ahead) > (1 if lookups is not None else 0):
                    yield from step()
            while ahead:
                yield from step()
            if pending is not None:
                yield _finish(pending, waited_from=time.perf_counter())
                pending = None
        except BaseException:
            failed = [read.batch_id for read in ahead]
            for read in ahead:  # no look-up left running on a connection about to close
                if read.resent is not None:
                    read.resent.cancel()
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
