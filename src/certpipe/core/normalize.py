"""Normalise raw source records into canonical records.

Text: Unicode NFC, trimmed, inner whitespace collapsed. Codes: upper-case, no spaces, leading zeros kept
(and restored when a spreadsheet turned a code into a number). Dates: the official compact formats
(yyyymmdd; yyyymmddHHMM, or yyyymmddHHMMSS when seconds are not zero); also read dd/mm/yyyy, ISO 8601,
Python dates and Excel serial numbers. A value that cannot be read becomes a refusal reason naming the
field, never an exception, and never carries the value itself.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable, Mapping
from functools import cache

from certpipe.core.schema import FieldSpec, KindSpec, reason

_WS = re.compile(r"\s+")
_DMY = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})(?:[ T](\d{1,2})[:hH](\d{2})(?::(\d{2}))?)?$")
_YMD = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?$")
_EXCEL_EPOCH = dt.datetime(1899, 12, 30)
_MIN_YEAR, _MAX_YEAR = 1880, 2200


class Blank(Exception):
    """A value that holds only spaces: treated as missing."""


class Invalid(ValueError):
    """A value that cannot be normalised; carries the rule code only."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def norm_text(v) -> str:
    s = v if type(v) is str else str(v)
    if s.isascii():
        if s and s[0] != " " and s[-1] != " " and "  " not in s and "\t" not in s and "\n" not in s:
            return s  # fast path: already canonical
    elif not unicodedata.is_normalized("NFC", s):
        s = unicodedata.normalize("NFC", s)
    s = s.strip()
    if "  " in s or "\n" in s or "\t" in s or "\u00a0" in s:
        s = _WS.sub(" ", s.replace("\u00a0", " "))
    return s


def _number_text(v) -> str | None:
    """Digits of a value a spreadsheet stored as a number, else None."""
    if type(v) is str:
        return None
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return None


def norm_code(v, pad: int | None = None) -> str:
    num = _number_text(v)
    s = num if num is not None else norm_text(v).replace(" ", "").upper()
    if pad and s.isdigit() and len(s) < pad:
        s = s.zfill(pad)
    return s


def norm_id(v) -> str:
    """Personal ID / passport number. A 12-digit ID (it starts with "0") stored as a number lost its leading
    zeros: restore them."""
    num = _number_text(v)
    if num is not None:
        return num.zfill(12) if len(num) in (10, 11) else num.zfill(9) if len(num) == 8 else num
    return norm_text(v).replace(" ", "").replace(".", "").upper()


_INT_LIMIT = 2**53  # every integer field of the records is far below; above, a float cannot hold it exactly


def norm_int(v) -> int:
    """An integer: int, an integral float (not NaN or infinite), or integer text; beyond ±2**53 it is refused
    (no field holds such a number, and the columnar core carries integers as float64)."""
    if isinstance(v, bool):
        raise Invalid("INT_FORMAT")
    if isinstance(v, int):
        n = v
    elif isinstance(v, float):
        if not v.is_integer():  # also NaN and infinities
            raise Invalid("INT_FORMAT")
        n = int(v)
    else:
        s = norm_text(v)
        if not s:
            raise Blank
        if len(s) <= 20 and s.lstrip("-").isdigit():
            n = int(s)
        elif len(s) <= 40 and re.fullmatch(r"-?\d+\.0+", s):
            n = int(s.split(".")[0])
        else:
            raise Invalid("INT_FORMAT")
    if not -_INT_LIMIT < n < _INT_LIMIT:
        raise Invalid("INT_FORMAT")
    return n


def _mk(y, mo, d, h=0, mi=0, s=0, code="DATE_INVALID") -> dt.datetime:
    try:
        y, mo, d, h, mi, s = int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0)
        if not _MIN_YEAR <= y <= _MAX_YEAR:
            raise Invalid(code)
        return dt.datetime(y, mo, d, h, mi, s)
    except (ValueError, TypeError):
        raise Invalid(code) from None


def parse_moment(v, code: str) -> tuple[dt.datetime, bool]:
    """Read a date or date-time; returns (value, has_time)."""
    if isinstance(v, dt.datetime):
        return v.replace(tzinfo=None, microsecond=0), True
    if isinstance(v, dt.date):
        return dt.datetime(v.year, v.month, v.day), False
    num = _number_text(v)
    if num is None and isinstance(v, float):
        if 1 < v < 100000:  # Excel serial date-time
            return (_EXCEL_EPOCH + dt.timedelta(days=v)).replace(microsecond=0), True
        raise Invalid(code)
    s = num if num is not None else norm_text(v)
    if not s:
        raise Blank
    if s.isdigit():
        n = len(s)
        if n == 8:
            return _mk(s[:4], s[4:6], s[6:8], code=code), False
        if n == 12:
            return _mk(s[:4], s[4:6], s[6:8], s[8:10], s[10:12], code=code), True
        if n == 14:
            return _mk(s[:4], s[4:6], s[6:8], s[8:10], s[10:12], s[12:14], code=code), True
        if num is not None and n <= 5:  # Excel serial date stored as an integer
            return _EXCEL_EPOCH + dt.timedelta(days=int(s)), False
        raise Invalid(code)
    m = _DMY.match(s)
    if m:
        d, mo, y, h, mi, sec = m.groups()
        return _mk(y, mo, d, h, mi, sec, code=code), h is not None
    m = _YMD.match(s)
    if m:
        y, mo, d, h, mi, sec = m.groups()
        return _mk(y, mo, d, h, mi, sec, code=code), h is not None
    raise Invalid(code)


