"""The hospital template (.xlsx), generated from include/schemas/ (never drawn by hand).

    python -m certpipe.sources.excel.template OUT.xlsx

Sheets: "Hướng dẫn" (instructions), "Giấy chứng sinh" and "Giấy báo tử" (one column per field of
fields/gcs.json and fields/gbt.json, in their order: row 1 title, row 2 the Vietnamese label, * when the
expectation suite requires it, row 3 the official field code, data from row 4), and a hidden "Danh mục"
sheet holding the drop-down lists (sex, flags, ethnicities, nationalities). ID, code and text columns are
formatted as text so leading zeros survive; date columns as dd/mm/yyyy, date-time columns as dd/mm/yyyy hh:mm.

`build` can also fill the sheets with records (tests, the benchmark): dates become Excel dates, the rest text.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

from certpipe.core.schema import KINDS, kind_spec, schemas_dir
from certpipe.sources.excel import config

HEADER_ROWS = 3  # title, labels, codes
LISTS_SHEET = "Danh mục"
INSTRUCTIONS_SHEET = "Hướng dẫn"
NUMBER_FORMATS = {"date": "dd/mm/yyyy", "datetime": "dd/mm/yyyy hh:mm", "int": "0"}
HINTS = {
    "date": "Ngày dạng dd/mm/yyyy (hoặc yyyymmdd).",
    "datetime": "Ngày giờ dạng dd/mm/yyyy hh:mm (hoặc yyyymmddHHMM).",
    "int": "Số nguyên.",
    "id": "Ghi đủ các chữ số, kể cả số 0 ở đầu.",
    "digits": "Ghi đủ các chữ số, kể cả số 0 ở đầu.",
    "code": "Mã, giữ nguyên số 0 ở đầu.",
    "nationality": "Mã quốc tịch (Việt Nam: 704).",
}


@cache
def required_fields(kind: str) -> frozenset[str]:
    suite = json.loads((schemas_dir() / "expectations" / f"{kind.lower()}.json").read_text("utf-8"))
    return frozenset(
        e["kwargs"]["column"] for e in suite["expectations"] if e["type"] == "expect_column_values_to_not_be_null"
    )


@cache
def code_list(name: str) -> tuple[tuple[str, str], ...]:
    spec = config()["lists"][name]
    if "items" in spec:
        return tuple((c, n) for c, n in spec["items"])
    with (schemas_dir() / spec["csv"]).open(encoding="utf-8", newline="") as f:
        return tuple((r[spec["code"]], r[spec["name"]]) for r in csv.DictReader(f))


def _as_cell(value, ftype: str):
    """A canonical value as a hospital's workbook would hold it: Excel dates for dates, text otherwise."""
    if value is None or value == "":
        return None
    if ftype in ("date", "datetime") and isinstance(value, str) and value.isdigit() and len(value) in (8, 12, 14):
        try:
            return dt.datetime.strptime(value, {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}[len(value)])
        except ValueError:
            return value  # an impossible date stays text, as typed
    return value


