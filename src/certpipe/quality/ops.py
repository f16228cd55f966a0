"""Operational state for the data-quality page: Excel inbox, DHIS2, watermarks per source, with what is stale.

Tables of other features may be absent (a warehouse migrated by parts) or carry more statuses later: each panel
reads what is there and shows unknown statuses as they are. Counts and timestamps only.
"""

from __future__ import annotations

import datetime as dt

import psycopg

from certpipe import clock
from certpipe.warehouse import one, scalar

# Ledger statuses of wh.excel_file (migration 0007) by what the engineer on duty cares about.
EXCEL_WAITING = ("claimed",)
EXCEL_PROCESSING = ("landed", "ingested")
EXCEL_FINISHED = ("done", "quarantined")
EXCEL_STALE = dt.timedelta(minutes=15)  # a file is picked up within 5 minutes; waiting longer is stale
# How old a source's watermark may be before it is stale (its DAG's cadence plus slack).
WATERMARK_STALE = {
    "his": dt.timedelta(days=1),  # every 15 min; a hospital sends something every day
    "bhxh": dt.timedelta(hours=3),  # hourly windows: the watermark is the last window's end
    "dhis2": dt.timedelta(days=2),  # daily at 18:30
}
DEFAULT_STALE = dt.timedelta(days=1)
DHIS2_STALE = dt.timedelta(days=2)
PUSH_STALE = dt.timedelta(days=8)  # weekly


def _exists(conn: psycopg.Connection, table: str) -> bool:
    return scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", (table,))


def excel(conn: psycopg.Connection, now: dt.datetime) -> dict | None:
    if not _exists(conn, "wh.excel_file"):
        return None
    by_status: dict[str, int] = dict(
        conn.execute("SELECT status, count(*) FROM wh.excel_file GROUP BY status").fetchall()
    )
    open_ = scalar(conn, "SELECT min(claimed_at) FROM wh.excel_file WHERE status <> ALL(%s)", (list(EXCEL_FINISHED),))
    since = now - dt.timedelta(days=7)
    quarantined_week = scalar(
        conn, "SELECT count(*) FROM wh.excel_file WHERE status = 'quarantined' AND updated_at >= %s", (since,)
    )
    per_facility = [
        {"facility": fac, "open": int(n_open), "quarantined": int(n_q), "done": int(n_done), "last": last}
        for fac, n_open, n_q, n_done, last in conn.execute(
            "SELECT facility_code, count(*) FILTER (WHERE status <> ALL(%s)), "
            "count(*) FILTER (WHERE status = 'quarantined'), count(*) FILTER (WHERE status = 'done'), "
            "max(claimed_at) FROM wh.excel_file GROUP BY 1 ORDER BY 1",
            (list(EXCEL_FINISHED),),
        )
    ]
    known = {*EXCEL_WAITING, *EXCEL_PROCESSING, *EXCEL_FINISHED}
    oldest_age = now - open_ if open_ else None
    return {
        "waiting": sum(by_status.get(s, 0) for s in EXCEL_WAITING),
        "processing": sum(by_status.get(s, 0) for s in EXCEL_PROCESSING),
        "quarantined": by_status.get("quarantined", 0),
        "quarantined_week": quarantined_week,
        "done": by_status.get("done", 0),
        "other": {s: n for s, n in by_status.items() if s not in known},
        "oldest_open": open_,
        "oldest_open_age": oldest_age,
        "stale": bool(oldest_age and oldest_age > EXCEL_STALE),
        "facilities": per_facility,
    }


def dhis2(conn: psycopg.Connection, now: dt.datetime) -> dict | None:
    if not _exists(conn, "wh.dhis2_death_event"):
        return None
    last_pull = scalar(conn, "SELECT max(last_seen_at) FROM wh.dhis2_death_event")
    mark = scalar(
        conn, "SELECT max(updated_at) FROM wh.source_watermark WHERE source = 'dhis2'"
    )  # a pull that found nothing still moves its watermark
    last_pull = max((t for t in (last_pull, mark) if t), default=None)
    events, matched = one(conn, "SELECT count(*), count(cert_id) FROM wh.dhis2_death_event WHERE NOT deleted")
    methods: dict[str, int] = dict(
        conn.execute(
            "SELECT COALESCE(match_method, 'unmatched'), count(*) FROM wh.dhis2_death_event WHERE NOT deleted "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    unregistered = (
        scalar(conn, "SELECT count(*) FROM wh.dhis2_unregistered_deaths")
        if _exists(conn, "wh.dhis2_unregistered_deaths")
        else None
    )
    push = None
    if _exists(conn, "wh.dhis2_push"):
        outcomes: dict[str, int] = dict(
            conn.execute("SELECT outcome, count(*) FROM wh.dhis2_push GROUP BY 1 ORDER BY 1").fetchall()
        )
        last_push = scalar(conn, "SELECT max(pushed_at) FROM wh.dhis2_push")
        errors = conn.execute(
            "SELECT code, count(*) FROM wh.dhis2_push, unnest(error_codes) code WHERE outcome = 'error' "
            "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10"
        ).fetchall()
        push = {
            "outcomes": outcomes,
            "last": last_push,
            "stale": bool(last_push and now - last_push > PUSH_STALE),
            "errors": [{"code": c, "records": n} for c, n in errors],
        }
    return {
        "last_pull": last_pull,
        "last_pull_age": now - last_pull if last_pull else None,
        "stale": last_pull is None or now - last_pull > DHIS2_STALE,
        "events": events,
        "matched": matched,
        "methods": methods,
        "unregistered": unregistered,
        "push": push,
    }


def watermarks(conn: psycopg.Connection, now: dt.datetime) -> list[dict]:
    """Every source's watermark per reference and kind, its age, the last batch received, stale or not."""
    rows = conn.execute(
        "SELECT w.source, w.source_ref, w.kind, w.watermark, w.updated_at, "
        "(SELECT max(b.created_at) FROM wh.ingest_batch b WHERE b.source = w.source AND b.source_ref = w.source_ref) "
        "FROM wh.source_watermark w ORDER BY 1, 2, 3"
    ).fetchall()
    out = []
    for source, ref, kind, mark, moved, last_batch in rows:
        age = now - mark
        out.append(
            {
                "source": source,
                "facility": ref,
                "kind": kind,
                "watermark": mark,
                "age": age,
                "moved_at": moved,
                "last_batch": last_batch,
                "stale": age > WATERMARK_STALE.get(source, DEFAULT_STALE),
                "limit": WATERMARK_STALE.get(source, DEFAULT_STALE),
            }
        )
    return out


def state(conn: psycopg.Connection) -> dict:
    now = scalar(conn, "SELECT wh.clock()")
    marks = watermarks(conn, now)
    return {
        "now": now,
        "today": clock.vn_today(),
        "excel": excel(conn, now),
        "dhis2": dhis2(conn, now),
        "watermarks": marks,
        "stale": [m for m in marks if m["stale"]],
    }
