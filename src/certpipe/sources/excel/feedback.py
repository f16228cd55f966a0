"""What a processed file's result says: outcomes per row, counts per sheet and rule, notes on the layout."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import psycopg


def outcomes(conn: psycopg.Connection, file_id: int, kind: str) -> Iterator[tuple[str, str, list | None]]:
    with conn.cursor(name=f"xl_out_{file_id}_{kind.lower()}") as cur:
        cur.itersize = 5000
        cur.execute(
            "SELECT r.source_record_id, r.outcome, r.reasons FROM wh.excel_file_batch b "
            "JOIN wh.batch_record r USING (batch_id) WHERE b.file_id = %s AND b.kind = %s "
            "ORDER BY b.chunk, r.row_no",
            (file_id, kind),
        )
        yield from cur


def sheet_counts(conn: psycopg.Connection, file_id: int, sheets: list[dict]) -> tuple[list[dict], dict]:
    rows = conn.execute(
        "SELECT split_part(r.source_record_id, '!', 1)::int, r.outcome, count(*) FROM wh.excel_file_batch b "
        "JOIN wh.batch_record r USING (batch_id) WHERE b.file_id = %s GROUP BY 1, 2",
        (file_id,),
    ).fetchall()
    by_sheet: dict[int, Counter] = {}
    for number, outcome, n in rows:
        by_sheet.setdefault(number, Counter())[outcome] += n
    per_sheet = []
    for s in sheets:
        if s.get("kind"):
            c = by_sheet.get(s["number"], Counter())
            per_sheet.append({"sheet": s["name"], "kind": s["kind"], "received": sum(c.values()), **c})
    rules = dict(
        conn.execute(
            "SELECT code, count(*) FROM (SELECT DISTINCT r.batch_id, r.row_no, e->>'code' AS code "
            "FROM wh.excel_file_batch b JOIN wh.batch_record r USING (batch_id), jsonb_array_elements(r.reasons) e "
            "WHERE b.file_id = %s AND r.outcome = 'refused') t GROUP BY code",
            (file_id,),
        ).fetchall()
    )
    return per_sheet, rules


def notes(sheets: list[dict]) -> list[str]:
    notes = []
    for s in sheets:
        if not s.get("kind"):
            notes.append(f'Trang "{s["name"]}": không có dòng tên cột của giấy chứng sinh/giấy báo tử, không đọc.')
        elif s.get("ignored"):
            cols = ", ".join(f'"{c}"' for c in s["ignored"][:20])
            notes.append(
                f'Trang "{s["name"]}" (dòng tên cột {s["header_row"]}): các cột không nhận ra hoặc bị '
                f"trùng nên không đọc: {cols}."
            )
    return notes


def counts(conn: psycopg.Connection, file_id: int) -> dict:
    rows = conn.execute(
        "SELECT i.kind, i.received, i.stored, i.updated, i.unchanged, i.refused, i.refusals_by_rule "
        "FROM wh.excel_file_batch b JOIN wh.ingest_batch i USING (batch_id) WHERE b.file_id = %s",
        (file_id,),
    ).fetchall()
    total = Counter()
    rules: Counter = Counter()
    for kind, received, stored, updated, unchanged, refused, by_rule in rows:
        total.update(
            {
                "received": received,
                "stored": stored,
                "updated": updated,
                "unchanged": unchanged,
                "refused": refused,
                f"received_{kind.lower()}": received,
            }
        )
        rules.update(by_rule or {})
    return {
        **{k: total[k] for k in ("received", "stored", "updated", "unchanged", "refused")},
        "refusals_by_rule": dict(sorted(rules.items())),
        "batches": len(rows),
    }
