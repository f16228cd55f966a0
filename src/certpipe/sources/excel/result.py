"""The result workbook returned to the hospital for every file it dropped.

Sheet "Tóm tắt" first: the file, what happened to it and the counts (per sheet, per refusal rule). Then, for
a file that was read, one sheet per data sheet of the hospital's file: its own rows (every column, values as
they were), preceded by the row number in the original file, the result and the reasons. Each refused cell is
filled red and carries the reason in Vietnamese as a cell comment; a reason that names no column of the sheet
is commented on the result cell. Written in constant memory (xlsxwriter), row by row.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path

from certpipe import clock
from certpipe.core.schema import kind_spec, message
from certpipe.sources.excel.reader import SheetLayout, Workbook

SUMMARY_SHEET = "Tóm tắt"
OUTCOME_TEXT = {
    "stored": "Đã nhận (mới)",
    "updated": "Đã nhận (cập nhật)",
    "unchanged": "Đã nhận (không thay đổi)",
    "refused": "Không nhận",
}
KIND_TEXT = {"GCS": "Giấy chứng sinh", "GBT": "Giấy báo tử"}
STATUS_TEXT = {
    "done": "Đã xử lý",
    "quarantined": "Không đọc được file (đã chuyển vào thư mục quarantine/)",
    "duplicate": "Trùng với file đã nộp (không xử lý lại)",
}
_PAREN = re.compile(r"\s*\(.*?\)")
FIXED = ["Dòng trong file gốc", "Kết quả", "Lý do"]


NO_HINT = frozenset(
    {"REQUIRED", "DUPLICATE_IN_BATCH", "ALREADY_USED", "FACILITY_MISMATCH", "NUMBER_ROUNDED", "TIME_MISSING"}
)


@cache
def expected(kind: str, field: str) -> str | None:
    """What a field accepts, for a clerk whose value was refused: the codes of a short list, where to find a
    long one, or the format of its type."""
    from certpipe.sources.excel import config
    from certpipe.sources.excel.template import HINTS, code_list

    lst = config()["field_lists"].get(field)
    if lst:
        items = code_list(lst)
        if len(items) <= 5:
            return "Giá trị hợp lệ: " + "; ".join(f"{c} - {n}" for c, n in items) + "."
        return f'Ghi mã hoặc tên theo danh mục (trang "Danh mục" của file mẫu), ví dụ {items[0][0]} - {items[0][1]}.'
    f = kind_spec(kind).by_name.get(field)
    return f"Cách ghi: {HINTS[f.type]}" if f and f.type in HINTS else None


def _label(kind: str, field: str | None) -> str:
    if not field:
        return "Bản ghi"
    f = kind_spec(kind).by_name.get(field)
    return f"{_PAREN.sub('', f.label)} ({field})" if f else field


def _when(t) -> str:
    if t is None:
        return ""
    if isinstance(t, dt.datetime):
        return t.astimezone(clock.VN).strftime("%d/%m/%Y %H:%M:%S")
    return str(t)


class _Formats:
    def __init__(self, wb):
        f = wb.add_format
        self.title = f({"bold": True, "font_size": 14})
        self.bold = f({"bold": True})
        self.head = f({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True, "valign": "top"})
        self.ok = f({"bg_color": "#E2EFDA"})
        self.bad = f({"bg_color": "#FFC7CE", "font_color": "#9C0006", "bold": True})
        self.wrap = f({"text_wrap": True, "valign": "top"})
        self.date = f({"num_format": "dd/mm/yyyy"})
        self.datetime = f({"num_format": "dd/mm/yyyy hh:mm"})
        self.cell_bad = f({"bg_color": "#FFC7CE"})
        self.date_bad = f({"bg_color": "#FFC7CE", "num_format": "dd/mm/yyyy"})
        self.datetime_bad = f({"bg_color": "#FFC7CE", "num_format": "dd/mm/yyyy hh:mm"})


def _write_value(ws, r: int, c: int, v, fm: _Formats, bad: bool) -> None:
    t = type(v)
    if v is None or v == "":
        if bad:
            ws.write_blank(r, c, None, fm.cell_bad)
        return
    if t is str:
        ws.write_string(r, c, v, fm.cell_bad if bad else None)
    elif t is bool:
        ws.write_boolean(r, c, v, fm.cell_bad if bad else None)
    elif t is int or t is float:
        ws.write_number(r, c, v, fm.cell_bad if bad else None)
    elif t is dt.datetime:
        has_time = v.hour or v.minute or v.second
        ws.write_datetime(
            r, c, v, (fm.datetime_bad if bad else fm.datetime) if has_time else (fm.date_bad if bad else fm.date)
        )
    elif t is dt.date:
        ws.write_datetime(r, c, dt.datetime(v.year, v.month, v.day), fm.date_bad if bad else fm.date)
    else:
        ws.write_string(r, c, str(v), fm.cell_bad if bad else None)


def _summary(
    wb, fm: _Formats, info: Mapping, per_sheet: list[dict], rules: Mapping[str, int], notes: list[str]
) -> None:
    ws = wb.add_worksheet(SUMMARY_SHEET)
    ws.set_column(0, 0, 34)
    ws.set_column(1, 1, 90, fm.wrap)
    ws.set_column(2, 8, 16)
    r = 0
    ws.write_string(r, 0, "KẾT QUẢ XỬ LÝ FILE GIẤY CHỨNG SINH / GIẤY BÁO TỬ", fm.title)
    r += 2
    status = info.get("status", "done")
    rows = [
        ("Tên file", info.get("file_name", "")),
        ("Mã cơ sở khám, chữa bệnh", info.get("facility", "")),
        ("Mã file (dùng khi cần tra cứu)", str(info.get("file_id", ""))),
        ("Thời điểm nhận file", _when(info.get("received_at"))),
        ("Thời điểm xử lý xong", _when(info.get("finished_at"))),
        ("Trạng thái", STATUS_TEXT.get(status, status)),
    ]
    if info.get("reason_code"):
        rows.append(("Lý do", message(info["reason_code"])))
    rows.extend(("Ghi chú", note) for note in info.get("extra", ()))
    for k, v in rows:
        ws.write_string(r, 0, k, fm.bold)
        ws.write_string(r, 1, v, fm.bad if k == "Lý do" else fm.wrap)
        r += 1
    if status != "done":
        return
    r += 1
    ws.write_string(r, 0, "Số dòng theo trang", fm.bold)
    r += 1
    heads = ["Trang", "Loại giấy", "Số dòng dữ liệu", "Nhận mới", "Cập nhật", "Không thay đổi", "Không nhận"]
    for c, h in enumerate(heads):
        ws.write_string(r, c, h, fm.head)
    r += 1
    total = {"received": 0, "stored": 0, "updated": 0, "unchanged": 0, "refused": 0}
    for s in per_sheet:
        ws.write_string(r, 0, s["sheet"])
        ws.write_string(r, 1, KIND_TEXT.get(s["kind"], s["kind"]))
        for c, k in enumerate(total, start=2):
            ws.write_number(r, c, s.get(k, 0), fm.bad if k == "refused" and s.get(k) else None)
            total[k] += s.get(k, 0)
        r += 1
    ws.write_string(r, 0, "Tổng cộng", fm.bold)
    for c, k in enumerate(total, start=2):
        ws.write_number(r, c, total[k], fm.bold)
    r += 2
    if rules:
        ws.write_string(r, 0, "Lý do không nhận", fm.bold)
        r += 1
        for c, h in enumerate(["Mã lỗi", "Nội dung", "Số dòng"]):
            ws.write_string(r, c, h, fm.head)
        r += 1
        for code, n in sorted(rules.items(), key=lambda kv: (-kv[1], kv[0])):
            ws.write_string(r, 0, code)
            ws.write_string(r, 1, message(code), fm.wrap)
            ws.write_number(r, 2, n)
            r += 1
        r += 1
    if notes:
        ws.write_string(r, 0, "Ghi chú", fm.bold)
        r += 1
        for note in notes:
            ws.write_string(r, 1, note, fm.wrap)
            r += 1


def _sheet_name(name: str, taken: set[str]) -> str:
    base = re.sub(r"[\[\]:*?/\\]", "_", name)[:31] or "Trang"
    out, i = base, 1
    while out.lower() in taken:
        i += 1
        out = f"{base[:27]} ({i})"
    taken.add(out.lower())
    return out


def write(
    out: Path | str,
    info: Mapping,
    *,
    source: Path | str | None = None,
    outcomes: Callable[[str], Iterator[tuple[str, str, list | None]]] | None = None,
    per_sheet: Iterable[dict] = (),
    rules: Mapping[str, int] | None = None,
    notes: Iterable[str] = (),
) -> Path:
    """Write the result workbook to `out`.

    info: file_name, facility, file_id, received_at, finished_at, status (done | quarantined | duplicate),
    reason_code, extra (notes shown under the status). For a processed file, `source` is the hospital's file
    and `outcomes(kind)` yields (source_record_id, outcome, reasons) in reading order for that kind.
    """
    import xlsxwriter

    out = Path(out)
    wb = xlsxwriter.Workbook(
        str(out),
        {
            "constant_memory": True,
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "nan_inf_to_errors": True,
        },
    )
    fm = _Formats(wb)
    _summary(wb, fm, info, list(per_sheet), rules or {}, list(notes))
    if source is not None and outcomes is not None and info.get("status", "done") == "done":
        taken = {SUMMARY_SHEET.lower()}
        streams: dict[str, Iterator] = {}
        with Workbook(source) as book:
            for sheet in book.sheets():
                lay = sheet.layout
                if not lay.kind:
                    continue
                if lay.kind not in streams:
                    streams[lay.kind] = iter(outcomes(lay.kind))
                _data_sheet(wb, fm, sheet, lay, streams[lay.kind], _sheet_name(lay.name, taken))
    wb.close()
    return out


def _data_sheet(wb, fm: _Formats, sheet, lay: SheetLayout, stream: Iterator, name: str) -> None:
    ws = wb.add_worksheet(name)
    n_fixed = len(FIXED)
    ws.set_column(0, 0, 10)
    ws.set_column(1, 1, 22)
    ws.set_column(2, 2, 60)
    ws.set_column(n_fixed, n_fixed + max(lay.width, 1), 16)
    for c, h in enumerate(FIXED):
        ws.write_string(0, c, h, fm.head)
    for j, h in enumerate(lay.headers):
        if h is not None and h != "":
            ws.write_string(0, n_fixed + j, str(h), fm.head)
    ws.freeze_panes(1, 2)
    col_of = {f: j for j, f in lay.columns.items()}
    r = 0
    for row_no, values, _ in sheet.data_rows():
        rid = f"{lay.number}!{row_no}"
        got = next(stream, None)
        if got is None or got[0] != rid:
            raise RuntimeError(f"result of sheet {lay.number} row {row_no} is missing from the warehouse")
        _, outcome, reasons = got
        r += 1
        by_col: dict[int, list[str]] = {}
        loose: list[str] = []
        texts = []
        for why in reasons or ():
            field, msg = why.get("field"), why.get("message") or message(why["code"])
            j = col_of.get(field)
            if j is not None and (why_blank := sheet.cell_note(row_no, j)):
                msg = f"{msg} {why_blank}"
            elif field and why.get("code") not in NO_HINT and (hint := expected(lay.kind, field)):
                msg = f"{msg} {hint}"
            texts.append(f"{_label(lay.kind, field)}: {msg}")
            (by_col.setdefault(j, []) if j is not None else loose).append(msg)
        refused = outcome == "refused"
        ws.write_number(r, 0, row_no)
        ws.write_string(r, 1, OUTCOME_TEXT.get(outcome, outcome), fm.bad if refused else fm.ok)
        if texts:
            ws.write_string(r, 2, "; ".join(texts))
        for j, v in enumerate(values[: lay.width]):
            _write_value(ws, r, n_fixed + j, v, fm, j in by_col)
        for j, msgs in by_col.items():
            if j >= len(values[: lay.width]):
                _write_value(ws, r, n_fixed + j, None, fm, True)
            ws.write_comment(r, n_fixed + j, "\n".join(dict.fromkeys(msgs)), {"x_scale": 2.5, "y_scale": 1.5})
        if loose:
            ws.write_comment(r, 1, "\n".join(dict.fromkeys(loose)), {"x_scale": 2.5, "y_scale": 1.5})
    if r:
        ws.autofilter(0, 0, r, n_fixed + max(lay.width, 1) - 1)
