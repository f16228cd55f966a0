"""Read hospital workbooks: safety checks, header detection, column mapping, streamed rows.

A real HIS export is not the template: title rows above the header, Vietnamese labels or official field
codes (or both, "Họ tên mẹ (HOTEN_NND)"), columns in any order, several sheets, blank and formatting-only
rows. Each sheet's header row is the row (among the first 30) that names the most fields of one record kind;
a sheet with no such row (instructions, code lists, pivot tables) is skipped. Values are passed on as the
workbook holds them (Excel dates, numbers, text): `certpipe.core.normalize` reads them, as for every source.

Reading is streamed and bounded: every sheet's XML is first scanned in constant memory (`sheetscan`): a sheet
holding values beyond the caps (rows, columns, cells) is refused with a rule saying which; python-calamine
(Rust, fast) builds a dense range of the sheet, so it reads only sheets whose every cell and declared
<dimension> fit `calamine_max_cells`; other sheets (a stray cell far from the data, a huge or missing
dimension) are read with openpyxl in read-only mode (row by row), stopping after the last row with a value.

`check_file` refuses what must not be opened: not a workbook, legacy .xls, password-protected, too large,
decompression bombs. Errors carry a rule code (rules.json FILE_*) and never a value from the file.
"""

from __future__ import annotations

import os
import posixpath
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import ParseError

from defusedxml import ElementTree as ET  # workbook XML is untrusted: no entity expansion, no DTD

from certpipe.sources.excel import sheetscan
from certpipe.sources.excel.header import (  # noqa: F401 - public names of the reader before the split
    MIN_HEADER_FIELDS,
    Vocabulary,
    _empty,
    code_list_fields,
    detect_header,
    fold,
    hint,
    time_columns,
    vocabulary,
)
from certpipe.sources.excel.sheet import Sheet, SheetLayout
from certpipe.sources.excel.sheetscan import SheetStats, col_letters

HEADER_SCAN = 30  # rows searched for the header
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls, and password-protected .xlsx (encrypted OOXML)
ZIP_MAGIC = b"PK\x03\x04"
_NS = {
    "m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "pr": "http://schemas.openxmlformats.org/package/2006/relationships",
}


# what a damaged zip or XML part raises while it is read (CRC, inflate, truncated part, bad XML, bad numbers)
_BROKEN = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    ParseError,
    KeyError,
    IndexError,
    OSError,
    ValueError,
    TypeError,
    NotImplementedError,
    RuntimeError,
)


class Unreadable(Exception):
    """The file cannot be read; `code` is a FILE_* rule of rules.json (message in Vietnamese); `detail` says
    where, in Vietnamese, without any value from the file (sheet names and cell addresses only)."""

    def __init__(self, code: str, detail: str | None = None):
        super().__init__(code)
        self.code = code
        self.detail = detail


def _env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    return int(v) if v else default


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 100 * 2**20  # file size
    max_unzipped: int = 4 * 2**30  # sum of the uncompressed parts
    max_ratio: int = 200  # compression ratio of one part (parts over 1 MiB)
    max_entries: int = 10_000  # parts in the zip
    calamine_max_cells: int = 6_000_000  # above: openpyxl read-only (streamed) instead of calamine
    max_rows: int = 300_000  # rows holding a value, per sheet
    max_cols: int = 1_000  # last column holding a value, per sheet
    max_cells: int = 12_000_000  # cells holding a value, per workbook

    @classmethod
    def from_env(cls) -> Limits:
        d = cls()
        return cls(
            max_bytes=_env_int("CERTPIPE_EXCEL_MAX_BYTES", d.max_bytes),
            max_unzipped=_env_int("CERTPIPE_EXCEL_MAX_UNZIPPED", d.max_unzipped),
            max_ratio=_env_int("CERTPIPE_EXCEL_MAX_RATIO", d.max_ratio),
            max_entries=d.max_entries,
            calamine_max_cells=_env_int("CERTPIPE_EXCEL_CALAMINE_MAX_CELLS", d.calamine_max_cells),
            max_rows=_env_int("CERTPIPE_EXCEL_MAX_ROWS", d.max_rows),
            max_cols=_env_int("CERTPIPE_EXCEL_MAX_COLS", d.max_cols),
            max_cells=_env_int("CERTPIPE_EXCEL_MAX_CELLS", d.max_cells),
        )


# ---------------------------------------------------------------- safety


def _contains(path: Path, needle: bytes, chunk: int = 1 << 20) -> bool:
    tail = b""
    with path.open("rb") as f:
        while block := f.read(chunk):
            if needle in tail + block:
                return True
            tail = block[-len(needle) :]
    return False


