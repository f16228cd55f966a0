"""Reading real-world workbooks: what comes out normalises to exactly what the hospital meant."""

from __future__ import annotations

import dataclasses
import datetime as dt
import zipfile

import pytest

from certpipe.sources.excel.reader import Limits, Unreadable, Workbook, check_file, read_records
from tests.sources.excel.conftest import (
    births,
    bomb_file,
    canonical,
    deaths,
    encrypted_file,
    his_export,
    template_file,
    xls_file,
)


def by_kind(path, limits=None):
    out = {"GCS": [], "GBT": []}
    rows = {"GCS": [], "GBT": []}
    for layout, row_no, rec in read_records(path, limits):
        out[layout.kind].append(rec)
        rows[layout.kind].append((layout.number, row_no))
    return out, rows


def test_his_export_with_titles_shuffled_labels_and_messy_values_reads_as_intended(tmp_path):
    gcs, _ = births(60)
    gbt, _ = deaths(30)
    path = tmp_path / "xuat-his.xlsx"
    where = his_export(path, [("Sinh", "GCS", gcs), ("Tử vong", "GBT", gbt)])
    got, rows = by_kind(path)
    # every record normalises (values and refusals) exactly as the HIS meant it
    assert canonical(got["GCS"], "GCS") == canonical(gcs, "GCS")
    assert canonical(got["GBT"], "GBT") == canonical(gbt, "GBT")
    # Excel row numbers point at the hospital's own rows (blank and formatting-only rows skipped)
    assert rows["GCS"] == [(2, where[(2, i)]) for i in range(len(gcs))]
    assert rows["GBT"] == [(3, where[(3, i)]) for i in range(len(gbt))]
    with Workbook(path) as wb:
        layouts = [s.layout for s in wb.sheets()]
    assert [(lay.name, lay.kind, lay.header_row) for lay in layouts] == [
        ("Thông tin", None, 0),
        ("Sinh", "GCS", 5),
        ("Tử vong", "GBT", 5),
    ]
    assert layouts[1].ignored == ["STT", "Ghi chú nội bộ"]


def test_official_field_codes_as_headers(tmp_path):
    gcs, _ = births(25, seed=5)
    path = tmp_path / "codes.xlsx"
    his_export(path, [("Data", "GCS", gcs)], use_codes=True, extra_sheet=False)
    got, _ = by_kind(path)
    assert canonical(got["GCS"], "GCS") == canonical(gcs, "GCS")


def test_template_filled_round_trips(tmp_path):
    gcs, _ = births(50, seed=8)
    gbt, _ = deaths(20, seed=8)
    path = template_file(tmp_path / "mau.xlsx", gcs, gbt)
    got, rows = by_kind(path)
    assert canonical(got["GCS"], "GCS") == canonical(gcs, "GCS")
    assert canonical(got["GBT"], "GBT") == canonical(gbt, "GBT")
    assert rows["GCS"][0] == (3, 4)  # third sheet, first row under the label and code rows


def test_drop_down_values_read_as_codes(tmp_path):
    import openpyxl

    gcs, _ = births(3, seed=2, bad_ratio=0)
    path = template_file(tmp_path / "mau.xlsx", gcs)
    wb = openpyxl.load_workbook(path)
    ws = wb["Giấy chứng sinh"]
    codes = [c.value for c in ws[3]]
    ws.cell(4, codes.index("GIOI_TINH_CON") + 1, "2 - Nữ")
    ws.cell(4, codes.index("MA_DANTOC_NND") + 1, "01 - Kinh")
    ws.cell(4, codes.index("SINHCON_PHAUTHUAT") + 1, "1 - Có")
    wb.save(path)
    got, _ = by_kind(path)
    rec = canonical(got["GCS"], "GCS")[0][0]
    assert (rec["GIOI_TINH_CON"], rec["MA_DANTOC_NND"], rec["SINHCON_PHAUTHUAT"]) == (2, "01", 1)


