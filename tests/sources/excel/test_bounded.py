"""Bounded reading: whatever a sheet declares or holds far from its data, reading uses bounded memory, and
sheets holding values beyond the caps are refused with a rule and a Vietnamese detail."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import textwrap

import pytest

from certpipe.sources.excel.reader import Limits, Unreadable, check_file, read_records
from tests.sources.excel.conftest import births, canonical, rewrite_part, sheet_part, template_file

GCS_SHEET = "Giấy chứng sinh"


def _no_dimension(data: bytes) -> bytes:
    return re.sub(rb"<dimension [^>]*/>", b"", data)


def _stray(cell: bytes):
    """Add a cell at the far corner of the sheet (the last row Excel has), and drop <dimension>."""

    def edit(data: bytes) -> bytes:
        data = _no_dimension(data)
        return data.replace(b"</sheetData>", b'<row r="1048576">' + cell + b"</row></sheetData>")

    return edit


def _read_in_subprocess(path, limit_bytes: int = 1536 * 2**20) -> str:
    """Read the workbook in a child process whose address space is capped (a dense range of the sheet would
    need hundreds of GiB): prints the number of records or the refusal code."""
    code = textwrap.dedent(
        f"""
        import resource
        from certpipe.sources.excel.reader import Unreadable, read_records, check_file
        import certpipe.core.schema, python_calamine, openpyxl  # imported before the cap
        resource.setrlimit(resource.RLIMIT_AS, ({limit_bytes}, {limit_bytes}))
        try:
            check_file(__import__("pathlib").Path({str(path)!r}))
            print(sum(1 for _ in read_records({str(path)!r})))
        except Unreadable as e:
            print(e.code)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


@pytest.mark.parametrize(
    "cell",
    [b'<c r="XFD1048576" s="1"/>', b'<c r="XFD1048576" s="1"><v></v></c>'],
    ids=["formatted-empty", "empty-value"],
)
def test_stray_formatted_cell_far_away_reads_the_data_in_bounded_memory(tmp_path, cell):
    gcs, _ = births(20, seed=41)
    path = template_file(tmp_path / "xa.xlsx", gcs)
    rewrite_part(path, sheet_part(path, GCS_SHEET), _stray(cell))
    assert _read_in_subprocess(path) == str(len(gcs))
    got = [rec for lay, _, rec in read_records(path) if lay.kind == "GCS"]
    assert canonical(got, "GCS") == canonical(gcs, "GCS")


def test_stray_value_far_away_is_refused_naming_the_column(tmp_path):
    gcs, _ = births(5, seed=42)
    path = template_file(tmp_path / "xa.xlsx", gcs)
    rewrite_part(path, sheet_part(path, GCS_SHEET), _stray(b'<c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c>'))
    assert _read_in_subprocess(path) == "FILE_TOO_MANY_COLUMNS"
    with pytest.raises(Unreadable) as e:
        list(read_records(path))
    assert e.value.code == "FILE_TOO_MANY_COLUMNS"
    assert "XFD" in e.value.detail and GCS_SHEET in e.value.detail


def test_huge_declared_dimension_is_harmless(tmp_path):
    gcs, _ = births(10, seed=43)
    path = template_file(tmp_path / "dim.xlsx", gcs)
    rewrite_part(
        path,
        sheet_part(path, GCS_SHEET),
        lambda d: re.sub(rb'<dimension ref="[^"]*"/>', b'<dimension ref="A1:XFD1048576"/>', d),
    )
    assert _read_in_subprocess(path) == str(len(gcs))


def test_sheet_without_dimension_and_rows_without_references(tmp_path):
    """Some exporters write neither <dimension> nor r= on rows and cells: positions are counted."""
    gcs, _ = births(12, seed=44)
    path = template_file(tmp_path / "ref.xlsx", gcs)
    expected = canonical([rec for lay, _, rec in read_records(path) if lay.kind == "GCS"], "GCS")
    rewrite_part(
        path,
        sheet_part(path, GCS_SHEET),
        lambda d: re.sub(rb'(<(?:row|c) [^>]*?) r="[A-Z]*\d+"', rb"\1", _no_dimension(d)),
    )
    got = [rec for lay, _, rec in read_records(path) if lay.kind == "GCS"]
    assert canonical(got, "GCS") == expected


@pytest.mark.parametrize(
    ("limits", "code", "detail"),
    [
        (Limits(max_rows=10), "FILE_TOO_MANY_ROWS", "tối đa 10"),
        (Limits(max_cols=20), "FILE_TOO_MANY_COLUMNS", "tối đa 20 cột"),
        (Limits(max_cells=100), "FILE_TOO_MANY_CELLS", "100"),
    ],
    ids=["rows", "columns", "cells"],
)
def test_caps_refuse_with_a_clear_rule(tmp_path, limits, code, detail):
    from certpipe.core.schema import message

    path = template_file(tmp_path / "lon.xlsx", births(30, seed=45)[0])
    check_file(path, limits)
    with pytest.raises(Unreadable) as e:
        list(read_records(path, limits))
    assert e.value.code == code and detail in e.value.detail
    assert message(code)  # a Vietnamese message for the clerk


def test_streamed_engine_stops_after_the_last_value_row(tmp_path):
    gcs, _ = births(8, seed=46)
    path = template_file(tmp_path / "xa.xlsx", gcs)
    rewrite_part(path, sheet_part(path, GCS_SHEET), _stray(b'<c r="A1048576" s="1"/>'))
    rows = [r for lay, r, _ in read_records(path, dataclasses.replace(Limits(), calamine_max_cells=0))]
    assert len(rows) == len(gcs) and max(rows) < 100


def test_row_fast_path_agrees_with_the_token_walk(tmp_path):
    """The scan's C-level row path and its general token walk find the same extents, counts and notes."""
    import datetime as dt
    import zipfile

    import openpyxl

    from certpipe.sources.excel import sheetscan

    path = template_file(tmp_path / "t.xlsx", births(30, seed=47)[0])
    wb = openpyxl.load_workbook(path)
    ws = wb[GCS_SHEET]
    ws["B40"] = dt.datetime(2026, 1, 2)
    ws["B40"].number_format = "dd/mm/yyyy hh:mm"
    ws["C41"] = "=1+1"
    ws.merge_cells("D42:E43")
    ws["AZ44"] = ""
    wb.save(path)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(sheet_part(path, GCS_SHEET))
        timed = sheetscan.time_styles(zf)
        fast = sheetscan.scan(zf, info, timed)
        slow = sheetscan.SheetStats()
        sheetscan._Scanner(slow, timed).tokens(zf.read(info))
    assert fast == slow
    assert fast.last_row == 40 and fast.value_rows > 30 and (40, 2) in fast.midnights and (41, 3) in fast.formulas


def test_a_time_just_after_midnight_is_not_midnight(tmp_path):
    """46309.00208 is 00:03 of a day: neither path takes it for a whole day (the digits are not a whole serial)."""
    import zipfile

    from certpipe.sources.excel import sheetscan

    path = template_file(tmp_path / "t.xlsx", births(2, seed=48)[0])
    part = sheet_part(path, GCS_SHEET)
    rewrite_part(
        path,
        part,
        lambda d: d.replace(
            b"</sheetData>", b'<row r="50"><c r="B50" s="1"><v>46309.00208333333</v></c></row></sheetData>'
        ),
    )
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(part)
        fast = sheetscan.scan(zf, info, frozenset({1}))
        slow = sheetscan.SheetStats()
        sheetscan._Scanner(slow, frozenset({1})).tokens(zf.read(info))
    assert (50, 2) not in fast.midnights and (50, 2) not in slow.midnights