def check_file(path: Path, limits: Limits | None = None) -> None:
    """Raise Unreadable unless `path` is an .xlsx/.xlsm workbook that is safe to open."""
    limits = limits or Limits.from_env()
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise Unreadable("FILE_TOO_LARGE")
    with path.open("rb") as f:
        head = f.read(8)
    if head == OLE_MAGIC:  # a compound file: encrypted OOXML carries an "EncryptedPackage" stream
        raise Unreadable(
            "FILE_ENCRYPTED" if _contains(path, "EncryptedPackage".encode("utf-16-le")) else "FILE_LEGACY_XLS"
        )
    if not head.startswith(ZIP_MAGIC):
        raise Unreadable("FILE_NOT_WORKBOOK")
    with path.open("rb") as f:  # a zip ends with its directory: without it, the copy stopped half-way
        f.seek(max(0, size - (1 << 16) - 22))
        if b"PK\x05\x06" not in f.read():
            raise Unreadable("FILE_INCOMPLETE")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise Unreadable("FILE_CORRUPT") from None
    names = {i.filename for i in infos}
    if "xl/workbook.xml" not in names:
        raise Unreadable("FILE_NOT_WORKBOOK")  # .docx, .ods, .xlsb, a plain zip ...
    if len(infos) > limits.max_entries or sum(i.file_size for i in infos) > limits.max_unzipped:
        raise Unreadable("FILE_BOMB")
    for i in infos:
        if i.file_size > 2**20 and i.file_size > limits.max_ratio * max(i.compress_size, 1):
            raise Unreadable("FILE_BOMB")


# ---------------------------------------------------------------- workbook structure