def build(path: Path | str, rows: Mapping[str, Iterable[Mapping]] | None = None) -> Path:
    """Write the template to `path`; `rows` optionally fills the kind sheets ({"GCS": [record, ...]})."""
    import xlsxwriter

    path = Path(path)
    cfg = config()
    wb = xlsxwriter.Workbook(
        str(path),
        {"constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False},
    )
    fmt = {
        "title": wb.add_format({"bold": True, "font_size": 14}),
        "label": wb.add_format({"bold": True, "text_wrap": True, "valign": "top", "bg_color": "#DDEBF7", "border": 1}),
        "required": wb.add_format(
            {"bold": True, "text_wrap": True, "valign": "top", "bg_color": "#FCE4D6", "border": 1}
        ),
        "code": wb.add_format({"italic": True, "font_color": "#595959", "bg_color": "#F2F2F2", "border": 1}),
        "text": wb.add_format({"num_format": "@"}),
        "wrap": wb.add_format({"text_wrap": True, "valign": "top"}),
        "head": wb.add_format({"bold": True, "font_size": 13}),
    }
    for t, nf in NUMBER_FORMATS.items():
        fmt[t] = wb.add_format({"num_format": nf})

    # Instructions first: it is the sheet a hospital sees on opening the file.
    ins = wb.add_worksheet(INSTRUCTIONS_SHEET)
    ins.set_column(0, 0, 140, fmt["wrap"])
    for i, line in enumerate(cfg["instructions"]):
        ins.write_string(i, 0, line, fmt["head"] if i == 0 else fmt["wrap"])
    base = len(cfg["instructions"]) + 1
    ins.write_string(base, 0, "Các cột của từng trang (mã trường: tên cột):", fmt["head"])
    r = base + 1
    for kind in KINDS:
        spec = kind_spec(kind)
        ins.write_string(r, 0, f'Trang "{cfg["sheets"][kind]}" ({spec.root})', fmt["head"])
        r += 1
        req = required_fields(kind)
        for f in spec.fields:
            ins.write_string(r, 0, f"{f.name}: {f.label}{' (bắt buộc)' if f.name in req else ''}", fmt["wrap"])
            r += 1
        r += 1

    # Code lists (hidden sheet), one column per list: "code - name".
    lists = wb.add_worksheet(LISTS_SHEET)
    ranges = {}
    for c, (name, spec) in enumerate(cfg["lists"].items()):
        items = code_list(name)
        lists.write_string(0, c, spec["title"])
        lists.set_column(c, c, 28, fmt["text"])
        ranges[name] = f"='{LISTS_SHEET}'!${_col(c)}$2:${_col(c)}${len(items) + 1}"
    longest = max(len(code_list(n)) for n in cfg["lists"])
    for i in range(longest):  # constant_memory: write row by row
        for c, name in enumerate(cfg["lists"]):
            items = code_list(name)
            if i < len(items):
                lists.write_string(i + 1, c, f"{items[i][0]} - {items[i][1]}")
    lists.hide()

    for kind in KINDS:
        spec = kind_spec(kind)
        ws = wb.add_worksheet(cfg["sheets"][kind])
        req = required_fields(kind)
        ws.write_string(0, 0, cfg["titles"][kind], fmt["title"])
        ws.set_row(1, 60)
        for c, f in enumerate(spec.fields):
            nf = fmt[f.type if f.type in NUMBER_FORMATS else "text"]
            ws.set_column(c, c, max(12, min(40, len(f.label) * 0.6)), nf)
        for c, f in enumerate(spec.fields):
            star = f.name in req
            ws.write_string(1, c, f.label + (" *" if star else ""), fmt["required" if star else "label"])
        for c, f in enumerate(spec.fields):
            ws.write_string(2, c, f.name, fmt["code"])
        last = 1_048_575
        for c, f in enumerate(spec.fields):
            lst = cfg["field_lists"].get(f.name)
            prompt = {"input_title": f.name[:32], "input_message": f"{f.label}. {HINTS.get(f.type, '')}"[:255]}
            if lst:
                ws.data_validation(
                    HEADER_ROWS,
                    c,
                    last,
                    c,
                    {
                        "validate": "list",
                        "source": ranges[lst],
                        "error_type": "warning",
                        "error_title": "Giá trị không có trong danh sách",
                        "error_message": "Hãy chọn trong danh sách thả xuống (hoặc gõ đúng mã).",
                        **prompt,
                    },
                )
            else:
                ws.data_validation(HEADER_ROWS, c, last, c, {"validate": "any", **prompt})
        ws.freeze_panes(HEADER_ROWS, 1)
        ws.autofilter(2, 0, 2, len(spec.fields) - 1)
        types = [f.type for f in spec.fields]
        names = spec.names
        cell_fmt = [fmt.get(t) if t in NUMBER_FORMATS else fmt["text"] for t in types]
        for r, rec in enumerate((rows or {}).get(kind, ()), start=HEADER_ROWS):
            for c, name in enumerate(names):
                v = _as_cell(rec.get(name), types[c])
                if v is None:
                    continue
                if isinstance(v, dt.datetime):
                    ws.write_datetime(r, c, v, cell_fmt[c])
                elif isinstance(v, str):
                    ws.write_string(r, c, v, cell_fmt[c])
                else:
                    ws.write(r, c, v, cell_fmt[c])
    wb.close()
    return path


def _col(i: int) -> str:
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else config()["file_name"])
    build(out)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
