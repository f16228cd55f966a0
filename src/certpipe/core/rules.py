"""Vietnam's cross-field and reference-data rules (shared/reference/certificate-standards.md).

Each checker takes one canonical record (normalised values only) and returns refusal reasons.
Missing values are the GX suite's business (REQUIRED); a rule whose inputs are missing is skipped.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from certpipe import clock
from certpipe.core import reference as ref
from certpipe.core.schema import reason

CLOCK_SKEW = dt.timedelta(minutes=10)
_CERT = re.compile(r"^(\d{5})\.(GCS|GBT)\.([0-9A-Z]{5})\.(\d{2})$")
_PASSPORT = re.compile(r"^[A-Z0-9]{6,15}$")


def now_local() -> dt.datetime:
    return clock.vn_local_now()


def _d(v: str | None) -> dt.datetime | None:
    return _moment(v) if v else None


@lru_cache(maxsize=65536)
def _moment(v: str) -> dt.datetime:
    return dt.datetime(int(v[:4]), int(v[4:6]), int(v[6:8]), int(v[8:10] or 0), int(v[10:12] or 0), int(v[12:14] or 0))


def person_id(field: str, value: str | None, sex: int | None, born: dt.datetime | None) -> list[dict]:
    """CCCD / personal ID: 12 digits = province (3), century+sex (1), year (2), random (6)."""
    if not value:
        return []
    if not value.isdigit():
        return [] if _PASSPORT.match(value) else [reason(field, "ID_FORMAT")]
    if len(value) == 9:  # old 9-digit identity card (CMND): no structure to check
        return []
    if len(value) != 12:
        return [reason(field, "ID_FORMAT")]
    out = []
    if value[:3] not in ref.cccd_province_codes():
        out.append(reason(field, "CCCD_PROVINCE"))
    digit = int(value[3])
    if sex in (1, 2) and (digit % 2 == 1) != (sex == 2):
        out.append(reason(field, "CCCD_SEX"))
    if born is not None:
        century = 1900 + (digit // 2) * 100
        if century + int(value[4:6]) != born.year:
            out.append(reason(field, "CCCD_YEAR"))
    return out


def cert_number(field: str, value: str | None, facility: str | None, issued: dt.datetime | None) -> list[dict]:
    if not value:
        return []
    m = _CERT.match(value)
    if not m:
        return []  # the GX suite reports CERT_FORMAT
    out = []
    if facility and m.group(3) != facility:
        out.append(reason(field, "CERT_FACILITY"))
    if issued is not None and int(m.group(4)) != issued.year % 100:
        out.append(reason(field, "CERT_YEAR"))
    return out


def address(province_field: str, province, commune_field: str, commune, era: str | None) -> list[dict]:
    """Province and commune codes of the administrative era of the record's date (None: no date, no check)."""
    if era is None or not (province or commune):
        return []
    out = []
    province_ok = province in ref.provinces(era) if province else False
    if province and not province_ok:
        out.append(reason(province_field, "PROVINCE_CODE"))
    if commune:
        if commune not in ref.communes(era):
            out.append(reason(commune_field, "COMMUNE_CODE"))
        elif province_ok and (province, commune) not in ref.commune_pairs(era):
            out.append(reason(commune_field, "COMMUNE_PROVINCE"))
    return out


def era_of(value: str | None) -> str | None:
    """The administrative era of a canonical date or date-time (None when missing)."""
    return ref.admin_era(_moment(value).date()) if value else None


def not_future(dates: dict[str, dt.datetime | None], now: dt.datetime) -> list[dict]:
    limit = now + CLOCK_SKEW
    return [reason(f, "DATE_FUTURE") for f, v in dates.items() if v is not None and v > limit]


def nationality(field: str, value: str | None) -> list[dict]:
    if value and ref.normalise_nationality(value) is None:
        return [reason(field, "NATIONALITY_CODE")]
    return []


@dataclass(frozen=True)
class Check:
    """One rule group: `fn(now, *values)` of the canonical `fields` (None when missing) returns reasons.

    A group's outcome depends on its fields only, so the columnar validation evaluates it once per distinct
    combination of them; a record's reasons are its groups' in this order. `era` marks the one input that is
    a date read only for its administrative era (address codes)."""

    fields: tuple[str, ...]
    fn: Callable[..., list[dict]]
    era: int | None = None  # index in `fields` of a value given as its era (era_of), not as the date itself


def _key_missing(key: str, parts: tuple[str, str, str]) -> Check:
    return Check((key, *parts), lambda _now, k, a, b, c: [] if k or (a and b and c) else [reason(key, "KEY_MISSING")])


def _cert(key: str, facility: str, issued: str) -> Check:
    return Check((key, facility, issued), lambda _now, v, fac, iss: cert_number(key, v, fac, _d(iss)))


def _future(name: str) -> Check:
    return Check((name,), lambda now, v: not_future({name: _d(v)}, now))


