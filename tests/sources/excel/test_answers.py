"""Answers a clerk can act on, in the result workbook of a real file run through the inbox and the warehouse."""

from __future__ import annotations

import datetime as dt

import openpyxl

from certpipe.core.schema import message
from tests.sources.excel.conftest import FACILITY, births, template_file
from tests.sources.excel.test_inbox import drop, result_book, run

SHEET = "Giấy chứng sinh"


def _workbook(tmp_path):
    recs = list({r["MA_GCS"]: r for r in births(8, seed=81, bad_ratio=0)[0]}.values())[:6]
    path = template_file(tmp_path / "mau.xlsx", recs)
    wb = openpyxl.load_workbook(path)
    ws = wb[SHEET]
    codes = [c.value for c in ws[3]]
    col = {n: codes.index(n) + 1 for n in codes}
    # row 4: the clerk typed names instead of codes, and a zero-width space crept into the mother's name
    ws.cell(4, col["GIOI_TINH_CON"], "Nam")
    ws.cell(4, col["MA_DANTOC_NND"], "Kinh")
    ws.cell(4, col["HOTEN_NND"], recs[0]["HOTEN_NND"] + "\u200b")
    # rows 5-6: the issue date merged over two rows (row 6 reads blank)
    ws.cell(6, col["NGAY_CT"]).value = None
    ws.merge_cells(start_row=5, start_column=col["NGAY_CT"], end_row=6, end_column=col["NGAY_CT"])
    # row 7: a formula the exporter never computed
    ws.cell(7, col["HOTEN_NND"], '=UPPER("a")')
    # row 8: the birth date without its time
    c = ws.cell(8, col["NGAY_SINH_CON"], dt.datetime(2026, 11, 1))
    c.number_format = "dd/mm/yyyy"
    # row 9: an ID Excel rounded
    ws.cell(9, col["SO_CCCD_NND"], 1234567890123456789)
    # under the table: totals and signatures
    ws.cell(11, col["HOTEN_NND"], "Tổng cộng: 6 giấy")
    ws.cell(13, col["NGUOI_GHI_PHIEU"], "Người lập biểu")
    ws.cell(13, col["THU_TRUONG_DVI"], "Giám đốc")
    # a column header with a typo
    ws.cell(2, len(codes) + 1, "Ngày sin của mẹ")
    ws.cell(4, len(codes) + 1, "01/01/1990")
    wb.save(path)
    return path, recs, col


def test_result_explains_what_the_clerk_can_fix(bucket, wh, warehouse_dsn, tmp_path, monkeypatch):
    alerts = []
    monkeypatch.setattr("certpipe.sources.excel.landing.check_refusal_rate", lambda s, **kw: alerts.append(s))
    from openpyxl.utils import get_column_letter

    path, recs, col = _workbook(tmp_path)
    drop(bucket, "thang-11.xlsx", path.read_bytes())
    [res] = run(bucket, warehouse_dsn)
    assert res["status"] == "done"
    assert res["received"] == 6  # the totals and signature rows are not records
    by_rule = res["refusals_by_rule"]
    assert by_rule.get("REQUIRED", 0) >= 2 and by_rule["TIME_MISSING"] == 1 and by_rule["NUMBER_ROUNDED"] == 1
    assert "SEX_CODE" not in by_rule and "ETHNICITY_CODE" not in by_rule  # "Nam", "Kinh" became codes
    stored = dict(
        wh.execute(
            "SELECT record->>'HOTEN_NND', record->>'MA_DANTOC_NND' FROM wh.certificate WHERE cert_key = %s",
            (recs[0]["MA_GCS"],),
        ).fetchall()
    )
    assert stored == {recs[0]["HOTEN_NND"]: "01"}  # invisible character removed, name mapped to its code
    assert sum(a["received"] for a in alerts) == 6

    book = result_book(bucket, f"results/{FACILITY}/{res['file_id']}-thang-11-ket-qua.xlsx")
    summary = " ".join(str(v) for row in book["Tóm tắt"].iter_rows(values_only=True) for v in row if v)
    assert "2 dòng cuối bảng (dòng 11, 13)" in summary and "không tính là lỗi" in summary
    assert "ký tự ẩn" in summary and "1 ô (dòng 4)" in summary
    letter = get_column_letter(col["NGAY_CT"])
    assert "vùng ô gộp" in summary and f"{letter}5:{letter}6" in summary
    assert "công thức" in summary
    assert '"Ngày sin của mẹ"' in summary and "Ngày sinh của mẹ (NGAYSINH_NND)" in summary
    ws = book[SHEET]
    rows = {r[0].value: r for r in ws.iter_rows(min_row=2)}
    assert sorted(rows) == [4, 5, 6, 7, 8, 9]
    assert "ô gộp" in rows[6][2].value and "Paste Values" in rows[7][2].value
    assert message("TIME_MISSING") in rows[8][2].value and message("NUMBER_ROUNDED") in rows[9][2].value
    assert rows[4][1].value != "Không nhận"
    # a wrong value is told what is expected: the codes of a short list
    from certpipe.sources.excel.result import expected

    assert expected("GCS", "GIOI_TINH_CON") == "Giá trị hợp lệ: 1 - Nam; 2 - Nữ; 3 - Chưa xác định."
    assert "01 - Kinh" in expected("GCS", "MA_DANTOC_NND") and "dd/mm/yyyy" in expected("GCS", "NGAY_CT")
