"""What the data-quality page shows, as plain dicts: counts, rule codes, field names, row positions, batch and run
ids. Never a record, a name, an ID number, a date of birth or a certificate number.

Period figures come from the daily summaries (schema `quality`, migration 0015), so their cost grows with days x
facilities, not with records; batch lists read wh.ingest_batch through its indexes (time, run); a drill-down reads
one batch's refused rows (partial index on wh.batch_record).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import psycopg

from certpipe import clock
from certpipe.warehouse import one, scalar

COUNTS = ("received", "stored", "updated", "unchanged", "refused")
KINDS = ("GCS", "GBT")
DEFAULT_DAYS = 14
MAX_DAYS = 366
# A facility's refusal rate "jumped" when, over the period, it is at least JUMP_POINTS higher than over the
# period of the same length just before, at least JUMP_RATIO times it, on at least JUMP_MIN_RECEIVED records in
# each period.
JUMP_POINTS, JUMP_RATIO, JUMP_MIN_RECEIVED = 0.05, 1.5, 20
_TOKEN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class BadFilter(ValueError):
    """A filter value the page cannot use; the message names the parameter (never echoes more than it)."""


@dataclass(frozen=True)
class Filters:
    start: dt.date
    end: dt.date  # inclusive
    source: str | None = None
    facility: str | None = None  # the batch's source_ref: facility code (HIS, Excel), province (BHXH)
    rule: str | None = None
    kind: str | None = None
    days: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "days", (self.end - self.start).days + 1)

    @property
    def baseline(self) -> tuple[dt.date, dt.date]:
        """The period of the same length just before this one."""
        return self.start - dt.timedelta(days=self.days), self.start - dt.timedelta(days=1)

    def params(self) -> dict:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "source": self.source,
            "facility": self.facility,
            "rule": self.rule,
            "kind": self.kind,
        }


def parse_filters(q: dict[str, str | None], today: dt.date | None = None) -> Filters:
    """Query parameters -> Filters; defaults: the last 14 days of Vietnam's calendar. BadFilter names the problem."""
    today = today or clock.vn_today()

    def date(name: str, default: dt.date) -> dt.date:
        v = (q.get(name) or "").strip()
        if not v:
            return default
        try:
            return dt.date.fromisoformat(v)
        except ValueError:
            raise BadFilter(f"'{name}' must be a date (YYYY-MM-DD)") from None

    def token(name: str) -> str | None:
        v = (q.get(name) or "").strip()
        if not v:
            return None
        if not _TOKEN.fullmatch(v):
            raise BadFilter(f"'{name}' must be a code (letters, digits, _ . : -)")
        return v

    end = date("to", today)
    start = date("from", end - dt.timedelta(days=DEFAULT_DAYS - 1))
    if start > end:
        raise BadFilter("'from' is after 'to'")
    if (end - start).days >= MAX_DAYS:
        raise BadFilter(f"the period is longer than {MAX_DAYS} days")
    kind = token("kind")
    if kind and kind.upper() not in KINDS:
        raise BadFilter("'kind' must be GCS or GBT")
    rule = token("rule")
    return Filters(
        start=start,
        end=end,
        source=token("source"),
        facility=token("facility"),
        rule=rule.upper() if rule else None,
        kind=kind.upper() if kind else None,
    )


def _where(f: Filters, start: dt.date | None = None, end: dt.date | None = None, alias: str = "") -> tuple[str, list]:
    a = f"{alias}." if alias else ""
    sql = [f"{a}day BETWEEN %s AND %s"]
    args: list[object] = [start or f.start, end or f.end]
    for col, v in (("source", f.source), ("source_ref", f.facility), ("kind", f.kind)):
        if v:
            sql.append(f"{a}{col} = %s")
            args.append(v)
    return " AND ".join(sql), args


def rate(refused: int, received: int) -> float | None:
    return refused / received if received else None


def totals(conn: psycopg.Connection, f: Filters) -> dict:
    where, args = _where(f)
    row = one(
        conn,
        f"SELECT COALESCE(sum(batches), 0), COALESCE(sum(failed), 0), "
        f"{', '.join(f'COALESCE(sum({c}), 0)' for c in COUNTS)} FROM quality.daily WHERE {where}",
        args,
    )
    out: dict[str, Any] = dict(zip(("batches", "failed", *COUNTS), (int(v) for v in row), strict=True))
    out["refusal_rate"] = rate(out["refused"], out["received"])
    if f.rule:
        out["rule_refused"] = _rule_records(conn, f)
    return out