def test_streamed_fallback_reads_the_same(tmp_path):
    """A sheet too big for calamine's in-memory range goes through openpyxl read-only: same records."""
    gcs, _ = births(40, seed=9)
    gbt, _ = deaths(15, seed=9)
    path = tmp_path / "xuat-his.xlsx"
    his_export(path, [("Sinh", "GCS", gcs), ("Tử vong", "GBT", gbt)])
    fast = by_kind(path)
    streamed = by_kind(path, dataclasses.replace(Limits(), calamine_max_cells=0))
    with Workbook(path, dataclasses.replace(Limits(), calamine_max_cells=0)) as wb:
        assert {s.layout.engine for s in wb.sheets()} == {"openpyxl"}
    assert canonical(streamed[0]["GCS"], "GCS") == canonical(fast[0]["GCS"], "GCS")
    assert canonical(streamed[0]["GBT"], "GBT") == canonical(fast[0]["GBT"], "GBT")
    assert streamed[1] == fast[1]


def test_calamine_chosen_for_normal_sheets(tmp_path):
    path = template_file(tmp_path / "mau.xlsx", births(5)[0])
    with Workbook(path) as wb:
        assert {s.layout.engine for s in wb.sheets()} == {"calamine"}


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda p, ok: p.write_text("MA_GCS;HOTEN_NND\n1;2\n"), "FILE_NOT_WORKBOOK"),
        (lambda p, ok: p.write_bytes(b""), "FILE_NOT_WORKBOOK"),
        (lambda p, ok: xls_file(p), "FILE_LEGACY_XLS"),
        (lambda p, ok: encrypted_file(p, ok), "FILE_ENCRYPTED"),
        (lambda p, ok: bomb_file(p), "FILE_BOMB"),
        (lambda p, ok: p.write_bytes(ok.read_bytes()[: ok.stat().st_size // 2]), "FILE_INCOMPLETE"),
        (lambda p, ok: _damaged(p, ok), "FILE_CORRUPT"),
        (lambda p, ok: _docx(p), "FILE_NOT_WORKBOOK"),
    ],
    ids=["csv", "empty", "xls", "password", "bomb", "copy-stopped-half-way", "damaged", "docx"],
)
def test_unreadable_files_are_refused_with_a_rule(tmp_path, make, code):
    ok = template_file(tmp_path / "ok.xlsx", births(5)[0])
    bad = tmp_path / "bad.xlsx"
    make(bad, ok)
    with pytest.raises(Unreadable) as e:  # noqa: PT012 - either step may be the one that refuses
        check_file(bad)
        list(read_records(bad))
    assert e.value.code == code


def test_oversized_file(tmp_path):
    ok = template_file(tmp_path / "ok.xlsx", births(5)[0])
    with pytest.raises(Unreadable) as e:
        check_file(ok, Limits(max_bytes=1000))
    assert e.value.code == "FILE_TOO_LARGE"


def _damaged(p, ok):
    """Whole (the zip directory is there) but damaged inside: the sheet's bytes were overwritten."""
    data = bytearray(ok.read_bytes())
    with zipfile.ZipFile(ok) as z:
        info = z.getinfo("xl/worksheets/sheet3.xml")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start : start + 40] = b"\xff" * 40
    p.write_bytes(bytes(data))


def _docx(p):
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")


@pytest.mark.parametrize("engine_cells", [6_000_000, 0], ids=["calamine", "openpyxl"])
@pytest.mark.parametrize(
    ("born", "want"),
    [(dt.datetime(2026, 10, 2, 7, 5), "202610020705"), (dt.datetime(2026, 10, 2, 0, 0), "202610020000")],
    ids=["07:05", "midnight"],
)
def test_excel_dates_keep_their_meaning(tmp_path, born, want, engine_cells):
    """An Excel date in a date column; a date-time in a date-time column, midnight included (both engines)."""
    import openpyxl

    gcs, _ = births(1, seed=4, bad_ratio=0)
    path = template_file(tmp_path / "mau.xlsx", gcs)
    wb = openpyxl.load_workbook(path)
    ws = wb["Giấy chứng sinh"]
    codes = [c.value for c in ws[3]]
    ws.cell(4, codes.index("NGAY_SINH_CON") + 1, born).number_format = "dd/mm/yyyy hh:mm"
    ws.cell(4, codes.index("NGAY_CT") + 1, dt.datetime(2026, 10, 3)).number_format = "dd/mm/yyyy"
    wb.save(path)
    got = by_kind(path, dataclasses.replace(Limits(), calamine_max_cells=engine_cells))[0]["GCS"]
    rec, reasons = canonical(got, "GCS")[0]
    assert (rec["NGAY_SINH_CON"], rec["NGAY_CT"]) == (want, "20261003")
    assert "DATETIME_INVALID" not in reasons