def _sheet_parts(zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Sheet name -> its XML part."""
    wb = ET.fromstring(zf.read("xl/workbook.xml"))
    rels = ET.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
    targets = {r.get("Id"): r.get("Target") for r in rels.findall("pr:Relationship", _NS)}
    out = {}
    for s in wb.findall("m:sheets/m:sheet", _NS):
        target = targets.get(s.get(f"{{{_NS['r']}}}id"), "")
        part = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
        try:
            out[s.get("name")] = zf.getinfo(part)
        except KeyError:
            continue
    return out


def sheet_stats(zf: zipfile.ZipFile, parts: dict[str, zipfile.ZipInfo], limits: Limits) -> dict[str, SheetStats]:
    """Scan every sheet (constant memory); refuse a workbook holding values beyond the caps."""
    timed = sheetscan.time_styles(zf)
    out: dict[str, SheetStats] = {}
    total = 0
    for name, info in parts.items():
        try:
            st = sheetscan.scan(zf, info, timed)
        except sheetscan.TooLarge:
            raise Unreadable("FILE_TOO_MANY_CELLS", f'Trang "{name}" có cấu trúc bất thường.') from None
        if st.value_rows > limits.max_rows:
            raise Unreadable(
                "FILE_TOO_MANY_ROWS",
                f'Trang "{name}" có {st.value_rows:,} dòng có dữ liệu (tối đa {limits.max_rows:,}).',
            )
        if st.last_col > limits.max_cols:
            raise Unreadable(
                "FILE_TOO_MANY_COLUMNS",
                f'Trang "{name}" có dữ liệu đến cột {col_letters(st.last_col)} (tối đa {limits.max_cols:,} cột, '
                f"đến cột {col_letters(limits.max_cols)}).",
            )
        total += st.value_cells
        if total > limits.max_cells:
            raise Unreadable("FILE_TOO_MANY_CELLS", f"File có hơn {limits.max_cells:,} ô có dữ liệu.")
        out[name] = st
    return out


class Workbook:
    """A checked workbook, read sheet by sheet. Use as a context manager."""

    def __init__(self, path: Path | str, limits: Limits | None = None):
        self.path = Path(path)
        self.limits = limits or Limits.from_env()
        self._calamine = None
        self._openpyxl = None

    def __enter__(self) -> Workbook:
        import python_calamine as pc

        try:
            with zipfile.ZipFile(self.path) as zf:
                parts = _sheet_parts(zf)
                self._stats = sheet_stats(zf, parts, self.limits)
            self._calamine = pc.CalamineWorkbook.from_path(str(self.path))
            self._names = [m.name for m in self._calamine.sheets_metadata if m.typ == pc.SheetTypeEnum.WorkSheet]
        except pc.PasswordError:
            raise Unreadable("FILE_ENCRYPTED") from None
        except (pc.CalamineError, *_BROKEN):
            raise Unreadable("FILE_CORRUPT") from None
        except BaseException as e:
            _panic(e)
        return self

    def __exit__(self, *exc) -> None:
        if self._calamine is not None:
            self._calamine.close()
        if self._openpyxl is not None:
            self._openpyxl.close()

    def _calamine_rows(self, name: str, last_row: int) -> tuple[int, Iterator[tuple[int, list]]]:
        sheet = self._calamine.get_sheet_by_name(name)
        first_col = sheet.start[1] if sheet.start else 0

        def rows():
            # python-calamine yields rows from row 1 and columns from the first used column
            for i, values in enumerate(sheet.iter_rows()):
                if i >= last_row:
                    return
                yield i + 1, values

        return first_col, rows()

    def _openpyxl_rows(self, name: str, last_row: int, last_col: int) -> tuple[int, Iterator[tuple[int, list]]]:
        import openpyxl

        if self._openpyxl is None:
            self._openpyxl = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        ws = self._openpyxl[name]
        ws.reset_dimensions()  # a wrong <dimension> must not cut the sheet short (nor make it huge)

        def rows():
            if last_row < 1:
                return
            # bounded: up to the last row and column holding a value (formatting-only cells beyond are not read)
            for i, values in enumerate(ws.iter_rows(max_row=last_row, max_col=max(last_col, 1), values_only=True)):
                yield i + 1, list(values)

        return 0, rows()

    def sheets(self) -> Iterator[Sheet]:
        """Every worksheet in workbook order; `layout.kind` is None for a sheet without a header."""
        import python_calamine as pc

        for number, name in enumerate(self._names, start=1):
            stats = self._stats.get(name)
            if stats is None:  # a sheet the scan could not match to its part: read streamed, within the caps
                stats = SheetStats(last_row=self.limits.max_rows, last_col=self.limits.max_cols)
                stats.declared_cells = self.limits.calamine_max_cells + 1
            big = stats.dense_cells() > self.limits.calamine_max_cells
            engine = "openpyxl" if big else "calamine"
            try:
                if big:
                    first_col, rows = self._openpyxl_rows(name, stats.last_row, stats.last_col)
                else:
                    first_col, rows = self._calamine_rows(name, stats.last_row)
                head: list[tuple[int, list]] = []
                for item in rows:
                    head.append(item)
                    if len(head) >= HEADER_SCAN:
                        break
            except pc.PasswordError:
                raise Unreadable("FILE_ENCRYPTED") from None
            except (pc.CalamineError, *_BROKEN):
                raise Unreadable("FILE_CORRUPT") from None
            except BaseException as e:
                _panic(e)
            layout = SheetLayout(number=number, name=name, first_col=first_col, engine=engine)
            found = detect_header(head, name)
            if found is None:
                yield Sheet(layout, iter(()), stats)
                continue
            kind, i, cols = found
            layout.kind, layout.header_row, layout.columns = kind, head[i][0], cols
            layout.headers = list(head[i][1])
            while layout.headers and _empty(layout.headers[-1]):
                layout.headers.pop()
            layout.times = time_columns(kind, layout.headers, cols)
            layout.ignored = [
                str(v).strip()
                for j, v in enumerate(layout.headers)
                if j not in cols and j not in layout.times and not _empty(v)
            ]
            layout.hints = {h: x for h in layout.ignored if isinstance(h, str) and (x := hint(kind, h))}
            # a second header row right below (the template: labels, then codes) is not data
            vocab = vocabulary(kind)
            rest = head[i + 1 :]
            while rest and sum(1 for v in rest[0][1] if vocab.match(v)) >= max(MIN_HEADER_FIELDS, len(cols) // 2):
                layout.header_row = rest[0][0]
                rest = rest[1:]
            yield Sheet(layout, self._guard(_chain(rest, rows)), stats)

    def _guard(self, rows: Iterator) -> Iterator:
        import python_calamine as pc

        try:
            yield from rows
        except (pc.CalamineError, *_BROKEN):
            raise Unreadable("FILE_CORRUPT") from None
        except BaseException as e:
            _panic(e)


def _panic(e: BaseException):
    """A panic in the Rust reader (pyo3 PanicException is a BaseException) on a malformed part: the file is
    corrupt, the worker lives on. Anything else (KeyboardInterrupt, SystemExit ...) goes on up."""
    if type(e).__name__ == "PanicException":
        raise Unreadable("FILE_CORRUPT") from None
    raise e


def _chain(first: list, rest: Iterator) -> Iterator:
    yield from first
    yield from rest


def read_records(path: Path | str, limits: Limits | None = None) -> Iterator[tuple[SheetLayout, int, dict]]:
    """(sheet layout, Excel row number, raw record) for every data row of every data sheet."""
    path = Path(path)
    check_file(path, limits)
    with Workbook(path, limits) as wb:
        for sheet in wb.sheets():
            if sheet.layout.kind:
                for row_no, _, rec in sheet.data_rows():
                    yield sheet.layout, row_no, rec
