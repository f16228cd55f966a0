"""Normalisation of raw values: text, codes, IDs, dates as sources really send them."""

import datetime as dt
import unicodedata

import pytest

from certpipe.core.normalize import (
    Invalid,
    norm_code,
    norm_date,
    norm_datetime,
    norm_id,
    norm_int,
    norm_text,
    normalise,
)
from certpipe.core.schema import kind_spec


def test_text_is_nfc_trimmed_and_collapsed():
    nfd = unicodedata.normalize("NFD", "  Nguyễn\u00a0 Thị\tHạnh  ")
    assert norm_text(nfd) == "Nguyễn Thị Hạnh"
    assert unicodedata.is_normalized("NFC", norm_text(nfd))


@pytest.mark.parametrize(
    ("raw", "pad", "want"),
    [
        ("01", 2, "01"),
        (1, 2, "01"),
        (1.0, 2, "01"),
        ("4", 5, "00004"),
        (" 01c51 ", 5, "01C51"),
        ("00004.gcs.96025.22", None, "00004.GCS.96025.22"),
    ],
)
def test_codes_keep_and_restore_leading_zeros(raw, pad, want):
    assert norm_code(raw, pad) == want


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        (1195012345, "001195012345"),
        (79195012345, "079195012345"),
        ("079 195 012 345", "079195012345"),
        ("c1234567", "C1234567"),
        ("00119501234", "00119501234"),
    ],
)
def test_personal_ids(raw, want):
    assert norm_id(raw) == want


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("20251110", "20251110"),
        (20251110, "20251110"),
        ("10/11/2025", "20251110"),
        ("1/2/2025", "20250201"),
        ("2025-11-10", "20251110"),
        (dt.date(2025, 11, 10), "20251110"),
        (dt.datetime(2025, 11, 10, 8, 0), "20251110"),
        (45971, "20251110"),
        ("202511100830", "20251110"),
        ("19480101", "19480101"),
    ],
)
def test_dates(raw, want):
    assert norm_date(raw) == want


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("202511090830", "202511090830"),
        ("20251109083000", "202511090830"),
        ("20251021000015", "20251021000015"),
        ("2025-11-09T08:30:00+07:00", "202511090830"),
        ("09/11/2025 08:30", "202511090830"),
        (dt.datetime(2025, 11, 9, 8, 30), "202511090830"),
        (45970.3541666667, "202511090830"),
    ],
)
def test_datetimes(raw, want):
    assert norm_datetime(raw) == want


@pytest.mark.parametrize(
    ("fn", "raw", "code"),
    [
        (norm_date, "20250231", "DATE_INVALID"),
        (norm_date, "31/02/2025", "DATE_INVALID"),
        (norm_date, "2025111", "DATE_INVALID"),
        (norm_date, "hôm qua", "DATE_INVALID"),
        (norm_datetime, "20251109", "DATETIME_INVALID"),
        (norm_datetime, "202511092561", "DATETIME_INVALID"),
        (norm_int, "3,6", "INT_FORMAT"),
        (norm_int, 3.6, "INT_FORMAT"),
        (norm_int, True, "INT_FORMAT"),
    ],
)
def test_unreadable_values_raise_a_rule_code_without_the_value(fn, raw, code):
    with pytest.raises(Invalid) as e:
        fn(raw)
    assert e.value.code == code and str(raw) not in str(e.value)


def test_record_aliases_case_and_blanks():
    rows, reasons = normalise(
        [{"ho_ten_nnd": "Lê Thị Mai", "HO_TEN_CON": " ", "MA_QUOCTICH": "vn", "X": 1}, "not a record"], kind_spec("GCS")
    )
    assert rows[0] == {"HOTEN_NND": "Lê Thị Mai", "MA_QUOCTICH_NND": "704"}
    assert reasons[0] == [] and reasons[1][0]["code"] == "NOT_A_RECORD"


def test_too_long_values_are_refused_by_field():
    _rows, reasons = normalise([{"MA_DANTOC_NND": "0001"}], kind_spec("GCS"))
    assert reasons[0][0]["field"] == "MA_DANTOC_NND" and reasons[0][0]["code"] == "TOO_LONG"


def test_spaces_only_values_are_missing_not_invalid():
    raw = {"NGAY_CT": "   ", "CAN_NANG_CON": " ", "HOTEN_NND": "\u00a0 ", "MAXA_CU_TRU": float("nan")}
    rows, reasons = normalise([raw], kind_spec("GCS"))
    assert rows == [{}] and reasons == [[]]