def _rule_records(conn: psycopg.Connection, f: Filters) -> int:
    where, args = _where(f)
    return int(
        scalar(
            conn,
            f"SELECT COALESCE(sum(records), 0) FROM quality.daily_rule WHERE {where} AND rule = %s",
            [*args, f.rule],
        )
    )


def series(conn: psycopg.Connection, f: Filters) -> list[dict]:
    """One entry per day of the period (zeros included): the counts, and the filtered rule's refused records."""
    where, args = _where(f)
    rows = conn.execute(
        f"SELECT day, {', '.join(f'sum({c})' for c in COUNTS)} FROM quality.daily WHERE {where} GROUP BY day",
        args,
    ).fetchall()
    by_day = {r[0]: dict(zip(COUNTS, (int(v) for v in r[1:]), strict=True)) for r in rows}
    rule_by_day: dict = {}
    if f.rule:
        rule_by_day = dict(
            conn.execute(
                f"SELECT day, sum(records)::bigint FROM quality.daily_rule WHERE {where} AND rule = %s GROUP BY day",
                [*args, f.rule],
            ).fetchall()
        )
    out = []
    for i in range(f.days):
        day = f.start + dt.timedelta(days=i)
        entry = {"day": day, **by_day.get(day, dict.fromkeys(COUNTS, 0))}
        if f.rule:
            entry["rule_refused"] = int(rule_by_day.get(day, 0))
        out.append(entry)
    return out


def facilities(conn: psycopg.Connection, f: Filters) -> list[dict]:
    """Per source and facility: the period's counts and refusal rate, the previous period's rate, whether the rate
    jumped (and since which day), the most frequent rule; worst rate first."""
    b_start, _ = f.baseline
    where, args = _where(f, start=b_start)
    rows = conn.execute(
        f"SELECT source, source_ref, day >= %s AS current, sum(batches), sum(failed), "
        f"{', '.join(f'sum({c})' for c in COUNTS)} FROM quality.daily WHERE {where} GROUP BY 1, 2, 3",
        [f.start, *args],
    ).fetchall()
    per: dict[tuple, dict] = {}
    for source, ref, current, batches, failed, *counts in rows:
        e = per.setdefault((source, ref), {"source": source, "facility": ref, "baseline_received": 0})
        if current:
            e.update(batches=int(batches), failed=int(failed))
            e.update({c: int(v) for c, v in zip(COUNTS, counts, strict=True)})
        else:
            e["baseline_received"], e["baseline_refused"] = int(counts[0]), int(counts[4])
    out = []
    for e in per.values():
        if "received" not in e:
            continue  # nothing in the period itself
        e["refusal_rate"] = rate(e["refused"], e["received"])
        e["baseline_rate"] = rate(e.get("baseline_refused", 0), e["baseline_received"])
        e["jumped"] = _jumped(e["refusal_rate"], e["baseline_rate"], e["received"], e["baseline_received"])
        out.append(e)
    if out:
        _add_rule_figures(conn, f, out)
    for e in out:
        if e["jumped"]:
            e["since"] = _since(conn, f, e)
    out.sort(key=lambda e: (-(e["refusal_rate"] or 0), e["source"], e["facility"]))
    return out


def _jumped(now: float | None, before: float | None, received: int, received_before: int) -> bool:
    """A jump needs enough records in both periods (a new source's first days are not a jump)."""
    if now is None or before is None or min(received, received_before) < JUMP_MIN_RECEIVED:
        return False
    return now - before >= JUMP_POINTS and (before == 0 or now >= JUMP_RATIO * before)


