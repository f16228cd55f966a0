"""Tests for certpipe.core.reference against the committed reference CSVs."""

import datetime

import pytest

from certpipe.core import reference as ref


def test_admin_era_boundary():
    assert ref.admin_era(datetime.date(2025, 6, 30)) == "legacy"
    assert ref.admin_era(ref.REFORM_DATE) == "2025"
    assert ref.admin_era(datetime.datetime(2025, 7, 1, 0, 5)) == "2025"


def test_province_counts():
    assert len(ref.provinces("legacy")) == 63
    assert len(ref.provinces("2025")) == 34
    assert ref.provinces("2025") <= ref.provinces("legacy")


def test_province_codes_by_era():
    assert "79" in ref.provinces("legacy") and "79" in ref.provinces("2025")
    assert "74" in ref.provinces("legacy")  # Bình Dương, merged into HCM
    assert "74" not in ref.provinces("2025")
    assert ref.province_name("74", "legacy") == "Tỉnh Bình Dương"
    assert ref.province_name("74", "2025") is None
    assert ref.province_name("01", "2025") == "Thành phố Hà Nội"
    assert ref.province_name("96", "2025") == "Tỉnh Cà Mau"


def test_unknown_era_rejected():
    with pytest.raises(ValueError, match="2024"):
        ref.provinces("2024")


def test_communes():
    assert len(ref.communes("2025")) == 3321
    assert len(ref.communes("legacy")) == 10035
    assert ("79", "26740") in ref.commune_pairs("2025")
    assert ref.commune_name("26740", "2025") == "Phường Sài Gòn"
    assert ("01", "00001") in ref.commune_pairs("legacy")
    assert ref.commune_name("00001", "legacy") == "Phường Phúc Xá"
    assert ("01", "00001") not in ref.commune_pairs("2025")
    assert ref.commune_name("99999", "2025") is None
    # NSO list, Công văn 1027/CTK-CSCL (25/06/2025)
    assert ref.commune_name("00082", "2025") == "Phường Cửa Nam"
    assert ref.commune_name("00292", "2025") == "Phường Bạch Mai"


def test_districts_legacy():
    districts = ref.districts_legacy()
    assert len(districts) == 696
    assert ("01", "001") in districts  # Quận Ba Đình
    assert ("31", "318") in districts  # Bạch Long Vĩ, no communes
    assert ref.district_of_commune_legacy()["00001"] == "001"
    assert ref.district_of_commune_legacy()["26740"] == "760"  # Quận 1, HCM


def test_ethnicities():
    codes = ref.ethnicity_codes()
    assert len(codes) == 55
    assert {"01", "54", "55"} <= codes
    assert "00" not in codes and "56" not in codes


def test_nationality_codes():
    codes = ref.nationality_codes()
    assert {"704", "VN", "000", "840", "US"} <= codes
    assert "VNM" not in codes


@pytest.mark.parametrize(
    "raw", ["704", "000", "VN", "vn", "VNM", "vnm", " VN "]
)  # fmt: skip
def test_normalise_nationality_vietnam(raw):
    assert ref.normalise_nationality(raw) == "704"


def test_normalise_nationality_other():
    assert ref.normalise_nationality("US") == "840"
    assert ref.normalise_nationality("fra") == "250"
    assert ref.normalise_nationality("004") == "004"
    assert ref.normalise_nationality("XX") is None
    assert ref.normalise_nationality("") is None
    assert ref.normalise_nationality(None) is None


@pytest.mark.parametrize(
    "code",
    ["R54", "I21.0", "I210", "A000", "A00.0", "r54", "U07.1", "A17.0†", "G01*",
     " J18.9 ", "A18.1+"],
)  # fmt: skip
def test_icd10_valid(code):
    assert ref.icd10_valid(code)


@pytest.mark.parametrize("code", ["J12.82", "XXX", "", "A15-A19", "IX", "R54.", "†"])
def test_icd10_invalid(code):
    assert not ref.icd10_valid(code)


def test_split_icd10():
    assert ref.split_icd10("A01; B02,C03 ;;") == ["A01", "B02", "C03"]
    assert ref.split_icd10("") == []
    assert ref.split_icd10(None) == []


def test_cccd_province_codes():
    codes = ref.cccd_province_codes()
    assert len(codes) == 63
    assert {"001", "031", "048", "079", "096"} <= codes
    assert "074" in codes  # legacy Bình Dương still valid on IDs
    assert "000" not in codes


def test_schemas_dir_override(monkeypatch, tmp_path):
    monkeypatch.setenv("CERTPIPE_SCHEMAS_DIR", str(tmp_path))
    assert ref.reference_dir() == tmp_path / "reference"
    monkeypatch.delenv("CERTPIPE_SCHEMAS_DIR")
    assert (ref.reference_dir() / "admin_units_2025.csv").is_file()