def _order(field: str, variant: str, before: str, after: str, *, by_date: bool = False) -> Check:
    """`before` must not come after `after`: reported on `field` (DATE_ORDER, `variant`)."""

    def fn(_now, a, b):
        a, b = _d(a), _d(b)
        if a and b and ((a.date() > b.date()) if by_date else (a > b)):
            return [reason(field, "DATE_ORDER", variant)]
        return []

    return Check((before, after), fn)


def _mother_age(_now, born, mother_born) -> list[dict]:
    born, mother_born = _d(born), _d(mother_born)
    if born and mother_born and not 10 <= (born - mother_born).days / 365.25 <= 65:
        return [reason("NGAYSINH_NND", "DATE_ORDER", "mother_age")]
    return []


def _address(province: str, commune: str, on: str, fallback: str) -> Check:
    return Check(
        (province, commune, on, fallback),
        lambda _now, p, c, era: address(province, p, commune, c, era),
        era=2,
    )


def _icd10(_now, icd) -> list[dict]:
    if icd and not all(ref.icd10_valid(c) for c in ref.split_icd10(icd)):
        return [reason("BENH_ICD10_ID", "ICD10_CODE")]
    return []


BIRTH_CHECKS = (
    _key_missing("MA_GCS", ("SO", "NGAY_CT", "MA_CSKCB")),
    _cert("MA_GCS", "MA_CSKCB", "NGAY_CT"),
    Check(("SO_CCCD_NND", "NGAYSINH_NND"), lambda _now, v, born: person_id("SO_CCCD_NND", v, 2, _d(born))),
    *(_future(f) for f in ("NGAY_SINH_CON", "NGAY_CT", "NGAYSINH_NND", "NGAYCAP_CCCD_NND")),
    _order("NGAY_SINH_CON", "birth_after_issue", "NGAY_SINH_CON", "NGAY_CT", by_date=True),
    Check(("NGAY_SINH_CON", "NGAYSINH_NND"), _mother_age),
    _order("NGAYCAP_CCCD_NND", "id_before_birth", "NGAYSINH_NND", "NGAYCAP_CCCD_NND"),
    Check(("MA_QUOCTICH_NND",), lambda _now, v: nationality("MA_QUOCTICH_NND", v)),
    _address("MATINH_CU_TRU", "MAXA_CU_TRU", "NGAY_CT", "NGAY_SINH_CON"),
)

DEATH_CHECKS = (
    _key_missing("MA_GBT", ("SO_BAOTU", "NGAY_CAPGIAYBT", "MACSKCB")),
    _cert("MA_GBT", "MACSKCB", "NGAY_CAPGIAYBT"),
    Check(("SO_GIAYTO", "GIOI_TINH", "NGAY_SINH"), lambda _now, v, sex, born: person_id("SO_GIAYTO", v, sex, _d(born))),
    *(_future(f) for f in ("NGAY_TV", "NGAY_CAPGIAYBT", "NGAY_SINH", "NGAYGIO_VV", "NGAY_CAP")),
    _order("NGAY_TV", "death_before_birth", "NGAY_SINH", "NGAY_TV", by_date=True),
    _order("NGAY_TV", "death_after_issue", "NGAY_TV", "NGAY_CAPGIAYBT", by_date=True),
    _order("NGAYGIO_VV", "admission_after_death", "NGAYGIO_VV", "NGAY_TV"),
    _order("NGAY_CAP", "id_before_birth", "NGAY_SINH", "NGAY_CAP"),
    Check(("MA_QUOCTICH",), lambda _now, v: nationality("MA_QUOCTICH", v)),
    _address("MATINH_THUONGTRU", "MAXA_THUONGTRU", "NGAY_CAPGIAYBT", "NGAY_TV"),
    _address("MATINH_HIENTAI", "MAXA_HIENTAI", "NGAY_CAPGIAYBT", "NGAY_TV"),
    Check(("BENH_ICD10_ID",), _icd10),
)


def checks(kind: str) -> tuple[Check, ...]:
    return BIRTH_CHECKS if kind == "GCS" else DEATH_CHECKS


def era_input(check: Check, values: tuple) -> tuple:
    """The values a check's fn takes: its era input is the era of the first present of the last two fields."""
    if check.era is None:
        return values
    return (*values[: check.era], era_of(values[check.era] or values[check.era + 1]))


def check_record(rec: dict, kind: str, now: dt.datetime | None = None) -> list[dict]:
    """Vietnam's rules on one canonical record."""
    now = now or now_local()
    g = rec.get
    out: list[dict] = []
    for c in checks(kind):
        out += c.fn(now, *era_input(c, tuple(g(f) for f in c.fields)))
    return out


def check_birth(rec: dict, now: dt.datetime | None = None) -> list[dict]:
    return check_record(rec, "GCS", now)


def check_death(rec: dict, now: dt.datetime | None = None) -> list[dict]:
    return check_record(rec, "GBT", now)


def checker(kind: str) -> Callable[[dict], list[dict]]:
    now = now_local()
    return lambda rec: check_record(rec, kind, now)
