"""Vietnam's cross-field and reference-data rules (shared/reference/certificate-standards.md).

Each checker takes one canonical record (normalised values only) and returns refusal reasons.
Missing values are the GX suite's business (REQUIRED); a rule whose inputs are missing is skipped.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
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


def address(rec: dict, province_field: str, commune_field: str, on: dt.datetime | None) -> list[dict]:
    province, commune = rec.get(province_field), rec.get(commune_field)
    if on is None or not (province or commune):
        return []
    era = ref.admin_era(on.date())
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


def not_future(dates: dict[str, dt.datetime | None], now: dt.datetime) -> list[dict]:
    limit = now + CLOCK_SKEW
    return [reason(f, "DATE_FUTURE") for f, v in dates.items() if v is not None and v > limit]


def nationality(field: str, value: str | None) -> list[dict]:
    if value and ref.normalise_nationality(value) is None:
        return [reason(field, "NATIONALITY_CODE")]
    return []


def check_birth(rec: dict, now: dt.datetime | None = None) -> list[dict]:
    now = now or now_local()
    g = rec.get
    born, issued, mother_born = _d(g("NGAY_SINH_CON")), _d(g("NGAY_CT")), _d(g("NGAYSINH_NND"))
    id_issued = _d(g("NGAYCAP_CCCD_NND"))
    out = []
    if not g("MA_GCS") and not (g("SO") and g("NGAY_CT") and g("MA_CSKCB")):
        out.append(reason("MA_GCS", "KEY_MISSING"))
    out += cert_number("MA_GCS", g("MA_GCS"), g("MA_CSKCB"), issued)
    out += person_id("SO_CCCD_NND", g("SO_CCCD_NND"), 2, mother_born)
    out += not_future(
        {"NGAY_SINH_CON": born, "NGAY_CT": issued, "NGAYSINH_NND": mother_born, "NGAYCAP_CCCD_NND": id_issued}, now
    )
    if born and issued and born.date() > issued.date():
        out.append(reason("NGAY_SINH_CON", "DATE_ORDER", "birth_after_issue"))
    if born and mother_born and not 10 <= (born - mother_born).days / 365.25 <= 65:
        out.append(reason("NGAYSINH_NND", "DATE_ORDER", "mother_age"))
    if id_issued and mother_born and id_issued < mother_born:
        out.append(reason("NGAYCAP_CCCD_NND", "DATE_ORDER", "id_before_birth"))
    out += nationality("MA_QUOCTICH_NND", g("MA_QUOCTICH_NND"))
    out += address(rec, "MATINH_CU_TRU", "MAXA_CU_TRU", issued or born)
    return out


def check_death(rec: dict, now: dt.datetime | None = None) -> list[dict]:
    now = now or now_local()
    g = rec.get
    born, died, issued = _d(g("NGAY_SINH")), _d(g("NGAY_TV")), _d(g("NGAY_CAPGIAYBT"))
    admitted, id_issued = _d(g("NGAYGIO_VV")), _d(g("NGAY_CAP"))
    out = []
    if not g("MA_GBT") and not (g("SO_BAOTU") and g("NGAY_CAPGIAYBT") and g("MACSKCB")):
        out.append(reason("MA_GBT", "KEY_MISSING"))
    out += cert_number("MA_GBT", g("MA_GBT"), g("MACSKCB"), issued)
    out += person_id("SO_GIAYTO", g("SO_GIAYTO"), g("GIOI_TINH"), born)
    out += not_future(
        {"NGAY_TV": died, "NGAY_CAPGIAYBT": issued, "NGAY_SINH": born, "NGAYGIO_VV": admitted, "NGAY_CAP": id_issued},
        now,
    )
    if born and died and died.date() < born.date():
        out.append(reason("NGAY_TV", "DATE_ORDER", "death_before_birth"))
    if died and issued and died.date() > issued.date():
        out.append(reason("NGAY_TV", "DATE_ORDER", "death_after_issue"))
    if admitted and died and admitted > died:
        out.append(reason("NGAYGIO_VV", "DATE_ORDER", "admission_after_death"))
    if id_issued and born and id_issued < born:
        out.append(reason("NGAY_CAP", "DATE_ORDER", "id_before_birth"))
    out += nationality("MA_QUOCTICH", g("MA_QUOCTICH"))
    on = issued or died
    out += address(rec, "MATINH_THUONGTRU", "MAXA_THUONGTRU", on)
    out += address(rec, "MATINH_HIENTAI", "MAXA_HIENTAI", on)
    icd = g("BENH_ICD10_ID")
    if icd and not all(ref.icd10_valid(c) for c in ref.split_icd10(icd)):
        out.append(reason("BENH_ICD10_ID", "ICD10_CODE"))
    return out


def checker(kind: str) -> Callable[[dict], list[dict]]:
    now = now_local()
    fn = check_birth if kind == "GCS" else check_death
    return lambda rec: fn(rec, now)
