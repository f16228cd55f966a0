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
    rules: dict[str, int] = dict(
        conn.execute(
            "SELECT code, count(*) FROM (SELECT DISTINCT r.batch_id, r.row_no, e->>'code' AS code "
            "FROM wh.excel_file_batch b JOIN wh.batch_record r USING (batch_id), jsonb_array_elements(r.reasons) e "
            "WHERE b.file_id = %s AND r.outcome = 'refused') t GROUP BY code",
            (file_id,),
        ).fetchall()
    )
    return per_sheet, rules


def _rows(rows: list[int]) -> str:
    if not rows:
        return ""
    if len(rows) > 1 and rows == list(range(rows[0], rows[-1] + 1)):
        return f"dòng {rows[0]}–{rows[-1]}"
    return "dòng " + ", ".join(map(str, rows[:10])) + (" ..." if len(rows) > 10 else "")


def notes(sheets: list[dict]) -> list[str]:
    """What the clerk should know about each sheet, in Vietnamese (addresses and counts, never a value)."""
    out = []
    for s in sheets:
        where = f'Trang "{s["name"]}"'
        if not s.get("kind"):
            out.append(f"{where}: không có dòng tên cột của giấy chứng sinh/giấy báo tử, không đọc.")
            continue
        hints = s.get("hints") or {}
        plain = [c for c in s.get("ignored") or () if c not in hints]
        if plain:
            cols = ", ".join(f'"{c}"' for c in plain[:20])
            out.append(
                f"{where} (dòng tên cột {s['header_row']}): các cột không nhận ra hoặc bị trùng nên không đọc: {cols}."
            )
        for col, official in list(hints.items())[:20]:
            out.append(
                f'{where}: cột "{col}" không nhận ra nên không đọc; có phải là cột "{official}"? '
                "Hãy sửa tên cột cho đúng rồi nộp lại."
            )
        if s.get("times"):
            cols = ", ".join(f'"{c}"' for c in s["times"])
            out.append(f"{where}: giờ trong cột {cols} được ghép với ngày của cột ngày tương ứng.")
        if s.get("trailing"):
            out.append(
                f"{where}: {len(s['trailing'])} dòng cuối bảng ({_rows(s['trailing'])}) không phải giấy "
                "(dòng tổng cộng, chữ ký, ghi chú) nên được bỏ qua, không tính là lỗi."
            )
        if s.get("invisible"):
            out.append(
                f"{where}: đã bỏ ký tự ẩn (không nhìn thấy, thường do sao chép từ web hoặc phần mềm khác) ở "
                f"{s['invisible']} ô ({_rows(s['invisible_rows'])}); giá trị còn lại được giữ nguyên."
            )
        if s.get("merged_count"):
            out.append(
                f"{where}: có {s['merged_count']} vùng ô gộp trong bảng ({', '.join(s['merged'])}); ô gộp chỉ giữ "
                "giá trị ở ô đầu tiên, các dòng khác bị coi là trống. Hãy bỏ gộp ô và ghi giá trị vào từng dòng."
            )
        if s.get("formula_count"):
            out.append(
                f"{where}: {s['formula_count']} ô có công thức nhưng không có giá trị đã tính "
                f"({', '.join(s['formulas'])}); các ô này bị coi là trống. Hãy mở file bằng Excel, lưu lại rồi nộp "
                "lại, hoặc dán giá trị."
            )
    return out


def counts(conn: psycopg.Connection, file_id: int) -> dict:
    rows = conn.execute(
        "SELECT i.kind, i.received, i.stored, i.updated, i.unchanged, i.refused, i.refusals_by_rule "
        "FROM wh.excel_file_batch b JOIN wh.ingest_batch i USING (batch_id) WHERE b.file_id = %s",
        (file_id,),
    ).fetchall()
    total: Counter = Counter()
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
