"""One worksheet's layout and its data rows: cells as the clerk meant them (`values`), a time column joined to
its date, rows closing the table held back, and notes on what was set aside or changed."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from certpipe.core.schema import kind_spec
from certpipe.sources.excel.header import code_list_fields
from certpipe.sources.excel.sheetscan import SheetStats, col_letters
from certpipe.sources.excel.values import (
    INVISIBLE,
    date_of,
    number_text,
    official_code,
    round_second,
    serial,
    strip_invisible,
    time_of,
)

_CODED = frozenset({"code", "int", "nationality"})  # types whose official names map to codes
_CODE_LABEL = re.compile(r"^\s*([0-9A-Za-z]{1,4})\s*[-–:]\s+\S")  # "1 - Nam", "01 - Kinh" (template drop-downs)


@dataclass
class SheetLayout:
    number: int  # 1-based position in the workbook
    name: str
    kind: str | None = None  # None: no header found, sheet skipped
    header_row: int = 0  # Excel row number of the (last) header row
    first_col: int = 0  # absolute column index of list index 0 in the rows of this sheet
    columns: dict[int, str] = field(default_factory=dict)  # list index -> canonical field
    headers: list = field(default_factory=list)  # header cells, list-indexed
    ignored: list[str] = field(default_factory=list)  # header texts not recognised / repeated
    engine: str = "calamine"
    times: dict[int, str] = field(default_factory=dict)  # list index -> date-time field whose time it holds
    hints: dict[str, str] = field(default_factory=dict)  # unrecognised header -> nearest official column

    @property
    def width(self) -> int:
        return len(self.headers)


MAX_TRAILING = 50  # rows held back as possible trailing rows (totals, signatures) before they count as data
_MIDNIGHT = dt.time(0, 0)


def _trailer(rec: dict, key: str) -> bool:
    """A row that may close the table rather than be a record: no certificate number, at most 3 values."""
    return key not in rec and len(rec) <= 3


class Sheet:
    """One worksheet: its layout (after `open`) and its data rows. After `data_rows` is exhausted, `report`
    says what was set aside or changed: trailing rows (Excel row numbers), cells whose invisible characters
    were removed (count and first rows)."""

    def __init__(self, layout: SheetLayout, rows: Iterator[tuple[int, list]], stats: SheetStats | None = None):
        self.layout = layout
        self._rows = rows
        self.stats = stats or SheetStats()
        self.report: dict = {"trailing": [], "invisible": 0, "invisible_rows": []}

    def _cell(self, excel_row: int, col: int, v, name: str, ftype: str, code_list: bool):
        """One cell as the record holds it (None: blank)."""
        t = type(v)
        if t is str:
            if not v.isprintable() and INVISIBLE.search(v):
                v = strip_invisible(v)
                self.report["invisible"] += 1
                if len(self.report["invisible_rows"]) < 10 and excel_row not in self.report["invisible_rows"]:
                    self.report["invisible_rows"].append(excel_row)
            if not v.strip():
                return None
            if code_list and (m := _CODE_LABEL.match(v)):
                return m.group(1)
            code = official_code(name, v) if ftype in _CODED and not v.isdigit() else None
            return code if code is not None else v
        if t is float or t is int:
            if ftype == "datetime" and 1 < v < 100000 and not (t is int or v.is_integer()):
                return serial(v)
            if ftype == "datetime" and 1 < v < 100000:  # a whole-day serial: midnight only when formatted so
                return serial(v) if (excel_row, col) in self.stats.midnights else serial(v).date()
            if ftype == "date" and t is float and 1 < v < 100000 and not v.is_integer():
                return serial(v)
            return number_text(v, ftype)
        if t is dt.datetime:
            v = round_second(v)
            if ftype == "datetime" and v.time() == _MIDNIGHT and (excel_row, col) not in self.stats.midnights:
                return v.date()  # a date cell: its time is missing, not 00:00
            return v
        if t is dt.date and ftype == "datetime":
            # calamine gives any whole day as a date: midnight when the cell's format shows the time
            return dt.datetime(v.year, v.month, v.day) if (excel_row, col) in self.stats.midnights else v
        if t is dt.time or t is dt.timedelta:
            return str(v)
        return v

    def data_rows(self) -> Iterator[tuple[int, list, dict]]:
        """(Excel row number, cells, raw record by official field name) for every data row. Blank and
        formatting-only rows, rows with values only in unrecognised columns, and the rows closing the table
        (totals, signatures, notes: no certificate number, few values, no record after them) are skipped."""
        lay = self.layout
        if not lay.kind:
            return
        strip = code_list_fields()
        spec = kind_spec(lay.kind)
        plan = [(j, name, name in strip, spec.by_name[name].type) for j, name in sorted(lay.columns.items())]
        times = [(name, j) for j, name in lay.times.items()]
        base = lay.first_col + 1  # absolute (1-based) column of list index 0
        held: list[tuple[int, list, dict]] = []
        for excel_row, cells in self._rows:
            rec = {}
            n = len(cells)
            for j, name, code_list, ftype in plan:
                if j >= n:
                    break
                v = cells[j]
                if v is None or v == "":
                    continue
                if type(v) is str and v.isprintable() and not code_list and (ftype not in _CODED or v.isdigit()):
                    if v[0] != " " or v.strip():  # the usual cell: visible text, nothing to map
                        rec[name] = v
                    continue
                v = self._cell(excel_row, base + j, v, name, ftype, code_list)
                if v is not None:
                    rec[name] = v
            for name, j in times:  # a time in its own column completes its date
                d = rec.get(name)
                if j < n and d is not None and not (isinstance(d, dt.datetime)):
                    day, tm = date_of(d), time_of(cells[j])
                    if day is not None and tm is not None:
                        rec[name] = dt.datetime.combine(day, tm)
            if not rec:
                continue
            if _trailer(rec, spec.key):
                held.append((excel_row, cells, rec))
                if len(held) > MAX_TRAILING:
                    yield from held
                    held = []
                continue
            if held:
                yield from held
                held = []
            yield excel_row, cells, rec
        self.report["trailing"] = [r for r, _, _ in held]

    def cell_note(self, excel_row: int, j: int) -> str | None:
        """Why the cell at list index `j` of a row may read as blank: a merged range, a formula without value."""
        col = self.layout.first_col + 1 + j
        m = self.stats.merged_at(excel_row, col)
        if m and (excel_row, col) != (m[0], m[1]):
            return (
                f"Ô này nằm trong vùng ô gộp {_a1(m[0], m[1])}:{_a1(m[2], m[3])}; ô gộp chỉ giữ giá trị ở ô đầu tiên "
                "nên các dòng khác bị coi là trống. Hãy bỏ gộp ô (Merge & Center) và ghi giá trị vào từng dòng."
            )
        if (excel_row, col) in self.stats.formulas:
            return (
                "Ô có công thức nhưng file không lưu giá trị đã tính (file do phần mềm tạo, chưa mở bằng Excel). "
                "Hãy mở file bằng Excel, lưu lại rồi nộp lại, hoặc sao chép và dán giá trị (Paste Values)."
            )
        return None

    def notes(self) -> dict:
        """What the result's summary tells about this sheet (no value from the file: addresses and counts)."""
        lay, st = self.layout, self.stats
        first = lay.header_row + 1
        cols = {lay.first_col + 1 + j for j in lay.columns}
        merged = [m for m in st.merged if m[2] >= first and any(m[1] <= c <= m[3] for c in cols)]
        formulas = sorted((r, c) for r, c in st.formulas if r >= first and c in cols)
        return {
            "trailing": self.report["trailing"],
            "invisible": self.report["invisible"],
            "invisible_rows": self.report["invisible_rows"],
            "hints": lay.hints,
            "times": [str(lay.headers[j]).strip() for j in sorted(lay.times)],
            "merged": [f"{_a1(m[0], m[1])}:{_a1(m[2], m[3])}" for m in merged[:10]],
            "merged_count": len(merged),
            "formulas": [_a1(r, c) for r, c in formulas[:10]],
            "formula_count": len(formulas),
        }


def _a1(row: int, col: int) -> str:
    return f"{col_letters(col)}{row}"
