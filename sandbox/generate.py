"""Deterministic synthetic birth (GCS) and death (GBT) certificates.

`generate_births` / `generate_deaths` return a `Batch`: a list of feed envelopes
``{"id", "updated_at", "record"}`` (record = official GIAYCHUNGSINH / GIAYBAOTU
field names, all values strings) ordered by (updated_at, id). The batch holds
``n`` distinct ids plus a few extra entries (verbatim duplicates, re-exports and
resubmissions of the same id). What is deliberately wrong is kept out of the
feed, on the batch: ``expected`` (id -> rule code), ``messy`` (id -> harmless
messiness that must be accepted), ``duplicates`` and ``resubmitted``.

`generate_bulk_births` yields plain record dicts fast, for benchmarks.
"""

from __future__ import annotations

import json
import random
import unicodedata
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from sandbox import refdata
from sandbox.refdata import Facility

VN_TZ = timezone(timedelta(hours=7))  # Asia/Ho_Chi_Minh, no DST

_FIELDS_DIR = Path(__file__).resolve().parent.parent / "include" / "schemas" / "fields"


def _nfc(items):
    return [unicodedata.normalize("NFC", s) for s in items]


FAMILY = _nfc(
    [
        "Nguyễn",
        "Trần",
        "Lê",
        "Phạm",
        "Hoàng",
        "Huỳnh",
        "Phan",
        "Vũ",
        "Võ",
        "Đặng",
        "Bùi",
        "Đỗ",
        "Hồ",
        "Ngô",
        "Dương",
        "Lý",
    ]
)
FAMILY_W = [38, 11, 9.5, 7, 5, 5, 4.5, 3.9, 3.9, 2.1, 2, 1.4, 1.3, 1.3, 1, 0.5]
MIDDLE_MALE = _nfc(["Văn", "Hữu", "Đức", "Minh", "Thanh", "Quang", "Ngọc"])
MIDDLE_FEMALE = _nfc(["Thị", "Thị", "Thị", "Ngọc", "Thanh", "Minh", "Thu"])
GIVEN_MALE = _nfc(
    [
        "An",
        "Bình",
        "Dũng",
        "Hải",
        "Khánh",
        "Nam",
        "Phúc",
        "Quang",
        "Sơn",
        "Tâm",
        "Tuấn",
        "Hùng",
        "Long",
        "Minh",
        "Đạt",
        "Huy",
        "Kiên",
        "Thắng",
        "Trung",
        "Vinh",
    ]
)
GIVEN_FEMALE = _nfc(
    [
        "An",
        "Châu",
        "Hà",
        "Hạnh",
        "Hương",
        "Khánh",
        "Lan",
        "Linh",
        "Mai",
        "Quỳnh",
        "Tâm",
        "Thảo",
        "Trang",
        "Vy",
        "Yến",
        "Hoa",
        "Ngân",
        "Nhung",
        "Thủy",
        "Uyên",
    ]
)
STREETS = _nfc(
    [
        "Lê Lợi",
        "Trần Hưng Đạo",
        "Nguyễn Trãi",
        "Hai Bà Trưng",
        "Lý Thường Kiệt",
        "Phan Đình Phùng",
        "Quang Trung",
        "Hùng Vương",
        "Lê Duẩn",
        "Nguyễn Huệ",
    ]
)
# Ethnicity (QĐ 121-TCTK): 01 Kinh, 02 Tày, 03 Thái, 04 Hoa, 05 Khơ-me, 06 Mường, 07 Nùng, 08 Hmông
ETHNICITIES = ["01", "02", "03", "04", "05", "06", "07", "08"]
ETHNICITY_W = [88, 2, 2, 2, 2, 2, 1, 1]
ID_ISSUER = unicodedata.normalize("NFC", "Cục Cảnh sát quản lý hành chính về trật tự xã hội")

# (WHO ICD-10 code, Vietnamese cause text, minimum age, weight)
CAUSES = [
    ("I21.9", "Nhồi máu cơ tim cấp", 30, 12),
    ("I64", "Đột quỵ", 30, 16),
    ("J18.9", "Viêm phổi", 0, 12),
    ("C34.9", "Ung thư phổi", 30, 9),
    ("E11.9", "Đái tháo đường type 2", 30, 6),
    ("R54", "Suy kiệt tuổi già", 75, 14),
    ("A41.9", "Nhiễm khuẩn huyết", 0, 8),
    ("K74.6", "Xơ gan", 25, 6),
    ("J44.9", "Bệnh phổi tắc nghẽn mạn tính", 40, 8),
    ("V89.2", "Tai nạn giao thông", 5, 9),
]
CAUSES = [(c, unicodedata.normalize("NFC", t), a, w) for c, t, a, w in CAUSES]

BIRTH_RULES = [
    "CCCD_SEX",
    "CCCD_YEAR",
    "ID_FORMAT",
    "DATE_INVALID",
    "DATE_FUTURE",
    "DATE_ORDER",
    "WEIGHT_RANGE",
    "SEX_CODE",
    "ETHNICITY_CODE",
    "COMMUNE_PROVINCE",
    "CERT_FACILITY",
    "CERT_YEAR",
    "CERT_FORMAT",
    "REQUIRED",
]
DEATH_RULES = [
    "CCCD_SEX",
    "CCCD_YEAR",
    "ID_FORMAT",
    "DATE_INVALID",
    "DATE_FUTURE",
    "DATE_ORDER",
    "SEX_CODE",
    "ETHNICITY_CODE",
    "COMMUNE_PROVINCE",
    "CERT_FACILITY",
    "CERT_YEAR",
    "CERT_FORMAT",
    "ICD10_CODE",
    "REQUIRED",
]


