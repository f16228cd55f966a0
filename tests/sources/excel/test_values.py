"""Values kept exactly, read from real workbooks: numbers in text columns, codes, rounded IDs, serial date-times,
a time in its own column, a missing time, official names for codes, invisible characters, trailing rows."""

from __future__ import annotations

import datetime as dt
import json

import openpyxl
import pytest

from certpipe.sources.excel.landing import value_refusals
from certpipe.sources.excel.reader import Workbook, read_records
from certpipe.warehouse import raw_json
from tests.sources.excel.conftest import births, canonical, template_file

SHEET = "Giấy chứng sinh"


def one_birth(tmp_path, edits: dict, *, extra_header: dict | None = None, seed: int = 4):
    """The template with one clean birth, cells of row 4 overwritten ({field: value or (value, number format)}),
    extra columns appended ({header: value or (value, format)}). Returns (path, original record)."""
    rec = births(1, seed=seed, bad_ratio=0)[0][0]
    path = template_file(tmp_path / "mau.xlsx", [rec])
    wb = openpyxl.load_workbook(path)
    ws = wb[SHEET]
    codes = [c.value for c in ws[3]]
    for name, v in edits.items():
        v, fmt = v if isinstance(v, tuple) else (v, None)
        cell = ws.cell(4, codes.index(name) + 1, v)
        cell.number_format = fmt or "General"
    for k, (header, v) in enumerate((extra_header or {}).items()):
        v, fmt = v if isinstance(v, tuple) else (v, None)
        ws.cell(2, len(codes) + 1 + k, header)
        cell = ws.cell(4, len(codes) + 1 + k, v)
        cell.number_format = fmt or "General"
    wb.save(path)
    return path, rec


def read_one(path):
    [rec] = [r for lay, _, r in read_records(path) if lay.kind == "GCS"]
    landed = json.loads(raw_json(rec))  # what the warehouse lands and ingests
    [(row, reasons)] = canonical([landed], "GCS")
    extra = value_refusals("GCS", [landed]).get(0, [])
    return row, sorted({*reasons, *(r["code"] for r in extra)}), extra


def test_numbers_in_text_columns_keep_their_integer_text(tmp_path):
    path, rec = one_birth(tmp_path, {"SO": 40400, "MA_BN": 26435733.0, "QUYEN_SO": 12})
    row, reasons, _ = read_one(path)
    assert (row["SO"], row["MA_BN"], row["QUYEN_SO"]) == ("40400", "26435733", "12")
    assert reasons == []
    # the key a HIS feed would give the same certificate (typed as text) is the same
    assert canonical([{**rec, "SO": "40400", "QUYEN_SO": "12"}], "GCS")[0][0]["SO"] == row["SO"]


def test_codes_keep_their_standard_width(tmp_path):
    path, _ = one_birth(
        tmp_path, {"MA_DANTOC_NND": 1, "MATINH_CU_TRU": 1.0, "MA_BHXH_NND": 110014466, "MAXA_CU_TRU": 328}
    )
    row, reasons, _ = read_one(path)
    assert (row["MA_DANTOC_NND"], row["MATINH_CU_TRU"], row["MA_BHXH_NND"], row["MAXA_CU_TRU"]) == (
        "01",
        "01",
        "0110014466",
        "00328",
    )
    assert reasons == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("SO_CCCD_NND", 1234567890123456789), ("MA_BN", 12345678901234567), ("SO_CCCD_NND", "1,23457E+15")],
    ids=["id-rounded", "text-rounded", "scientific-text"],
)
def test_numbers_excel_rounded_are_refused_with_how_to_fix(tmp_path, field, value):
    from certpipe.core.schema import message

    path, _ = one_birth(tmp_path, {field: value})
    _, reasons, extra = read_one(path)
    assert "NUMBER_ROUNDED" in reasons
    assert extra[0]["field"] == field and "Text" in message("NUMBER_ROUNDED")


@pytest.mark.parametrize("engine_cells", [6_000_000, 0], ids=["calamine", "openpyxl"])
def test_serial_date_times_round_to_the_nearest_second(tmp_path, monkeypatch, engine_cells):
    monkeypatch.setenv("CERTPIPE_EXCEL_CALAMINE_MAX_CELLS", str(engine_cells))
    serial = 46297 + (21 * 60 + 50) / 1440 - 1e-9  # 21:50 as a spreadsheet stores it, a hair below
    path, _ = one_birth(
        tmp_path,
        {
            "NGAY_SINH_CON": (serial, "0.000000"),  # a plain number: the serial itself
            "NGAY_CT": (dt.datetime(2026, 10, 3, 23, 59, 59, 999_600), "dd/mm/yyyy hh:mm"),
        },
    )
    row, _, _ = read_one(path)
    assert row["NGAY_SINH_CON"] == "202610022150"
    assert row["NGAY_CT"] == "20261004"  # 23:59:59.9996 is the next day's first second


@pytest.mark.parametrize(
    ("day", "time"),
    [
        ((dt.datetime(2026, 10, 2), "dd/mm/yyyy"), (dt.time(21, 50), "hh:mm")),
        ("02/10/2026", "21h50"),
        ((dt.datetime(2026, 10, 2), "dd/mm/yyyy"), ((21 * 60 + 50) / 1440, "hh:mm")),
    ],
    ids=["excel-date-and-time", "text", "time-fraction"],
)
def test_a_time_in_its_own_column_completes_the_date(tmp_path, day, time):
    path, _ = one_birth(tmp_path, {"NGAY_SINH_CON": day}, extra_header={"Giờ sinh": time})
    row, reasons, _ = read_one(path)
    assert row["NGAY_SINH_CON"] == "202610022150" and reasons == []
    with Workbook(path) as wb:
        lay = next(s.layout for s in wb.sheets() if s.layout.kind == "GCS")
    assert "Giờ sinh" not in lay.ignored and list(lay.times.values()) == ["NGAY_SINH_CON"]


