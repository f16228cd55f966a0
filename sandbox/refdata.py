"""Administrative units and facilities used by the generator.

Reads the reference CSVs under include/schemas/reference/ when present,
else falls back to a small built-in list of real codes.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REF_DIR = ROOT / "include" / "schemas" / "reference"
NEW_CSV = REF_DIR / "admin_units_2025.csv"
LEGACY_CSV = REF_DIR / "admin_units_legacy.csv"

#: First day of the two-level (province/commune) system.
REFORM_DATE = "20250701"


@dataclass(frozen=True)
class Ward:
    province_code: str
    province_name: str
    ward_code: str
    ward_name: str
    district_code: str = ""  # legacy only
    district_name: str = ""  # legacy only


@dataclass
class Era:
    """Wards of one era, grouped by 2-digit province code."""

    name: str  # "2025" or "legacy"
    source: str  # path of the CSV or "builtin"
    by_province: dict[str, list[Ward]] = field(default_factory=dict)

    @property
    def provinces(self) -> list[str]:
        return sorted(self.by_province)

    def province_name(self, code: str) -> str:
        wards = self.by_province.get(code)
        return wards[0].province_name if wards else ""


# Built-in fallback: real codes (NSO / QĐ 124/2004), a few per province.
_BUILTIN_NEW = [
    ("01", "Thành phố Hà Nội", "00004", "Phường Ba Đình"),
    ("01", "Thành phố Hà Nội", "00008", "Phường Ngọc Hà"),
    ("01", "Thành phố Hà Nội", "00025", "Phường Giảng Võ"),
    ("01", "Thành phố Hà Nội", "00070", "Phường Hoàn Kiếm"),
    ("01", "Thành phố Hà Nội", "00073", "Phường Cửa Nam"),
    ("01", "Thành phố Hà Nội", "00097", "Phường Hồng Hà"),
    ("01", "Thành phố Hà Nội", "00256", "Phường Hai Bà Trưng"),
    ("79", "Thành phố Hồ Chí Minh", "26506", "Phường Vũng Tàu"),
    ("79", "Thành phố Hồ Chí Minh", "26526", "Phường Tam Thắng"),
    ("79", "Thành phố Hồ Chí Minh", "26560", "Phường Bà Rịa"),
    ("79", "Thành phố Hồ Chí Minh", "26566", "Phường Long Hương"),
    ("79", "Thành phố Hồ Chí Minh", "26740", "Phường Sài Gòn"),
    ("96", "Tỉnh Cà Mau", "32002", "Phường An Xuyên"),
    ("96", "Tỉnh Cà Mau", "32014", "Phường Lý Văn Lâm"),
    ("96", "Tỉnh Cà Mau", "32025", "Phường Tân Thành"),
    ("96", "Tỉnh Cà Mau", "32041", "Phường Hòa Thành"),
    ("96", "Tỉnh Cà Mau", "32167", "Xã Tân Thuận"),
    ("96", "Tỉnh Cà Mau", "32188", "Xã Tân Tiến"),
]
_BUILTIN_LEGACY = [
    ("01", "Thành phố Hà Nội", "001", "Quận Ba Đình", "00001", "Phường Phúc Xá"),
    ("01", "Thành phố Hà Nội", "001", "Quận Ba Đình", "00004", "Phường Trúc Bạch"),
    ("01", "Thành phố Hà Nội", "001", "Quận Ba Đình", "00006", "Phường Vĩnh Phúc"),
    ("01", "Thành phố Hà Nội", "002", "Quận Hoàn Kiếm", "00037", "Phường Phúc Tân"),
    ("01", "Thành phố Hà Nội", "002", "Quận Hoàn Kiếm", "00040", "Phường Đồng Xuân"),
    ("79", "Thành phố Hồ Chí Minh", "760", "Quận 1", "26734", "Phường Tân Định"),
    ("79", "Thành phố Hồ Chí Minh", "760", "Quận 1", "26737", "Phường Đa Kao"),
    ("79", "Thành phố Hồ Chí Minh", "760", "Quận 1", "26740", "Phường Bến Nghé"),
    ("79", "Thành phố Hồ Chí Minh", "760", "Quận 1", "26743", "Phường Bến Thành"),
    ("96", "Tỉnh Cà Mau", "964", "Thành phố Cà Mau", "32002", "Phường 9"),
    ("96", "Tỉnh Cà Mau", "964", "Thành phố Cà Mau", "32005", "Phường 4"),
    ("96", "Tỉnh Cà Mau", "964", "Thành phố Cà Mau", "32008", "Phường 1"),
    ("96", "Tỉnh Cà Mau", "964", "Thành phố Cà Mau", "32011", "Phường 2"),
]


def _z(value: str, width: int) -> str:
    value = (value or "").strip()
    return value.zfill(width) if value.isdigit() else value


def _read_csv(path: Path, legacy: bool) -> list[Ward] | None:
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError):
        return None
    wards = []
    for r in rows:
        try:
            wards.append(
                Ward(
                    province_code=_z(r["province_code"], 2),
                    province_name=r["province_name"].strip(),
                    ward_code=_z(r["ward_code"], 5),
                    ward_name=r["ward_name"].strip(),
                    district_code=_z(r["district_code"], 3) if legacy else "",
                    district_name=r["district_name"].strip() if legacy else "",
                )
            )
        except (KeyError, AttributeError):
            return None  # wrong header or a half-written file
    return wards or None


_cache: dict[str, tuple[float, Era]] = {}


def load_era(name: str) -> Era:
    """Wards of era "2025" (from 2025-07-01) or "legacy" (63 provinces, with districts)."""
    legacy = name == "legacy"
    path = LEGACY_CSV if legacy else NEW_CSV
    try:
        mtime = Path(path).stat().st_mtime
    except OSError:
        mtime = -1.0
    hit = _cache.get(name)
    if hit and hit[0] == mtime:
        return hit[1]
    wards = _read_csv(path, legacy) if mtime >= 0 else None
    source = str(path)
    if wards is None:
        source = "builtin"
        raw = _BUILTIN_LEGACY if legacy else _BUILTIN_NEW
        wards = [Ward(r[0], r[1], r[4], r[5], r[2], r[3]) if legacy else Ward(r[0], r[1], r[2], r[3]) for r in raw]
    era = Era(name=name, source=source)
    for w in wards:
        era.by_province.setdefault(w.province_code, []).append(w)
    for lst in era.by_province.values():
        lst.sort(key=lambda w: w.ward_code)
    _cache[name] = (mtime, era)
    return era


def era_for(date_yyyymmdd: str) -> Era:
    """The era whose codes apply on that date."""
    return load_era("2025" if date_yyyymmdd >= REFORM_DATE else "legacy")


@dataclass(frozen=True)
class Facility:
    code: str  # 5-char MA_CSKCB; first two chars = province
    name: str
    province: str
    address: str
    head: str  # THU_TRUONG_DVI
    head_bhxh: str  # MA_TTDV, 10 digits

    @property
    def password(self) -> str:
        return f"sandbox-{self.code}"


PILOT_FACILITIES = {
    "01020": Facility(
        "01020",
        "Bệnh viện Đa khoa thí điểm Hà Nội",
        "01",
        "Số 1 Tràng Thi, Phường Hoàn Kiếm, Thành phố Hà Nội",
        "Nguyễn Văn Hùng",
        "0101234567",
    ),
    "79034": Facility(
        "79034",
        "Bệnh viện Đa khoa thí điểm TP Hồ Chí Minh",
        "79",
        "Số 125 Lê Lợi, Phường Bến Thành, Thành phố Hồ Chí Minh",
        "Trần Thị Mai",
        "7901234567",
    ),
    "96025": Facility(
        "96025",
        "Bệnh viện Đa khoa thí điểm Cà Mau",
        "96",
        "Số 16 Hải Thượng Lãn Ông, Phường An Xuyên, Tỉnh Cà Mau",
        "Lê Minh Tâm",
        "9601234567",
    ),
}


def facility(code: str) -> Facility:
    """A pilot facility, or a generic one whose province is the code's first two digits."""
    code = code.strip()
    if code in PILOT_FACILITIES:
        return PILOT_FACILITIES[code]
    prov = code[:2]
    return Facility(
        code,
        f"Bệnh viện Đa khoa sandbox {code}",
        prov,
        f"Tỉnh/thành phố mã {prov}",
        "Phạm Văn Sơn",
        f"{prov}{int(code[2:] or 0, 36) % 10**8:08d}"[:10],
    )