def _field_order(kind: str) -> list[str]:
    try:
        spec = json.loads((_FIELDS_DIR / f"{kind.lower()}.json").read_text(encoding="utf-8"))
        return [f["name"] for f in spec["fields"]]
    except (OSError, ValueError, KeyError):
        return []


GCS_FIELDS = _field_order("GCS")
GBT_FIELDS = _field_order("GBT")


class Batch(list):
    """Feed envelopes plus the manifest of what was done to them (not part of the feed)."""

    def __init__(self, items=(), kind: str = ""):
        super().__init__(items)
        self.kind = kind
        self.expected: dict[str, str] = {}  # id -> intended rule code
        self.messy: dict[str, str] = {}  # id -> NFD | SPACES | LOWER (valid, must be accepted)
        self.duplicates: dict[str, str] = {}  # id -> verbatim | reexport
        self.resubmitted: dict[str, list[str]] = {}  # id -> changed fields

    def manifest(self) -> dict:
        return {
            "kind": self.kind,
            "expected": self.expected,
            "messy": self.messy,
            "duplicates": self.duplicates,
            "resubmitted": self.resubmitted,
        }


# ---------------------------------------------------------------- helpers


def _now(now: datetime | None) -> datetime:
    if now is None:
        now = datetime.now(VN_TZ)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=VN_TZ)
    return now.astimezone(VN_TZ).replace(second=0, microsecond=0)


def iso(dt: datetime) -> str:
    return dt.astimezone(VN_TZ).isoformat(timespec="seconds")


def d8(d: date) -> str:
    return d.strftime("%Y%m%d")


def d12(dt: datetime) -> str:
    return dt.strftime("%Y%m%d%H%M")


def _years_before(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year - years)
    except ValueError:  # 29 Feb
        return d.replace(year=d.year - years, day=28)


def _rand_date(rng: random.Random, start: date, end: date) -> date:
    if end <= start:
        return start
    return start + timedelta(days=rng.randrange((end - start).days + 1))


def person_name(rng: random.Random, male: bool, family: str | None = None, mother: bool = False) -> str:
    fam = family or rng.choices(FAMILY, FAMILY_W)[0]
    if mother:
        mid = "Thị" if rng.random() < 0.75 else rng.choice(MIDDLE_FEMALE)
    else:
        mid = rng.choice(MIDDLE_MALE if male else MIDDLE_FEMALE)
    given = rng.choice(GIVEN_MALE if male else GIVEN_FEMALE)
    return f"{fam} {mid} {given}"