def _add_rule_figures(conn: psycopg.Connection, f: Filters, out: list[dict]) -> None:
    """Each facility's most frequent rule in the period (and the filtered rule's count)."""
    where, args = _where(f)
    top: dict[tuple, tuple] = {}
    chosen: dict[tuple, int] = defaultdict(int)
    for source, ref, rule, n in conn.execute(
        f"SELECT source, source_ref, rule, sum(records)::bigint FROM quality.daily_rule WHERE {where} "
        f"GROUP BY 1, 2, 3 HAVING sum(records) > 0 ORDER BY 4 DESC, 3",
        args,
    ):
        top.setdefault((source, ref), (rule, int(n)))
        if rule == f.rule:
            chosen[(source, ref)] = int(n)
    for e in out:
        key = (e["source"], e["facility"])
        e["top_rule"], e["top_rule_records"] = top.get(key, (None, 0))
        if f.rule:
            e["rule_refused"] = chosen[key]


def _since(conn: psycopg.Connection, f: Filters, e: dict) -> dt.date | None:
    """First day of the last unbroken stretch of days (with records) whose rate is above the previous period's
    rate plus JUMP_POINTS: "since when" the facility sends bad data."""
    limit = (e["baseline_rate"] or 0) + JUMP_POINTS
    rows = conn.execute(
        "SELECT day, sum(received), sum(refused) FROM quality.daily WHERE day BETWEEN %s AND %s AND source = %s "
        "AND source_ref = %s" + (" AND kind = %s" if f.kind else "") + " GROUP BY day HAVING sum(received) > 0 "
        "ORDER BY day",
        [f.start, f.end, e["source"], e["facility"], *([f.kind] if f.kind else [])],
    ).fetchall()
    since = None
    for day, received, refused in rows:
        high = refused / received > limit
        since = (since or day) if high else None
    return since or next((d for d, rec, ref in rows if ref / rec > limit), None)


def rules(conn: psycopg.Connection, f: Filters, catalogue: dict[str, dict] | None = None) -> list[dict]:
    """Refusal rules ranked by records refused in the period, with their Vietnamese message, the share of refused
    records, how many facilities, and the fields they were found on (most frequent first)."""
    from certpipe.core.schema import rule_catalogue

    catalogue = catalogue if catalogue is not None else rule_catalogue()
    where, args = _where(f)
    refused = totals(conn, f)["refused"]
    ranked = conn.execute(
        f"SELECT rule, sum(records)::bigint, count(DISTINCT (source, source_ref)) FROM quality.daily_rule "
        f"WHERE {where}" + (" AND rule = %s" if f.rule else "") + " GROUP BY rule HAVING sum(records) > 0 "
        "ORDER BY 2 DESC, 1",
        [*args, *([f.rule] if f.rule else [])],
    ).fetchall()
    fields: dict[str, list] = defaultdict(list)
    for rule, fld, n in conn.execute(
        f"SELECT rule, field, sum(records)::bigint FROM quality.daily_field WHERE {where} "
        "GROUP BY 1, 2 HAVING sum(records) > 0 ORDER BY 3 DESC, 2",
        args,
    ):
        fields[rule].append({"field": fld or None, "records": int(n)})
    return [
        {
            "rule": rule,
            "message": (catalogue.get(rule) or {}).get("message", ""),
            "records": int(n),
            "share": rate(int(n), refused),
            "facilities": int(nfac),
            "fields": fields.get(rule, [])[:5],
        }
        for rule, n, nfac in ranked
    ]


def choices(conn: psycopg.Connection, f: Filters) -> dict:
    """What the filters can be set to: sources and facilities with data in the period, rules ever seen."""
    pairs = conn.execute(
        "SELECT DISTINCT source, source_ref FROM quality.daily WHERE day BETWEEN %s AND %s ORDER BY 1, 2",
        (f.start, f.end),
    ).fetchall()
    seen_rules = [r for (r,) in conn.execute("SELECT DISTINCT rule FROM quality.daily_rule ORDER BY 1")]
    return {
        "sources": sorted({s for s, _ in pairs} | ({f.source} if f.source else set())),
        "facilities": sorted({r for s, r in pairs if not f.source or s == f.source} | ({f.facility} - {None})),
        "rules": sorted(set(seen_rules) | ({f.rule} - {None})),
    }


BATCH_COLS = (
    "batch_id, source, source_ref, kind, status, run_id, created_at, ingested_at, received, stored, updated, "
    "unchanged, refused, refusals_by_rule"
)


def _batch(row: tuple, names: list[str]) -> dict:
    b = dict(zip(names, row, strict=True))
    b["refusal_rate"] = rate(b["refused"], b["received"])
    b["facility"] = b["source_ref"]
    return b