@pytest.mark.parametrize(
    "day",
    [(dt.datetime(2026, 10, 2), "dd/mm/yyyy"), "02/10/2026", (46297, "dd/mm/yyyy")],
    ids=["excel-date", "text", "serial-day"],
)
def test_a_required_time_that_is_missing_is_refused_never_midnight(tmp_path, day):
    path, _ = one_birth(tmp_path, {"NGAY_SINH_CON": day})
    row, reasons, extra = read_one(path)
    assert "TIME_MISSING" in reasons and row.get("NGAY_SINH_CON") != "202610020000"
    assert [r["field"] for r in extra] == ["NGAY_SINH_CON"]


def test_midnight_typed_with_its_time_is_midnight(tmp_path):
    path, _ = one_birth(tmp_path, {"NGAY_SINH_CON": (dt.datetime(2026, 10, 2), "dd/mm/yyyy hh:mm")})
    row, reasons, _ = read_one(path)
    assert row["NGAY_SINH_CON"] == "202610020000" and "TIME_MISSING" not in reasons


def test_official_names_in_coded_fields_become_codes(tmp_path):
    path, _ = one_birth(
        tmp_path,
        {
            "GIOI_TINH_CON": "Nữ",
            "MA_DANTOC_NND": "Kinh",
            "MA_QUOCTICH_NND": "Việt Nam",
            "MATINH_CU_TRU": "Thành phố Hà Nội",
            "SINHCON_PHAUTHUAT": "Có",
        },
    )
    row, reasons, _ = read_one(path)
    assert (
        row["GIOI_TINH_CON"],
        row["MA_DANTOC_NND"],
        row["MA_QUOCTICH_NND"],
        row["MATINH_CU_TRU"],
        row["SINHCON_PHAUTHUAT"],
    ) == (2, "01", "704", "01", 1)
    assert reasons == []


def test_a_name_that_is_no_official_name_gets_the_list_of_what_is_expected(tmp_path):
    from certpipe.core.schema import message

    path, _ = one_birth(tmp_path, {"GIOI_TINH_CON": "Trai gái"})
    _, reasons, _ = read_one(path)
    assert "SEX_CODE" in reasons and "1" in message("SEX_CODE") and "2" in message("SEX_CODE")


def test_invisible_characters_are_removed_and_counted(tmp_path):
    path, _ = one_birth(tmp_path, {"HOTEN_NND": "\u200bNguyễn Thị\u200d Hương\ufeff", "SO": "57\u2060"})
    row, reasons, _ = read_one(path)
    assert (row["HOTEN_NND"], row["SO"]) == ("Nguyễn Thị Hương", "57") and reasons == []
    with Workbook(path) as wb:
        sheet = next(s for s in wb.sheets() if s.layout.kind == "GCS")
        list(sheet.data_rows())
        assert sheet.notes()["invisible"] == 2 and sheet.notes()["invisible_rows"] == [4]


def test_rows_closing_the_table_are_set_aside_not_refused(tmp_path):
    recs = births(4, seed=5, bad_ratio=0)[0]
    path = template_file(tmp_path / "mau.xlsx", recs)
    wb = openpyxl.load_workbook(path)
    ws = wb[SHEET]
    codes = [c.value for c in ws[3]]
    col = {n: codes.index(n) + 1 for n in codes}
    ws.cell(5, col["GHI_CHU"], "dòng giữa có ít giá trị")  # overwrite: record 2 stays a record
    ws.cell(9, col["HOTEN_NND"], "Tổng cộng")
    ws.cell(9, col["SO_CON"], 4)
    ws.cell(11, col["HOTEN_NND"], "Người lập biểu")
    ws.cell(11, col["NGUOI_GHI_PHIEU"], "Giám đốc")
    ws.cell(12, col["NOI_SINH_CON"], "(Ký, ghi rõ họ tên)")
    wb.save(path)
    with Workbook(path) as wb:
        sheet = next(s for s in wb.sheets() if s.layout.kind == "GCS")
        rows = [r for r, _, _ in sheet.data_rows()]
        assert rows == [4, 5, 6, 7] and sheet.notes()["trailing"] == [9, 11, 12]


def test_unknown_header_gets_the_nearest_official_name(tmp_path):
    path, _ = one_birth(tmp_path, {}, extra_header={"Ngày sin của mẹ": "x", "Cột riêng của viện": 1})
    with Workbook(path) as wb:
        lay = next(s.layout for s in wb.sheets() if s.layout.kind == "GCS")
    assert lay.hints == {"Ngày sin của mẹ": "Ngày sinh của mẹ (NGAYSINH_NND)"}
    assert "Cột riêng của viện" in lay.ignored


def test_control_characters_escaped_in_the_xml_are_removed(tmp_path):
    """Exporters write control characters as _x0000_ escapes: NUL cannot be stored, BEL cannot be seen."""
    from tests.sources.excel.conftest import rewrite_part, sheet_part

    path, rec = one_birth(tmp_path, {})
    name = rec["HOTEN_NND"].encode()
    rewrite_part(path, sheet_part(path, SHEET), lambda d: d.replace(name, name[:3] + b"_x0000__x0007_" + name[3:], 1))
    row, reasons, _ = read_one(path)
    assert row["HOTEN_NND"] == rec["HOTEN_NND"] and reasons == []