def cccd(rng: random.Random, reg_province: str, birth_year: int, male: bool) -> str:
    """12-digit personal ID: 0+province, century/sex digit, 2-digit year, 6 random digits."""
    sex_digit = (birth_year // 100 - 19) * 2 + (0 if male else 1)
    return f"0{reg_province}{sex_digit}{birth_year % 100:02d}{rng.randrange(10**6):06d}"


def _reg_province(rng: random.Random, home: str) -> str:
    """Province of birth registration (legacy 63-province codes)."""
    legacy = refdata.load_era("legacy").provinces
    if home in legacy and rng.random() < 0.7:
        return home
    return rng.choice(legacy)


def _residence(rng: random.Random, province: str, on: date) -> dict:
    era = refdata.era_for(d8(on))
    wards = era.by_province.get(province) or era.by_province[rng.choice(era.provinces)]
    w = rng.choice(wards)
    street = f"Số {rng.randint(1, 250)} {rng.choice(STREETS)}"
    parts = [street, w.ward_name] + ([w.district_name] if w.district_name else []) + [w.province_name]
    return {"address": ", ".join(parts), "province": w.province_code, "district": w.district_code, "ward": w.ward_code}


def _other_province_ward(rng: random.Random, province: str, on: date) -> str:
    era = refdata.era_for(d8(on))
    others = [p for p in era.provinces if p != province]
    return rng.choice(era.by_province[rng.choice(others)]).ward_code


def _ordered(rec: dict, order: list[str]) -> dict:
    if not order:
        return rec
    out = {k: rec[k] for k in order if k in rec}
    out.update((k, v) for k, v in rec.items() if k not in out)
    return out


def _bhxh(rng: random.Random, province: str) -> str:
    return f"{province}{rng.randrange(10**8):08d}"


# ---------------------------------------------------------------- births


def _birth_drafts(rng: random.Random, fac: Facility, now: datetime, count: int) -> list[dict]:
    """One delivery: `count` children (2 = twins) of one mother."""
    birth_dt = now - timedelta(minutes=rng.randint(120, 60 * 24 * 60))
    bdate = birth_dt.date()
    age = min(42, max(18, round(rng.gauss(29, 5.5))))
    dob = _years_before(bdate, age) - timedelta(days=rng.randrange(365))
    issued = min(birth_dt + timedelta(minutes=rng.randint(60, 72 * 60)), now - timedelta(minutes=10))
    reg = _reg_province(rng, fac.province)
    home = _residence(rng, fac.province, issued.date())  # codes of the era of the issue date
    insured = rng.random() < 0.85
    bhxh = _bhxh(rng, fac.province) if insured else "0000000000"
    card = f"GD4{fac.province}{bhxh}" if insured else "0000000000"
    id_issued = _rand_date(rng, max(_years_before(dob, -14), date(2016, 1, 1)), bdate - timedelta(1))
    father = person_name(rng, True) if rng.random() < 0.85 else ""
    child_family = father.split(" ")[0] if father else None
    lan_sinh = rng.choices([1, 2, 3, 4], [45, 35, 15, 5])[0]
    prev_living = lan_sinh - 1 - (1 if lan_sinh > 1 and rng.random() < 0.05 else 0)
    csection = rng.random() < (0.6 if count == 2 else 0.35)
    preterm = rng.random() < (0.1 if count == 2 else 0.02)
    notes = (["Sinh con phải phẫu thuật"] if csection else []) + (["Sinh con dưới 32 tuần tuổi"] if preterm else [])
    patient = f"{bdate.year % 100:02d}{rng.randrange(10**6):06d}"
    mother = person_name(rng, False, mother=True)
    ethnicity = rng.choices(ETHNICITIES, ETHNICITY_W)[0]
    nationality = "704" if rng.random() < 0.9 else "VN"
    mother_id = cccd(rng, reg, dob.year, False)
    drafts = []
    for k in range(count):
        male = rng.random() < 0.515
        if preterm:
            weight = rng.randint(1800, 2100)
        else:
            weight = round(rng.gauss(2500 if count == 2 else 3100, 350 if count == 2 else 400))
        weight = min(4300, max(1800, weight))
        this_birth = birth_dt + timedelta(minutes=7 * k)
        this_issued = issued
        rec = {
            "MA_CSKCB": fac.code,
            "NGAY_CT": d8(this_issued),
            "MA_BN": patient,
            "MA_BHXH_NND": bhxh,
            "MA_THE_NND": card,
            "HOTEN_NND": mother,
            "NGAYSINH_NND": d8(dob),
            "MA_DANTOC_NND": ethnicity,
            "MA_QUOCTICH_NND": nationality,
            "LOAI_GIAYTO_NND": "1",
            "SO_CCCD_NND": mother_id,
            "NGAYCAP_CCCD_NND": d8(id_issued),
            "NOICAP_CCCD_NND": ID_ISSUER,
            "NOI_CU_TRU_NND": home["address"],
            "MATINH_CU_TRU": home["province"],
            "MAHUYEN_CU_TRU": home["district"],
            "MAXA_CU_TRU": home["ward"],
            "HO_TEN_CHA": father,
            "MA_THE_TAM": f"TE1{fac.province}{_bhxh(rng, fac.province)}" if rng.random() < 0.6 else "",
            "TEN_CON": person_name(rng, male, child_family) if rng.random() < 0.7 else "",
            "GIOI_TINH_CON": "1" if male else "2",
            "SO_CON": str(count),
            "LAN_SINH": str(lan_sinh),
            "SO_CON_SONG": str(prev_living + count),
            "CAN_NANG_CON": str(weight),
            "NGAY_SINH_CON": d12(this_birth),
            "NOI_SINH_CON": fac.name,
            "TINH_TRANG_CON": rng.choices(["Khỏe mạnh", "Yếu", "Dị tật bẩm sinh"], [93, 5, 2])[0],
            "SINHCON_PHAUTHUAT": "1" if csection else "0",
            "SINHCON_DUOI32TUAN": "1" if preterm else "0",
            "GHI_CHU": "; ".join(notes),
            "NGUOI_DO_DE": person_name(rng, rng.random() < 0.3),
            "NGUOI_GHI_PHIEU": person_name(rng, rng.random() < 0.3),
            "MA_TTDV": fac.head_bhxh,
            "THU_TRUONG_DVI": fac.head,
        }
        updated = min(this_issued + timedelta(seconds=rng.randint(60, 7200)), now - timedelta(seconds=60))
        drafts.append({"rec": rec, "issued": this_issued, "updated": updated, "event": this_birth, "male": male})
    return drafts


# ---------------------------------------------------------------- deaths


def _death_draft(rng: random.Random, fac: Facility, now: datetime, death_dt: datetime) -> dict:
    bracket = rng.choices([(0, 0), (1, 14), (15, 39), (40, 59), (60, 79), (80, 100)], [2, 2, 6, 15, 40, 35])[0]
    age = rng.randint(*bracket)
    code, cause, min_age, _ = rng.choices(CAUSES, [c[3] for c in CAUSES])[0]
    if age < min_age:
        age = rng.randint(min_age, max(min_age, 100) if min_age >= 75 else 95)
    ddate = death_dt.date()
    if age == 0:
        dob = ddate - timedelta(days=rng.randint(1, 360))
    else:
        dob = _years_before(ddate, age) - timedelta(days=rng.randrange(365))
    dob = max(dob, date(1925, 1, 1))
    male = rng.random() < 0.55
    dob_text = f"{dob.year}0101" if age > 60 and rng.random() < 0.05 else d8(dob)
    insured = rng.random() < 0.9
    bhxh = _bhxh(rng, fac.province) if insured else ""
    group = "TE1" if age < 6 else ("HT2" if age >= 60 else "GD4")
    if age >= 14:
        id_issued = _rand_date(rng, max(_years_before(dob, -14), date(2016, 1, 1)), ddate)
        issuer = ID_ISSUER
    else:
        id_issued = min(dob + timedelta(days=rng.randint(5, 30)), ddate)
        issuer = "Bộ Công an"
    en_route = rng.random() < 0.05
    admit = death_dt - timedelta(minutes=rng.randint(5, 30) if en_route else rng.randint(15, 15 * 24 * 60))
    end_next_day = datetime.combine(ddate + timedelta(days=2), datetime.min.time(), VN_TZ) - timedelta(minutes=1)
    latest = min(death_dt + timedelta(hours=30), end_next_day, now - timedelta(minutes=10))
    issued = death_dt + timedelta(minutes=rng.randint(30, max(30, int((latest - death_dt).total_seconds() // 60))))
    issued = min(issued, latest)
    reg = _reg_province(rng, fac.province)
    home = _residence(rng, fac.province, issued.date())  # codes of the era of the issue date
    now_home = home if rng.random() < 0.8 else _residence(rng, fac.province, issued.date())
    relative = person_name(rng, rng.random() < 0.5, rng.choices(FAMILY, FAMILY_W)[0])
    rec = {
        "MA_BN": f"{ddate.year % 100:02d}{rng.randrange(10**6):06d}",
        "MA_HSBA": f"HSBA{ddate.year}{rng.randrange(10**6):06d}",
        "HO_TEN": person_name(rng, male).upper(),
        "NGAY_SINH": dob_text,
        "GIOI_TINH": "1" if male else "2",
        "MA_THE": f"{group}{fac.province}{bhxh}" if insured else "",
        "MA_BHXH": bhxh,
        "MA_DANTOC": rng.choices(ETHNICITIES, ETHNICITY_W)[0],
        "MA_QUOCTICH": "704" if rng.random() < 0.9 else "VN",
        "DCHI_THUONGTRU": home["address"],
        "MATINH_THUONGTRU": home["province"],
        "MAHUYEN_THUONGTRU": home["district"],
        "MAXA_THUONGTRU": home["ward"],
        "DCHI_HIENTAI": now_home["address"],
        "MATINH_HIENTAI": now_home["province"],
        "MAHUYEN_HIENTAI": now_home["district"],
        "MAXA_HIENTAI": now_home["ward"],
        "LOAI_GIAYTO": "1",
        "SO_GIAYTO": cccd(rng, reg, dob.year, male),
        "NGAY_CAP": d8(id_issued),
        "NOI_CAP": issuer,
        "NGAYGIO_VV": d12(admit),
        "NGAY_TV": d12(death_dt),
        "TINH_TRANG_TV": "1" if en_route else "0",
        "NGUYENNHAN_TV": cause,
        "BENH_ICD10_ID": code,
        "BENH_ICD10_TEN": cause,
        "NGUOI_GHIGIAY": person_name(rng, rng.random() < 0.5),
        "NGUOI_THANTHICH": relative,
        "TTRUONG_DVI": fac.head,
        "NGAY_CAPGIAYBT": d8(issued),
        "SO_BAOTU_BD": "",
        "QUYEN_SO_BD": "",
        "MACSKCB": fac.code,
        "DIACHI_CSKCB": fac.address,
    }
    updated = min(issued + timedelta(seconds=rng.randint(60, 7200)), now - timedelta(seconds=60))
    return {"rec": rec, "issued": issued, "updated": updated, "event": death_dt, "male": male, "dob": dob}


# ---------------------------------------------------------------- shared pipeline


def _number(drafts: list[dict], kind: str, fac: Facility, rng: random.Random) -> None:
    """Assign running certificate numbers per issue year, in issue order."""
    counters: dict[int, int] = {}
    for d in drafts:
        year = d["issued"].year
        num = counters.get(year) or rng.randint(1, 300)
        counters[year] = num + 1
        rec = d["rec"]
        book = f"{(num - 1) // 500 + 1:02d}/{year}"
        if kind == "GCS":
            rec["MA_GCS"] = f"{num:05d}.GCS.{fac.code}.{year % 100:02d}"
            rec["SO"] = str(num)
            rec["QUYEN_SO"] = book
        else:
            rec["MA_GBT"] = f"{num:05d}.GBT.{fac.code}.{year % 100:02d}"
            rec["SO_BAOTU"] = str(num)
            rec["QUYEN_SO"] = book


def _cert_key(kind: str) -> str:
    return "MA_GCS" if kind == "GCS" else "MA_GBT"


def _recert(rec: dict, key: str, new: str, taken: set[str]) -> bool:
    """Change the certificate number unless that would collide with another record's."""
    if new.upper() in taken:
        return False
    taken.discard(rec[key].upper())
    taken.add(new.upper())
    rec[key] = new
    return True


def _set_cert_year(rec: dict, kind: str, date_text: str, taken: set[str]) -> None:
    # On a collision the old year stays (CERT_YEAR then fires too; the record is refused anyway).
    key = _cert_key(kind)
    _recert(rec, key, rec[key][:-2] + date_text[2:4], taken)


def _spoil(kind: str, d: dict, rule: str, rng: random.Random, now: datetime, fac: Facility, taken: set[str]) -> None:
    """Make draft `d` break `rule` (and, as far as possible, nothing else).

    `taken` holds all certificate numbers: a spoiled number never equals another record's.
    """
    rec = d["rec"]
    gcs = kind == "GCS"
    id_key = "SO_CCCD_NND" if gcs else "SO_GIAYTO"
    key = _cert_key(kind)
    if rule == "CCCD_SEX":
        s = rec[id_key]
        rec[id_key] = s[:3] + str(int(s[3]) ^ 1) + s[4:]
    elif rule == "CCCD_YEAR":
        s = rec[id_key]
        rec[id_key] = s[:4] + f"{(int(s[4:6]) + rng.randint(1, 9)) % 100:02d}" + s[6:]
    elif rule == "ID_FORMAT":
        s = rec[id_key]
        cut = rng.randrange(4, 12)
        rec[id_key] = s[:cut] + s[cut + 1 :]
    elif rule == "DATE_INVALID":
        k = "NGAYSINH_NND" if gcs else "NGAY_SINH"
        rec[k] = rec[k][:4] + rng.choice(["0230", "0231"])
    elif rule == "DATE_FUTURE":
        future = now + timedelta(days=rng.randint(2, 20), minutes=rng.randint(0, 600))
        if gcs:
            rec["NGAY_SINH_CON"] = d12(future)
            rec["NGAY_CT"] = d8(future)
            _set_cert_year(rec, kind, rec["NGAY_CT"], taken)
        else:
            rec["NGAY_TV"] = d12(future)
            rec["NGAY_CAPGIAYBT"] = d8(future)
            _set_cert_year(rec, kind, rec["NGAY_CAPGIAYBT"], taken)
    elif rule == "DATE_ORDER":
        if gcs:  # certificate issued before the birth
            rec["NGAY_CT"] = d8(d["event"] - timedelta(days=rng.randint(1, 3)))
            _set_cert_year(rec, kind, rec["NGAY_CT"], taken)
        else:  # death before birth; keep the ID consistent with the new birth date
            ddate = d["event"].date()
            latest = min(ddate + timedelta(days=30), now.date() - timedelta(days=1))
            if latest > ddate:
                dob = _rand_date(rng, ddate + timedelta(days=1), latest)
                rec["NGAY_SINH"] = d8(dob)
                s = rec["SO_GIAYTO"]
                sex_digit = (dob.year // 100 - 19) * 2 + (0 if d["male"] else 1)
                rec["SO_GIAYTO"] = f"{s[:3]}{sex_digit}{dob.year % 100:02d}{s[6:]}"
            else:  # died today: admission after death instead
                rec["NGAYGIO_VV"] = d12(d["event"] + timedelta(minutes=rng.randint(10, 90)))
    elif rule == "WEIGHT_RANGE":
        rec["CAN_NANG_CON"] = "45000"
    elif rule == "SEX_CODE":
        rec["GIOI_TINH_CON" if gcs else "GIOI_TINH"] = "5"
    elif rule == "ETHNICITY_CODE":
        rec["MA_DANTOC_NND" if gcs else "MA_DANTOC"] = "77"
    elif rule == "COMMUNE_PROVINCE":
        prov, ward = ("MATINH_CU_TRU", "MAXA_CU_TRU") if gcs else ("MATINH_THUONGTRU", "MAXA_THUONGTRU")
        rec[ward] = _other_province_ward(rng, rec[prov], d["issued"].date())
    elif rule == "CERT_FACILITY":
        # a well-formed code of no facility in the dataset (so no clash across hospitals)
        wrong = fac.code[:2] + ("9" if fac.code[2] != "9" else "8") + fac.code[3:]
        num, kd, _, yy = rec[key].split(".")
        _recert(rec, key, f"{num}.{kd}.{wrong}.{yy}", taken)
    elif rule == "CERT_YEAR":
        yy = int(rec[key][-2:])
        sign = rng.choice([-1, 1])
        for step in (1, -1, 2, -2, 3, -3, 4, -4, 5, -5):
            if _recert(rec, key, rec[key][:-2] + f"{(yy + sign * step) % 100:02d}", taken):
                break
    elif rule == "CERT_FORMAT":
        num, kd, fc, yy = rec[key].split(".")
        rec[key] = rng.choice(
            [
                f"{num[1:]}.{kd}.{fc}.{yy}",  # 4-digit running number
                f"{num}-{kd}-{fc}-{yy}",  # wrong separators
                f"{num}.{kd[::-1]}.{fc}.{yy}",  # scrambled kind
                f"{num}.{kd}.{fc}.20{yy}",  # 4-digit year
            ]
        )
    elif rule == "ICD10_CODE":
        rec["BENH_ICD10_ID"] = rng.choice(["J12.82", "XYZ"])
    elif rule == "REQUIRED":
        rec["HOTEN_NND" if gcs else "HO_TEN"] = ""
    else:  # pragma: no cover
        raise ValueError(rule)


_NAME_FIELDS = {"GCS": ["HOTEN_NND", "TEN_CON", "HO_TEN_CHA"], "GBT": ["HO_TEN", "NGUOI_THANTHICH"]}
_CODE_FIELDS = {"GCS": ["MA_THE_NND", "MA_THE_TAM", "MA_GCS"], "GBT": ["MA_THE", "BENH_ICD10_ID", "MA_GBT"]}


def _mess(kind: str, rec: dict, how: str, rng: random.Random) -> None:
    """Valid-but-messy variants a pipeline must normalise, not refuse."""
    names = [f for f in _NAME_FIELDS[kind] if rec.get(f)]
    if how == "NFD":
        for f in names:
            rec[f] = unicodedata.normalize("NFD", rec[f])
    elif how == "SPACES":
        for f in names:
            rec[f] = " " + rec[f].replace(" ", "  ", 1) + "  "
        code = "MAXA_CU_TRU" if kind == "GCS" else "MAXA_THUONGTRU"
        rec[code] = f" {rec[code]} "
    elif how == "LOWER":
        for f in _CODE_FIELDS[kind]:
            if rec.get(f) and any(c.isalpha() for c in rec[f]):
                rec[f] = rec[f].lower()


def _resubmit(kind: str, rec: dict, rng: random.Random) -> list[str]:
    """Change a field as a corrected resubmission would; returns the changed fields."""
    if kind == "GCS":
        if rng.random() < 0.5:
            w = int(rec["CAN_NANG_CON"])
            rec["CAN_NANG_CON"] = str(min(4300, max(1800, w + rng.choice([-150, -100, 100, 150]))))
            return ["CAN_NANG_CON"]
        male = rec["GIOI_TINH_CON"] == "1"
        fam = (rec["HO_TEN_CHA"] or rec["HOTEN_NND"] or "Nguyễn").split(" ")[0]
        new = rec["TEN_CON"]
        while new == rec["TEN_CON"]:
            new = person_name(rng, male, fam)
        rec["TEN_CON"] = new
        return ["TEN_CON"]
    age = int(rec["NGAY_TV"][:4]) - int(rec["NGAY_SINH"][:4])
    code, cause, _, _ = rng.choice([c for c in CAUSES if c[0] != rec["BENH_ICD10_ID"] and c[2] <= age])
    rec["BENH_ICD10_ID"], rec["NGUYENNHAN_TV"], rec["BENH_ICD10_TEN"] = code, cause, cause
    return ["BENH_ICD10_ID", "NGUYENNHAN_TV", "BENH_ICD10_TEN"]


def _feed_key(env: dict):
    return (datetime.fromisoformat(env["updated_at"]), env["id"])


def _finish(
    kind: str,
    drafts: list[dict],
    fac: Facility,
    rng: random.Random,
    now: datetime,
    bad_ratio: float,
    dup_ratio: float,
    resubmit_ratio: float,
    messy_ratio: float,
    rule_offset: int | None,
) -> Batch:
    drafts.sort(key=lambda d: (d["issued"], d["rec"].get("NGAY_SINH_CON") or d["rec"].get("NGAY_TV")))
    _number(drafts, kind, fac, rng)
    order = GCS_FIELDS if kind == "GCS" else GBT_FIELDS
    ids = [f"HIS-{fac.code}-{kind}-{i + 1:06d}" for i in range(len(drafts))]
    batch = Batch(kind=kind)
    n = len(drafts)
    idx = list(range(n))
    rng.shuffle(idx)
    n_bad = min(n, round(n * bad_ratio))
    rules = BIRTH_RULES if kind == "GCS" else DEATH_RULES
    offset = rng.randrange(len(rules)) if rule_offset is None else rule_offset
    bad = {i: rules[(offset + j) % len(rules)] for j, i in enumerate(sorted(idx[:n_bad]))}
    good = idx[n_bad:]
    n_messy = min(len(good), round(n * messy_ratio))
    messy = {i: ("NFD", "SPACES", "LOWER")[j % 3] for j, i in enumerate(sorted(good[:n_messy]))}
    rest = good[n_messy:]
    minimum = 1 if n >= 10 else 0
    n_dup = min(len(rest), max(minimum, round(n * dup_ratio)))
    dups = sorted(rest[:n_dup])
    rest = rest[n_dup:]
    n_res = min(len(rest), max(minimum, round(n * resubmit_ratio)))
    resub = sorted(rest[:n_res])

    taken = {d["rec"][_cert_key(kind)] for d in drafts}
    for i, d in enumerate(drafts):
        if i in bad:
            _spoil(kind, d, bad[i], rng, now, fac, taken)
            batch.expected[ids[i]] = bad[i]
        elif i in messy:
            _mess(kind, d["rec"], messy[i], rng)
            batch.messy[ids[i]] = messy[i]
        batch.append({"id": ids[i], "updated_at": iso(d["updated"]), "record": _ordered(d["rec"], order)})
    for j, i in enumerate(dups):
        env = batch[i]
        if j % 2 == 0:
            batch.append({**env, "record": dict(env["record"])})
            batch.duplicates[ids[i]] = "verbatim"
        else:
            later = min(drafts[i]["updated"] + timedelta(minutes=rng.randint(30, 48 * 60)), now)
            batch.append({**env, "updated_at": iso(later), "record": dict(env["record"])})
            batch.duplicates[ids[i]] = "reexport"
    for i in resub:
        env = batch[i]
        rec = dict(env["record"])
        changed = _resubmit(kind, rec, rng)
        later = min(drafts[i]["updated"] + timedelta(minutes=rng.randint(10, 72 * 60)), now)
        batch.append({"id": env["id"], "updated_at": iso(later), "record": rec})
        batch.resubmitted[ids[i]] = changed
    batch.sort(key=_feed_key)
    return batch


def _facility(facility: str | Facility) -> Facility:
    return facility if isinstance(facility, Facility) else refdata.facility(str(facility))


def generate_births(
    n: int,
    *,
    facility: str | Facility,
    seed: int = 0,
    now: datetime | None = None,
    bad_ratio: float = 0.1,
    dup_ratio: float = 0.03,
    resubmit_ratio: float = 0.03,
    messy_ratio: float = 0.1,
    rule_offset: int | None = None,
) -> Batch:
    """`n` birth certificates (twins = two records) of one facility, as feed envelopes.

    ~bad_ratio records break one rule each (rules taken in turn from BIRTH_RULES starting
    at `rule_offset`, random if None); see `Batch` for the manifest.
    """
    fac = _facility(facility)
    now = _now(now)
    rng = random.Random(f"{seed}:{fac.code}:GCS")
    drafts: list[dict] = []
    while len(drafts) < n:
        twins = len(drafts) <= n - 2 and rng.random() < 0.03
        drafts.extend(_birth_drafts(rng, fac, now, 2 if twins else 1))
    return _finish("GCS", drafts, fac, rng, now, bad_ratio, dup_ratio, resubmit_ratio, messy_ratio, rule_offset)


def generate_deaths(
    n: int,
    *,
    facility: str | Facility,
    seed: int = 0,
    now: datetime | None = None,
    bad_ratio: float = 0.1,
    dup_ratio: float = 0.03,
    resubmit_ratio: float = 0.03,
    messy_ratio: float = 0.1,
    rule_offset: int | None = None,
) -> Batch:
    """`n` death notices of one facility; a handful issued in May 2025 (legacy admin codes)."""
    fac = _facility(facility)
    now = _now(now)
    rng = random.Random(f"{seed}:{fac.code}:GBT")
    n_old = max(2, round(n * 0.05)) if n >= 10 and now >= datetime(2025, 6, 15, tzinfo=VN_TZ) else 0
    drafts = []
    for i in range(n):
        if i < n_old:
            death_dt = datetime(2025, 5, 1, tzinfo=VN_TZ) + timedelta(minutes=rng.randint(0, 29 * 24 * 60))
        else:
            death_dt = now - timedelta(minutes=rng.randint(120, 60 * 24 * 60))
        drafts.append(_death_draft(rng, fac, now, death_dt))
    return _finish("GBT", drafts, fac, rng, now, bad_ratio, dup_ratio, resubmit_ratio, messy_ratio, rule_offset)


# ---------------------------------------------------------------- bulk (benchmark)

BULK_FACILITIES = [
    "01020",
    "01064",
    "79034",
    "79071",
    "96025",
    "31010",
    "48015",
    "92012",
    "46003",
    "38007",
    "40010",
    "75020",
]
_BULK_WINDOWS = [(date(2025, 7, 1), date(2025, 12, 31)), (date(2026, 1, 1), date(2026, 10, 31))]
_BULK_BAD = ["CCCD_SEX", "WEIGHT_RANGE", "SEX_CODE", "ETHNICITY_CODE", "DATE_INVALID", "REQUIRED"]


def _bulk_spoil(rec: dict, rule: str) -> None:
    if rule == "CCCD_SEX":
        cid = rec["SO_CCCD_NND"]
        rec["SO_CCCD_NND"] = cid[:3] + str(int(cid[3]) ^ 1) + cid[4:]
    elif rule == "WEIGHT_RANGE":
        rec["CAN_NANG_CON"] = "45000"
    elif rule == "SEX_CODE":
        rec["GIOI_TINH_CON"] = "5"
    elif rule == "ETHNICITY_CODE":
        rec["MA_DANTOC_NND"] = "77"
    elif rule == "DATE_INVALID":
        rec["NGAYSINH_NND"] = rec["NGAYSINH_NND"][:4] + "0231"
    else:
        rec["HOTEN_NND"] = ""


def generate_bulk_births(
    n: int, seed: int = 0, *, facilities: list[str] | None = None, bad_ratio: float = 0.01, chunk: int = 8192
) -> Iterator[dict]:
    """Yield `n` plain GIAYCHUNGSINH dicts across several facilities, fast (pools + chunked draws).

    Valid except ~bad_ratio rows with one cheap defect. Certificate numbers are unique
    (running number per facility and year, dates Jul 2025 - Oct 2026).
    """
    facs = [refdata.facility(c) for c in (facilities or BULK_FACILITIES)]
    cap = 99999 * len(_BULK_WINDOWS) * len(facs)
    if n > cap:
        raise ValueError(f"n={n} exceeds {cap} unique certificate numbers; add facilities")
    rng = random.Random(f"bulk:{seed}")
    P = 4096
    # Per-window pools of (NGAY_SINH_CON, NGAY_CT, MA_BN prefix); NGAY_CT stays in the same year.
    win_pools = []
    for start, end in _BULK_WINDOWS:
        span = (end - start).days
        pool = []
        for _ in range(P):
            b = datetime.combine(start, datetime.min.time()) + timedelta(minutes=rng.randrange(span * 1440))
            ct = min(b.date() + timedelta(days=rng.randint(0, 3)), end)
            pool.append((d12(b), d8(ct), f"{start.year % 100:02d}"))
        win_pools.append(pool)
    mothers = []
    for _ in range(P):
        year = rng.randint(1984, 2006)
        dob = date(year, 1, 1) + timedelta(days=rng.randrange(365))
        insured = rng.random() < 0.85
        mothers.append(
            (
                person_name(rng, False, mother=True),
                d8(dob),
                rng.choices(ETHNICITIES, ETHNICITY_W)[0],
                "704" if rng.random() < 0.9 else "VN",
                cccd(rng, _reg_province(rng, "01"), year, False),
                d8(_rand_date(rng, max(_years_before(dob, -14), date(2016, 1, 1)), date(2025, 6, 30))),
                insured,
            )
        )
    fac_pools = []
    for fac in facs:
        addrs = [_residence(rng, fac.province, date(2025, 7, 1)) for _ in range(256)]
        fac_pools.append(
            ([(a["address"], a["province"], a["ward"]) for a in addrs], [_bhxh(rng, fac.province) for _ in range(P)])
        )
    fathers = [person_name(rng, True) for _ in range(P)] + [""] * (P // 6)
    kids = [(person_name(rng, m == "1"), m) for m in rng.choices("12", k=P)]
    weights = [str(min(4300, max(1800, round(rng.gauss(3100, 400))))) for _ in range(P)]
    staff = [person_name(rng, rng.random() < 0.3) for _ in range(256)]
    births_w = rng.choices([("1", "0"), ("2", "1"), ("3", "2"), ("4", "3")], [45, 35, 15, 5], k=P)
    flags = (
        [("1", "0", "Sinh con phải phẫu thuật")] * 35
        + [("0", "0", "")] * 63
        + [("0", "1", "Sinh con dưới 32 tuần tuổi"), ("1", "1", "Sinh con phải phẫu thuật; Sinh con dưới 32 tuần tuổi")]
    )
    status = ["Khỏe mạnh"] * 93 + ["Yếu"] * 5 + ["Dị tật bẩm sinh"] * 2
    nf = len(facs)
    counters = [[0] * len(_BULK_WINDOWS) for _ in facs]
    fac_win = [0] * nf
    num5 = [f"{x:05d}" for x in range(100000)]
    num_s = [str(x) for x in range(100000)]
    books = [f"{(x - 1) // 500 + 1:02d}/" for x in range(100000)]
    suffix = [[f".GCS.{f.code}.{w[2]}" for w in (p[0] for p in win_pools)] for f in facs]
    const = [(f.code, f.name, f.head_bhxh, f.head) for f in facs]
    choices, rand = rng.choices, rng.random
    rng_p = range(P)
    i = 0
    while i < n:
        k = min(chunk, n - i)
        m_s, k_s, fa_s = choices(mothers, k=k), choices(kids, k=k), choices(fathers, k=k)
        w_s, nd_s, ng_s = choices(weights, k=k), choices(staff, k=k), choices(staff, k=k)
        bw_s, fl_s, ts_s = choices(births_w, k=k), choices(flags, k=k), choices(status, k=k)
        r1, r2, r3, r4 = (choices(rng_p, k=k) for _ in range(4))
        for j in range(k):
            fi = (i + j) % nf
            wi = fac_win[fi]
            num = counters[fi][wi] + 1
            if num > 99999:
                wi = fac_win[fi] = wi + 1
                num = 1
            counters[fi][wi] = num
            code, fname, head_bhxh, head = const[fi]
            born, ct, yy = win_pools[wi][r1[j]]
            name, dob, eth, nat, cid, idd, insured = m_s[j]
            addr, prov, ward = fac_pools[fi][0][r2[j] & 255]
            if insured:
                bhxh = fac_pools[fi][1][r3[j]]
                card = "GD4" + prov + bhxh
            else:
                bhxh = card = "0000000000"
            kid, sex = k_s[j]
            lan, _prev = bw_s[j]
            cs, pre, note = fl_s[j]
            rec = {
                "MA_GCS": num5[num] + suffix[fi][wi],
                "MA_CSKCB": code,
                "SO": num_s[num],
                "QUYEN_SO": books[num] + "20" + yy,
                "NGAY_CT": ct,
                "MA_BN": yy + num5[r4[j]],
                "MA_BHXH_NND": bhxh,
                "MA_THE_NND": card,
                "HOTEN_NND": name,
                "NGAYSINH_NND": dob,
                "MA_DANTOC_NND": eth,
                "MA_QUOCTICH_NND": nat,
                "LOAI_GIAYTO_NND": "1",
                "SO_CCCD_NND": cid,
                "NGAYCAP_CCCD_NND": idd,
                "NOICAP_CCCD_NND": ID_ISSUER,
                "NOI_CU_TRU_NND": addr,
                "MATINH_CU_TRU": prov,
                "MAHUYEN_CU_TRU": "",
                "MAXA_CU_TRU": ward,
                "HO_TEN_CHA": fa_s[j],
                "MA_THE_TAM": "",
                "TEN_CON": kid,
                "GIOI_TINH_CON": sex,
                "SO_CON": "1",
                "LAN_SINH": lan,
                "SO_CON_SONG": lan,
                "CAN_NANG_CON": "2000" if pre == "1" else w_s[j],
                "NGAY_SINH_CON": born,
                "NOI_SINH_CON": fname,
                "TINH_TRANG_CON": ts_s[j],
                "SINHCON_PHAUTHUAT": cs,
                "SINHCON_DUOI32TUAN": pre,
                "GHI_CHU": note,
                "NGUOI_DO_DE": nd_s[j],
                "NGUOI_GHI_PHIEU": ng_s[j],
                "MA_TTDV": head_bhxh,
                "THU_TRUONG_DVI": head,
            }
            if bad_ratio and rand() < bad_ratio:
                _bulk_spoil(rec, _BULK_BAD[(i + j) % len(_BULK_BAD)])
            yield rec
        i += k