def batches(conn: psycopg.Connection, f: Filters, limit: int = 50) -> list[dict]:
    """The period's batches matching the filters, newest first."""
    sql = [
        "created_at >= (%s::date)::timestamp AT TIME ZONE 'Asia/Ho_Chi_Minh'",
        "created_at < (%s::date + 1)::timestamp AT TIME ZONE 'Asia/Ho_Chi_Minh'",
    ]
    args: list = [f.start, f.end]
    for col, v in (("source", f.source), ("source_ref", f.facility), ("kind", f.kind)):
        if v:
            sql.append(f"{col} = %s")
            args.append(v)
    if f.rule:
        sql.append("refusals_by_rule ? %s")
        args.append(f.rule)
    cur = conn.execute(
        f"SELECT {BATCH_COLS} FROM wh.ingest_batch WHERE {' AND '.join(sql)} ORDER BY created_at DESC, batch_id DESC "
        "LIMIT %s",
        [*args, limit],
    )
    names = [d.name for d in cur.description or ()]
    return [_batch(r, names) for r in cur]


def batch(conn: psycopg.Connection, batch_id: int, catalogue: dict[str, dict] | None = None) -> dict | None:
    """One batch: its counts, and its refusals per rule and field with the row positions (1-based, as landed)."""
    from certpipe.core.schema import rule_catalogue

    catalogue = catalogue if catalogue is not None else rule_catalogue()
    cur = conn.execute(f"SELECT {BATCH_COLS} FROM wh.ingest_batch WHERE batch_id = %s", (batch_id,))
    row = cur.fetchone()
    if row is None:
        return None
    b = _batch(row, [d.name for d in cur.description or ()])
    b["refusals"] = [
        {
            "rule": rule,
            "message": (catalogue.get(rule) or {}).get("message", ""),
            "field": fld or None,
            "records": int(n),
            "rows": list(rows_),
        }
        for rule, fld, n, rows_ in conn.execute(
            "SELECT e->>'code', COALESCE(e->>'field', ''), count(DISTINCT r.row_no), "
            "(array_agg(DISTINCT r.row_no ORDER BY r.row_no))[1:50] "
            "FROM wh.batch_record r, jsonb_array_elements(CASE WHEN jsonb_typeof(r.reasons) = 'array' "
            "THEN r.reasons ELSE '[]' END) e "
            "WHERE r.batch_id = %s AND r.outcome = 'refused' GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2",
            (batch_id,),
        )
    ]
    return b


def run_batches(conn: psycopg.Connection, run_id: str, sources: tuple[str, ...] | None) -> list[dict]:
    """The batches a DAG run made (its run id, and one of its DAG's sources), in order."""
    cur = conn.execute(
        f"SELECT {BATCH_COLS} FROM wh.ingest_batch WHERE run_id = %s"
        + (" AND source = ANY(%s)" if sources else "")
        + " ORDER BY batch_id",
        [run_id, *([list(sources)] if sources else [])],
    )
    names = [d.name for d in cur.description or ()]
    return [_batch(r, names) for r in cur]


def batches_by_id(conn: psycopg.Connection, ids: list[int]) -> list[dict]:
    cur = conn.execute(f"SELECT {BATCH_COLS} FROM wh.ingest_batch WHERE batch_id = ANY(%s) ORDER BY batch_id", (ids,))
    names = [d.name for d in cur.description or ()]
    return [_batch(r, names) for r in cur]


def file_batch_ids(conn: psycopg.Connection, file_id: int) -> list[int]:
    """The batches an Excel file was landed as."""
    return [r[0] for r in conn.execute("SELECT batch_id FROM wh.excel_file_batch WHERE file_id = %s", (file_id,))]


def overview(conn: psycopg.Connection, f: Filters) -> dict:
    """Everything the overview shows, in one read-only transaction."""
    facs = facilities(conn, f)
    return {
        "totals": totals(conn, f),
        "series": series(conn, f),
        "facilities": facs,
        "jumped": [e for e in facs if e["jumped"]],
        "rules": rules(conn, f),
        "batches": batches(conn, f),
        "choices": choices(conn, f),
    }
