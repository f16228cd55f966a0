"""Header rows: the vocabulary of each record kind (official codes, aliases, Vietnamese labels), the header
row of a sheet, time-of-day columns that complete a date-time column, and hints for headers not recognised.

Each sheet's header row is the row (among the first 30) that names the most fields of one record kind; a
sheet with no such row (instructions, code lists, pivot tables) is skipped.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from functools import cache

from certpipe.core.schema import KINDS, kind_spec
from certpipe.sources.excel import config
from certpipe.sources.excel.values import fold, strip_invisible

MIN_HEADER_FIELDS = 4
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_]+")


@dataclass(frozen=True)
class Vocabulary:
    kind: str
    codes: dict[str, str]  # official name or alias, upper case -> canonical name
    labels: dict[str, str]  # folded Vietnamese label -> canonical name

    def match(self, cell) -> str | None:
        if not isinstance(cell, str):
            return None
        text = strip_invisible(unicodedata.normalize("NFC", cell)).strip().rstrip("*").strip()
        if not text:
            return None
        name = self.codes.get(re.sub(r"\s+", "", text).upper())
        if name:
            return name
        name = self.labels.get(fold(text))
        if name:
            return name
        found = {self.codes[t] for t in _TOKEN.findall(text) if t == t.upper() and t in self.codes}
        return found.pop() if len(found) == 1 else None


@cache
def vocabulary(kind: str) -> Vocabulary:
    spec = kind_spec(kind)
    codes = dict(spec.lookup)
    labels: dict[str, str] = {}
    ambiguous: set[str] = set()
    for f in spec.fields:
        for label in {f.label, re.sub(r"\s*\(.*?\)\s*", " ", f.label)}:
            key = fold(label)
            if key in labels and labels[key] != f.name:
                ambiguous.add(key)
            labels[key] = f.name
    for key in ambiguous:
        del labels[key]
    for name, aliases in config().get("header_aliases", {}).get(kind, {}).items():
        for alias in aliases:
            labels.setdefault(fold(alias), name)
    return Vocabulary(kind, codes, labels)


@cache
def _time_names(kind: str) -> dict[str, str]:
    """Folded header of a time-of-day column -> the date-time field it completes (fields of `kind` only)."""
    spec = kind_spec(kind)
    out = {}
    for name, aliases in config().get("time_columns", {}).items():
        if name in spec.by_name:
            out.update({fold(a): name for a in aliases})
    return out


def time_columns(kind: str, headers: list, columns: dict[int, str]) -> dict[int, str]:
    """List index -> date-time field, for header cells that name the time of a mapped date-time column."""
    names = _time_names(kind)
    mapped = set(columns.values())
    out: dict[int, str] = {}
    for j, h in enumerate(headers):
        if j in columns or not isinstance(h, str):
            continue
        name = names.get(fold(strip_invisible(h)))
        if name in mapped and name not in out.values():
            out[j] = name
    return out


@cache
def _official_headers(kind: str) -> dict[str, str]:
    """Folded label or code -> how the template names the column: "Họ tên mẹ/người nuôi dưỡng (HOTEN_NND)"."""
    out = {}
    for f in kind_spec(kind).fields:
        shown = f"{f.label} ({f.name})"
        out[fold(f.label)] = shown
        out[fold(re.sub(r"\s*\(.*?\)\s*", " ", f.label))] = shown
        out[fold(f.name)] = shown
    return out


def hint(kind: str, header: str) -> str | None:
    """The official column nearest to an unrecognised header, if one is close enough."""
    known = _official_headers(kind)
    got = difflib.get_close_matches(fold(strip_invisible(header)), list(known), n=1, cutoff=0.75)
    return known[got[0]] if got else None


def code_list_fields() -> frozenset[str]:
    """Fields offered as a drop-down "code - name" in the template: the code part is read."""
    return frozenset(config()["field_lists"])


def _empty(v) -> bool:
    return v is None or v == "" or (isinstance(v, str) and not v.strip())


def detect_header(rows: list[tuple[int, list]], sheet_name: str) -> tuple[str, int, dict[int, str]] | None:
    """(kind, index in `rows` of the header, list index -> field) or None. Ties between rows go to the first
    one (the template's label row; its code row below is skipped as a second header row), ties between kinds
    to the sheet name."""
    best = None
    for i, (_, values) in enumerate(rows):
        for kind in KINDS:
            vocab = vocabulary(kind)
            cols: dict[int, str] = {}
            for j, v in enumerate(values):
                name = vocab.match(v)
                if name and name not in cols.values():
                    cols[j] = name
            score = len(cols)
            if score < MIN_HEADER_FIELDS:
                continue
            if best is None or score > best[0]:
                best = (score, kind, i, cols, False)
            elif score == best[0] and i == best[2] and kind != best[1]:
                best = (score, best[1], i, best[3], True)  # same row names as many fields of both kinds
    if best is None:
        return None
    score, kind, i, cols, tie = best
    if tie:
        hint = fold(sheet_name)
        hits = [k for k in KINDS if any(h in hint for h in config()["sheet_hints"][k])]
        if len(hits) != 1:
            return None
        kind = hits[0]
        vocab = vocabulary(kind)
        cols = {}
        for j, v in enumerate(rows[i][1]):
            name = vocab.match(v)
            if name and name not in cols.values():
                cols[j] = name
    return kind, i, cols
