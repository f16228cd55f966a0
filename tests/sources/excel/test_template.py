"""The template hospitals download: generated from include/schemas/, and what Excel will show them."""

from __future__ import annotations

import csv

import openpyxl

from certpipe.core.schema import kind_spec, schemas_dir
from certpipe.sources.excel import template
from certpipe.sources.excel.reader import Workbook


def test_template_sheets_headers_formats_and_lists(tmp_path):
    path = template.build(tmp_path / "mau.xlsx")
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["Hướng dẫn", "Danh mục", "Giấy chứng sinh", "Giấy báo tử"]
    assert wb["Danh mục"].sheet_state == "hidden"
    assert "HƯỚNG DẪN" in wb["Hướng dẫn"]["A1"].value
    for kind, name in (("GCS", "Giấy chứng sinh"), ("GBT", "Giấy báo tử")):
        ws = wb[name]
        spec = kind_spec(kind)
        labels = [c.value for c in ws[2]]
        codes = [c.value for c in ws[3]]
        assert codes == list(spec.names)  # official field codes, in the spec's order
        required = template.required_fields(kind)
        for f, label in zip(spec.fields, labels, strict=True):
            assert label == f.label + (" *" if f.name in required else "")
        assert ws.freeze_panes == "B4"
        # ID and code columns are text, so leading zeros survive typing
        dims = list(ws.column_dimensions.values())
        for c, f in enumerate(spec.fields, start=1):
            fmt = next(d.number_format for d in dims if d.min <= c <= d.max)
            want = {"date": "dd/mm/yyyy", "datetime": "dd/mm/yyyy hh:mm", "int": "0"}.get(f.type, "@")
            assert fmt == want, (f.name, fmt)
        lists = {
            str(dv.sqref).split(":")[0]: dv.formula1 for dv in ws.data_validations.dataValidation if dv.type == "list"
        }
        sex = "GIOI_TINH_CON" if kind == "GCS" else "GIOI_TINH"
        eth = "MA_DANTOC_NND" if kind == "GCS" else "MA_DANTOC"
        col = {n: openpyxl.utils.get_column_letter(i + 1) for i, n in enumerate(spec.names)}
        assert f"{col[sex]}4" in lists and f"{col[eth]}4" in lists

    # the ethnicity drop-down lists every ethnicity of the reference file
    with (schemas_dir() / "reference" / "ethnicities.csv").open(encoding="utf-8") as f:
        ethnicities = [f"{r['code']} - {r['name']}" for r in csv.DictReader(f)]
    dm = wb["Danh mục"]
    column = [dm.cell(r, 3).value for r in range(2, len(ethnicities) + 2)]
    assert column == ethnicities
    ws = wb["Giấy chứng sinh"]
    eth_list = next(
        dv.formula1
        for dv in ws.data_validations.dataValidation
        if dv.type == "list" and "MA_DANTOC_NND" in (dv.promptTitle or "")
    )
    assert eth_list.endswith(f"$C$2:$C${len(ethnicities) + 1}")


def test_empty_template_is_recognised_by_the_reader(tmp_path):
    path = template.build(tmp_path / "mau.xlsx")
    with Workbook(path) as wb:
        sheets = [(s.layout.name, s.layout.kind, s.layout.header_row, len(list(s.data_rows()))) for s in wb.sheets()]
    assert sheets == [
        ("Hướng dẫn", None, 0, 0),
        ("Danh mục", None, 0, 0),
        ("Giấy chứng sinh", "GCS", 3, 0),
        ("Giấy báo tử", "GBT", 3, 0),
    ]
