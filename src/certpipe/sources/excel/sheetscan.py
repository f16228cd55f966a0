"""One streamed pass over a worksheet's XML before any engine reads it: what the sheet really holds.

A sheet's <dimension> may be missing or wrong, and one stray cell far from the data (XFD1048576) makes an
engine that builds a dense range allocate rows x columns cells (hundreds of GiB). This pass reads the part in
1 MiB pieces (constant memory, whatever the declared size) and finds:

- the extent of the cells that hold a value (rows, columns, count), to refuse sheets above the caps and to
  stop reading after the last row with a value;
- the extent of every <c> element (also empty, formatted-only ones) and the declared <dimension>, to choose
  an engine that will not allocate a dense range larger than the cap;
- merged ranges, formulas without a cached value, and date-time cells at exactly midnight whose number format
  shows the time (a date-time typed as 00:00, not a date without its time).
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field

from defusedxml import ElementTree as ET

CHUNK = 1 << 20
MAX_ELEMENT = 8 << 20  # one <c> or <row> start tag larger than this: not a sheet Excel writes
MAX_NOTES = 10_000  # merged ranges / formulas / midnights remembered per sheet
TIME_BUILTIN = {18, 19, 20, 21, 22, 45, 46, 47}  # built-in number formats that show a time

_TOK = re.compile(
    rb"<(?:\w+:)?(row|c)\b([^>]*?)(/?)>"  # 1-3: start of a row or a cell
    rb"|<(?:\w+:)?v>([^<]*)</(?:\w+:)?v>"  # 4: cached value
    rb"|<(?:\w+:)?(f|is)\b[^>]*?/?>"  # 5: formula, inline string
    rb"|</(?:\w+:)?c>"  # end of a cell
    rb"|<(?:\w+:)?mergeCell\b[^>]*?ref=\"([A-Z]+\d+(?::[A-Z]+\d+)?)\""  # 6: merged range
    rb"|<(?:\w+:)?dimension\b[^>]*?ref=\"([A-Z]+\d+(?::[A-Z]+\d+)?)\""  # 7: declared range
)
_ATTR_R = re.compile(rb'\br="([A-Z]{0,3})(\d*)"')
_ATTR_S = re.compile(rb'\bs="(\d+)"')
_REF = re.compile(r"([A-Z]+)(\d+)")
_CUT = re.compile(rb"<(?:\w+:)?(?:c|row)\b")


def col_number(letters: str) -> int:
    n = 0
    for c in letters:
        n = n * 26 + ord(c) - 64
    return n


def col_letters(n: int) -> str:
    s = ""
    while n:
        n, r = divmod(n - 1, 26)
        s = chr(65 + r) + s
    return s


def _ref(text: str) -> tuple[int, int, int, int]:
    """'A1:C5' -> (row1, col1, row2, col2), 1-based."""
    parts = [_REF.fullmatch(p) for p in text.split(":")]
    (c1, r1), (c2, r2) = (parts[0].groups(), (parts[-1].groups()))  # type: ignore[union-attr]
    return int(r1), col_number(c1), int(r2), col_number(c2)


@dataclass
class SheetStats:
    value_rows: int = 0  # rows with at least one value
    value_cells: int = 0
    last_row: int = 0  # last row / column holding a value
    last_col: int = 0
    extent_rows: int = 0  # last row / column of any <c> element (also empty ones)
    extent_cols: int = 0
    declared_cells: int = 0  # cells of the <dimension> range (0: none)
    merged: list[tuple[int, int, int, int]] = field(default_factory=list)
    formulas: set[tuple[int, int]] = field(default_factory=set)  # (row, col) of formulas without a value
    midnights: set[tuple[int, int]] = field(default_factory=set)  # whole-day serials formatted with a time

    def dense_cells(self) -> int:
        """The largest dense range an engine could build for this sheet."""
        return max(self.extent_rows * self.extent_cols, self.declared_cells)

    def merged_at(self, row: int, col: int) -> tuple[int, int, int, int] | None:
        for m in self.merged:
            if m[0] <= row <= m[2] and m[1] <= col <= m[3]:
                return m
        return None


def time_styles(zf: zipfile.ZipFile) -> frozenset[int]:
    """Indexes of the cell formats (cellXfs) whose number format shows a time."""
    try:
        root = ET.fromstring(zf.read("xl/styles.xml"))
    except (KeyError, ET.ParseError, ValueError):
        return frozenset()
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    timed = set(TIME_BUILTIN)
    for nf in root.iter(f"{ns}numFmt"):
        code = re.sub(r'"[^"]*"|\[[^\]]*\]|\\.', "", nf.get("formatCode") or "").lower()
        if re.search(r"[hs]", code):
            try:
                timed.add(int(nf.get("numFmtId") or -1))
            except ValueError:
                continue
    xfs = root.find(f"{ns}cellXfs")
    out = set()
    for i, xf in enumerate(xfs if xfs is not None else ()):
        try:
            if int(xf.get("numFmtId") or 0) in timed:
                out.add(i)
        except ValueError:
            continue
    return frozenset(out)


def _last_start(data: bytes) -> int:
    """Offset of the last <c or <row start tag (0 if none after the start): everything before it is whole."""
    for window in (1 << 16, len(data)):
        m = None
        for m in _CUT.finditer(data, max(0, len(data) - window)):  # noqa: B007
            pass
        if m is not None:
            return m.start()
    return 0


class TooLarge(Exception):
    """A start tag that does not end within MAX_ELEMENT bytes."""


def scan(zf: zipfile.ZipFile, info: zipfile.ZipInfo, timed: frozenset[int] = frozenset()) -> SheetStats:
    """Stream the worksheet part once; memory stays at a few MiB whatever the sheet declares or holds."""
    st = SheetStats()
    row = 0
    col = 0
    cell: list | None = None  # [row, col, style, has_value, has_formula, value text]
    last_value_row = 0

    def end_cell() -> None:
        nonlocal last_value_row
        r, c, style, has_v, has_f, text = cell  # type: ignore[misc]
        if has_v:
            st.value_cells += 1
            if r != last_value_row:
                st.value_rows += 1
                last_value_row = r
            st.last_row = max(st.last_row, r)
            st.last_col = max(st.last_col, c)
            if style in timed and len(st.midnights) < MAX_NOTES and text.replace(b".0", b"", 1).isdigit():
                st.midnights.add((r, c))
        elif has_f and len(st.formulas) < MAX_NOTES:
            st.formulas.add((r, c))

    with zf.open(info) as f:
        tail = b""
        while True:
            block = f.read(CHUNK)
            data = tail + block
            if block:
                cut = _last_start(data)
                if cut == 0:  # one element spans the whole buffer
                    if len(data) > MAX_ELEMENT:
                        raise TooLarge
                    tail = data
                    continue
                work, tail = data[:cut], data[cut:]
            else:
                work, tail = data, b""
            for t in _TOK.finditer(work):
                kind = t.group(1)
                if kind == b"row":
                    if cell is not None:
                        end_cell()
                        cell = None
                    rm = _ATTR_R.search(t.group(2))
                    row = int(rm.group(2)) if rm and rm.group(2) else row + 1
                    col = 0
                elif kind == b"c":
                    if cell is not None:
                        end_cell()
                        cell = None
                    attrs = t.group(2)
                    rm = _ATTR_R.search(attrs)
                    if rm and rm.group(1):
                        col = col_number(rm.group(1).decode())
                        if rm.group(2):
                            row = int(rm.group(2))
                    else:
                        col += 1
                    st.extent_rows = max(st.extent_rows, row)
                    st.extent_cols = max(st.extent_cols, col)
                    if not t.group(3):  # not self-closing: may hold a value
                        sm = _ATTR_S.search(attrs)
                        cell = [row, col, int(sm.group(1)) if sm else 0, False, False, b""]
                elif t.group(4) is not None:
                    if cell is not None and t.group(4).strip():
                        cell[3], cell[5] = True, t.group(4).strip()
                elif t.group(5):
                    if cell is not None:
                        if t.group(5) == b"is":
                            cell[3] = True
                        else:
                            cell[4] = True
                elif t.group(6):
                    if len(st.merged) < MAX_NOTES:
                        st.merged.append(_ref(t.group(6).decode()))
                elif t.group(7):
                    r1, c1, r2, c2 = _ref(t.group(7).decode())
                    st.declared_cells = max(0, r2 - r1 + 1) * max(0, c2 - c1 + 1)
                elif cell is not None:  # </c>
                    end_cell()
                    cell = None
            if not block:
                break
    if cell is not None:
        end_cell()
    return st
