"""Cell values as the clerk meant them: numbers Excel made of text, serial date-times, a time in its own
column, invisible characters, official names typed where a code is expected.

Everything here is exact or refused, never guessed: an integral number in a text column is its integer text
("40400", not "40400.0"); a number Excel could not hold exactly (from 10**15 on, or shown in scientific
notation) is refused NUMBER_ROUNDED; a serial date-time is rounded to the nearest second; a date without its
time in a date-time column is refused TIME_MISSING (never read as 00:00); a name maps to a code only when it
is the name of exactly one code of the official list.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from functools import cache

EXACT = 10**15  # Excel keeps 15 significant digits: an integer from here on may have been rounded
NUMERIC_TEXT = frozenset({"SO", "QUYEN_SO", "MA_BN", "SO_BAOTU", "MA_HSBA", "SO_BAOTU_BD", "QUYEN_SO_BD"})
EPOCH = dt.datetime(1899, 12, 30)
# zero-width and direction marks, BOM, soft hyphen, and control characters (PostgreSQL text holds no NUL)
INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
_SCI = re.compile(r"^\s*[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+\s*$")
_TIME = re.compile(
    r"^\s*(\d{1,2})\s*(?::|h|g|giờ)\s*(\d{1,2})?\s*(?:(?::|m|phút)\s*(\d{1,2})?)?\s*(?:s|giây)?\s*$", re.I
)
_DATE_ONLY = re.compile(r"^(?:\d{4}-\d{2}-\d{2}|\d{1,2}[/.\-]\d{1,2}[/.\-]\d{4}|\d{8})$")
PROVINCE_FIELDS = frozenset({"MATINH_CU_TRU", "MATINH_THUONGTRU", "MATINH_HIENTAI"})
_NATIONALITY_VI = {
    "viet nam": "704",
    "trung quoc": "156",
    "lao": "418",
    "campuchia": "116",
    "han quoc": "410",
    "nhat ban": "392",
    "hoa ky": "840",
    "my": "840",
    "thai lan": "764",
    "phap": "250",
    "nga": "643",
    "dai loan": "158",
    "anh": "826",
    "uc": "036",
    "duc": "276",
}


def fold(text: str) -> str:
    """Text compared without case, diacritics, punctuation or spacing ("Họ tên mẹ" == "HO TEN ME")."""
    s = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    s = "".join(c for c in s if not unicodedata.combining(c)).lower()
    return " ".join(re.sub(r"[^0-9a-z]+", " ", s).split())


def strip_invisible(text: str) -> str:
    return INVISIBLE.sub("", text)


# ---------------------------------------------------------------- numbers


def number_text(v, ftype: str):
    """A number in a text column as its text: integral → integer text; beyond what Excel holds exactly it is
    kept as the number (refused NUMBER_ROUNDED at ingestion)."""
    if ftype != "text" or isinstance(v, bool):
        return v
    if isinstance(v, int):
        return str(v) if abs(v) < EXACT else v
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return v
        if v.is_integer():
            return str(int(v)) if abs(v) < EXACT else v
        return repr(v)
    return v


def rounded(v, ftype: str, field: str) -> bool:
    """A value Excel turned into a number it could not hold exactly (an ID of 16+ digits, 1,23E+15)."""
    if isinstance(v, bool):
        return False
    numeric_column = ftype in ("id", "digits", "code") or field in NUMERIC_TEXT
    if isinstance(v, (int, float)):
        return (numeric_column or ftype == "text") and v == v and abs(v) >= EXACT
    return isinstance(v, str) and numeric_column and bool(_SCI.match(v))


# ---------------------------------------------------------------- dates and times


def round_second(d: dt.datetime) -> dt.datetime:
    return (d + dt.timedelta(seconds=1) if d.microsecond >= 500_000 else d).replace(microsecond=0)


def serial(v: float) -> dt.datetime:
    """An Excel serial date-time, to the nearest second (21:50 stays 21:50, not 21:49:59)."""
    return EPOCH + dt.timedelta(seconds=round(v * 86400))


def time_of(v) -> dt.time | None:
    """The time in a time-of-day cell (Excel time, fraction of a day, "21:50", "21h50"), else None."""
    if isinstance(v, dt.datetime):
        return round_second(v).time()
    if isinstance(v, dt.time):
        return v.replace(microsecond=0)
    if isinstance(v, dt.timedelta):
        secs = round(v.total_seconds())
        return dt.time(secs // 3600, secs % 3600 // 60, secs % 60) if 0 <= secs < 86400 else None
    if isinstance(v, float | int) and not isinstance(v, bool):
        if 0 <= v < 1:
            secs = round(v * 86400) % 86400
            return dt.time(secs // 3600, secs % 3600 // 60, secs % 60)
        return None
    if isinstance(v, str) and (m := _TIME.match(v)):
        h, mi, s = (int(x) if x else 0 for x in m.groups())
        return dt.time(h, mi, s) if h < 24 and mi < 60 and s < 60 else None
    return None


def date_of(v) -> dt.date | None:
    """The day of a date cell (Excel date, text the normaliser reads), else None."""
    from certpipe.core.normalize import Blank, Invalid, parse_moment

    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, float) and 1 < v < 100000:
        return serial(v).date()
    try:
        return parse_moment(v, "DATE_INVALID")[0].date()
    except (Invalid, Blank, TypeError, ValueError, OverflowError):
        return None


def date_only(v) -> bool:
    """A landed value of a date-time field that holds a day and no time."""
    return isinstance(v, str) and bool(_DATE_ONLY.match(v.strip()))


# ---------------------------------------------------------------- official names for codes


@cache
def _lists() -> dict[str, dict[str, str]]:
    from certpipe.core import reference
    from certpipe.sources.excel import config
    from certpipe.sources.excel.template import code_list

    by_list: dict[str, dict[str, str]] = {}
    for name in config()["lists"]:
        names = {fold(n): c for c, n in code_list(name)}
        if name == "sex":
            names.update({"nam gioi": "1", "nu gioi": "2", "trai": "1", "gai": "2", "be trai": "1", "be gai": "2"})
        elif name == "ethnicity":
            names.update({f"dan toc {k}": c for k, c in list(names.items())})
        elif name == "nationality":
            names.update(_NATIONALITY_VI)
        by_list[name] = names
    provinces: dict[str, set[str]] = {}
    for era in ("legacy", "2025"):
        for code in reference.provinces(era):
            full = fold(reference.province_name(code, era) or "")
            short = re.sub(r"^(thanh pho|tinh|tp)\s+", "", full)
            for key in {full, short, f"tp {short}"}:
                provinces.setdefault(key, set()).add(code)
    by_list["province"] = {k: next(iter(v)) for k, v in provinces.items() if len(v) == 1}
    return by_list


def official_code(field: str, text: str) -> str | None:
    """The code of an official name typed in a coded field ("Nam" → "1", "Kinh" → "01"), else None."""
    from certpipe.sources.excel import config

    lst = "province" if field in PROVINCE_FIELDS else config()["field_lists"].get(field)
    if not lst:
        return None
    return _lists()[lst].get(fold(text))
