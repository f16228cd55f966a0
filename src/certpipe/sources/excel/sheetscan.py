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
MAX_ELEMENT = 32 << 20  # one <c> or <row> start tag larger than this: not a sheet Excel writes
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


_ROW_START = re.compile(rb"<(?:\w+:)?row\b")
_ROW_END = frozenset(b" >/\t\r\n")
_LONGER = {0: re.compile(rb'<c r="[A-Z]'), 1: re.compile(rb'<c r="[A-Z]{2}'), 2: re.compile(rb'<c r="[A-Z]{3}')}
_LETTERS = re.compile(rb"[A-Z]{0,3}")
_WHOLE = re.compile(rb"\d+(?:\.0*)?")  # a whole-day serial


def _letters(body: bytes, at: int) -> str:
    """Column letters of the cell reference starting at `at` (<c r="...)."""
    return _LETTERS.match(body, at + 6).group(0).decode()  # type: ignore[union-attr]


def _last_start(data: bytes) -> int:
    """Offset of the last <row (else <c) start tag, 0 if none after the start: everything before it is whole."""
    for pattern in (_ROW_START, _CUT):
        for window in (1 << 16, len(data)):
            m = None
            for m in pattern.finditer(data, max(0, len(data) - window)):  # noqa: B007
                pass
            if m is not None and m.start() > 0:
                return m.start()
    return 0


class TooLarge(Exception):
    """A start tag that does not end within MAX_ELEMENT bytes."""


class _Scanner:
    """Row by row with C-level regexes for the usual rows (every cell with its reference, no formula); the
    general token walk for anything else (cells without references, formulas, prefixed tags)."""

    def __init__(self, st: SheetStats, timed: frozenset[int]):
        self.st, self.timed = st, timed
        self.row = self.col = self.last_value_row = 0
        self.cell: list | None = None  # [row, col, style, has_value, has_formula, value text]
        ids = b"|".join(str(i).encode() for i in sorted(timed))
        self.midnight = (
            # the attribute layout every writer uses (r, s, t="n" or none): a cheap pattern on every row
            re.compile(rb'<c r="([A-Z]{1,3})\d+"( s="(?:' + ids + rb')"(?: t="n")?)><v>(\d+)(?:\.0*)?</v>')
            if timed
            else None
        )

    def value_at(self, r: int, c: int) -> None:
        st = self.st
        st.value_cells += 1
        if r != self.last_value_row:
            st.value_rows += 1
            self.last_value_row = r
        st.last_row = max(st.last_row, r)
        st.last_col = max(st.last_col, c)

    def end_cell(self) -> None:
        if self.cell is None:
            return
        r, c, style, has_v, has_f, text = self.cell
        self.cell = None
        if has_v:
            self.value_at(r, c)
            if style in self.timed and len(self.st.midnights) < MAX_NOTES and _WHOLE.fullmatch(text):
                self.st.midnights.add((r, c))
        elif has_f and len(self.st.formulas) < MAX_NOTES:
            self.st.formulas.add((r, c))

    def feed(self, work: bytes) -> None:
        if self.cell is not None or b"<row" not in work:
            self.tokens(work)
            return
        pos = gap = 0
        n = len(work)
        while True:
            start = work.find(b"<row", pos)
            if start < 0 or start + 4 >= n:
                break
            if work[start + 4] not in _ROW_END:  # <rowBreaks> and the like
                pos = start + 4
                continue
            gt = work.find(b">", start)
            if gt < 0:
                break
            if gap < start:
                self.tokens(work[gap:start])
            attrs = work[start + 4 : gt]
            if attrs.endswith(b"/"):
                self.one_row(attrs, None)
                pos = gap = gt + 1
                continue
            end = work.find(b"</row>", gt)
            if end < 0:
                pos = start
                break
            self.one_row(attrs, work[gt + 1 : end])
            pos = gap = end + 6
        if gap < n:
            self.tokens(work[gap:])

    def one_row(self, attrs: bytes, body: bytes | None) -> None:
        self.end_cell()
        rm = _ATTR_R.search(attrs)
        self.row = int(rm.group(2)) if rm and rm.group(2) else self.row + 1
        self.col = 0
        if not body:
            return
        refs = body.count(b'<c r="')
        if not refs or b"<f" in body or refs != body.count(b"<c ") + body.count(b"<c>"):
            self.tokens(body)
            self.end_cell()
            return
        last = _letters(body, body.rfind(b'<c r="'))
        if len(last) < 3 and _LONGER[len(last)].search(body):  # a wider column before the last: out of order
            self.tokens(body)
            self.end_cell()
            return
        st, r = self.st, self.row
        st.extent_rows = max(st.extent_rows, r)
        st.extent_cols = max(st.extent_cols, col_number(last))
        empty = body.count(b"<v></v>")
        nv = body.count(b"<v>") - empty + body.count(b"<is>")
        if nv:
            at = max(body.rfind(b"<v>"), body.rfind(b"<is>"))
            if empty and body.rfind(b"<v></v>") == at:  # the last <v> is empty: find the last value the long way
                self.tokens(body)
                self.end_cell()
                return
            self.value_at(r, col_number(_letters(body, body.rfind(b'<c r="', 0, at))))
            st.value_cells += nv - 1
        if self.midnight is not None and len(st.midnights) < MAX_NOTES:
            for letters, _, _ in self.midnight.findall(body):
                st.midnights.add((r, col_number(letters.decode())))

    def tokens(self, work: bytes) -> None:
        st = self.st
        for t in _TOK.finditer(work):
            kind = t.group(1)
            if kind == b"row":
                self.end_cell()
                rm = _ATTR_R.search(t.group(2))
                self.row = int(rm.group(2)) if rm and rm.group(2) else self.row + 1
                self.col = 0
            elif kind == b"c":
                self.end_cell()
                attrs = t.group(2)
                rm = _ATTR_R.search(attrs)
                if rm and rm.group(1):
                    self.col = col_number(rm.group(1).decode())
                    if rm.group(2):
                        self.row = int(rm.group(2))
                else:
                    self.col += 1
                st.extent_rows = max(st.extent_rows, self.row)
                st.extent_cols = max(st.extent_cols, self.col)
                if not t.group(3):  # not self-closing: may hold a value
                    sm = _ATTR_S.search(attrs)
                    self.cell = [self.row, self.col, int(sm.group(1)) if sm else 0, False, False, b""]
            elif t.group(4) is not None:
                if self.cell is not None and t.group(4).strip():
                    self.cell[3], self.cell[5] = True, t.group(4).strip()
            elif t.group(5):
                if self.cell is not None:
                    self.cell[3 if t.group(5) == b"is" else 4] = True
            elif t.group(6):
                if len(st.merged) < MAX_NOTES:
                    st.merged.append(_ref(t.group(6).decode()))
            elif t.group(7):
                r1, c1, r2, c2 = _ref(t.group(7).decode())
                st.declared_cells = max(0, r2 - r1 + 1) * max(0, c2 - c1 + 1)
            else:  # </c>
                self.end_cell()


def scan(zf: zipfile.ZipFile, info: zipfile.ZipInfo, timed: frozenset[int] = frozenset()) -> SheetStats:
    """Stream the worksheet part once; memory stays at a few MiB whatever the sheet declares or holds."""
    st = SheetStats()
    sc = _Scanner(st, timed)
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
            sc.feed(work)
            if not block:
                break
    sc.end_cell()
    return st