def _canonical_digits(v: str, code: str) -> bool:
    """True when `v` is compact digits (yyyymmdd, yyyymmddHHMM[SS]) of a real moment; raises Invalid if not real."""
    if not v.isdigit():
        return False
    _mk(v[:4], v[4:6], v[6:8], v[8:10], v[10:12], v[12:14], code=code)
    return True


def norm_date(v) -> str:
    if type(v) is str and len(v) == 8 and _canonical_digits(v, "DATE_INVALID"):
        return v  # the usual case: already the official form
    return parse_moment(v, "DATE_INVALID")[0].strftime("%Y%m%d")


def norm_datetime(v) -> str:
    if type(v) is str and len(v) in (12, 14) and _canonical_digits(v, "DATETIME_INVALID"):
        return v[:12] if len(v) == 14 and v.endswith("00") else v
    moment, has_time = parse_moment(v, "DATETIME_INVALID")
    if not has_time:
        raise Invalid("DATETIME_INVALID")
    return moment.strftime("%Y%m%d%H%M%S" if moment.second else "%Y%m%d%H%M")


def _nationality(v) -> str:
    from certpipe.core import reference

    code = norm_code(v)
    return reference.normalise_nationality(code) or code


def _handler(f: FieldSpec):
    """The normalising function of one field."""
    t = f.type
    if t == "text":
        return norm_text
    if t in ("code", "digits"):
        pad = f.pad

        def fn(v, pad=pad, digits=t == "digits", width=f.max):
            return norm_code(v, pad or (width if digits and _number_text(v) else None))

        return fn
    return {"id": norm_id, "int": norm_int, "date": norm_date, "datetime": norm_datetime, "nationality": _nationality}[
        t
    ]


class _Fail:
    """A cached outcome that is not a value: blank (code None) or a refusal code."""

    __slots__ = ("code",)

    def __init__(self, code: str | None):
        self.code = code


_BLANK = _Fail(None)
_TOO_LONG = _Fail("TOO_LONG")
_CACHE_MAX = 65536


def _outcome(fn, value, width: int | None):
    try:
        value = fn(value)
    except Blank:
        return _BLANK
    except Invalid as e:
        return _Fail(e.code)
    if width and type(value) is str and len(value) > width:
        return _TOO_LONG
    return value


def _memo_miss(memo: dict, fn, value: str, width: int | None):
    got = _outcome(fn, value, width)
    if got == "":
        got = _BLANK
    if len(memo) >= _CACHE_MAX:
        memo.clear()
    memo[value] = got
    return got


@cache
def _plan(spec: KindSpec) -> dict[str, tuple]:
    """Source name (upper case) -> (canonical name, function, max width, cache of text values or None).

    Codes and dates repeat a lot, so their outcomes are cached per text value (bounded); free text and IDs
    do not repeat, so they are not."""
    per_field: dict[str, tuple] = {
        f.name: (f.name, _handler(f), f.max, None if f.type in ("text", "id") else {}) for f in spec.fields
    }
    return {src: per_field[name] for src, name in spec.lookup.items()}  # an alias shares its field's cache


def _steps(spec: KindSpec, keys: tuple) -> tuple:
    """The steps for records with exactly these keys (records of one source share them)."""
    plan = _plan(spec)
    steps = []
    for key in keys:
        step = plan.get(key) or (plan.get(key.upper()) if isinstance(key, str) else None)
        if step is not None:
            steps.append((key, *step))
    return tuple(steps)


def normalise_record(raw: Mapping, spec: KindSpec) -> tuple[dict, list[dict]]:
    """Map one raw record (official names or aliases, any case) to a canonical record plus reasons."""
    rows, reasons = normalise([raw], spec)
    return rows[0], reasons[0]


def normalise(records: Iterable, spec: KindSpec) -> tuple[list[dict], list[list[dict]]]:
    rows: list[dict] = []
    reasons: list[list[dict]] = []
    compiled: dict[tuple, tuple] = {}  # key set -> steps
    for raw in records:
        if type(raw) is not dict and not isinstance(raw, Mapping):
            rows.append({})
            reasons.append([reason(None, "NOT_A_RECORD")])
            continue
        out: dict = {}
        why: list[dict] = []
        keys = tuple(raw)
        steps = compiled.get(keys)
        if steps is None:
            steps = compiled[keys] = _steps(spec, keys)
        for key, name, fn, width, memo in steps:
            value = raw[key]
            if memo is not None and value.__class__ is str:  # codes, dates: the outcome of a text is cached
                got = memo.get(value)
                if got is None:
                    got = _memo_miss(memo, fn, value, width)
            elif value is None or value == "" or (value.__class__ is float and value != value):  # NaN: empty
                continue
            elif fn is norm_text and value.__class__ is str:  # free text: never refused but for its length
                got = norm_text(value)
                if not got:
                    continue
                if width and len(got) > width:
                    got = _TOO_LONG
            else:
                got = _outcome(fn, value, width)
                if got == "":
                    continue
            if got.__class__ is _Fail:
                if got.code:
                    why.append(reason(name, got.code))
                continue
            out[name] = got
        rows.append(out)
        reasons.append(why)
    return rows, reasons
