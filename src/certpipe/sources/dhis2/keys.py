"""Values shared by the DHIS2 pull, matching and push: match keys, dates, ages, our deterministic event UIDs."""

from __future__ import annotations

import datetime as dt
import hashlib
import unicodedata

UID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def name_key(name: str | None) -> str | None:
    """NFC, upper case, no diacritics (Đ → D), single spaces: 'Nguyễn  văn Đạt' -> 'NGUYEN VAN DAT'."""
    if not name:
        return None
    text = unicodedata.normalize("NFC", str(name)).upper().replace("Đ", "D")
    text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return " ".join(text.split()) or None


def id_key(value: str | None) -> str | None:
    text = "".join(ch for ch in str(value or "") if ch.isalnum()).upper()
    return text or None


def to_date(value: str | None) -> dt.date | None:
    """DHIS2 'YYYY-MM-DD[THH:MM…]' or the official compact 'yyyymmdd[HHMM[SS]]'. A DHIS2 DATE value or an
    event's occurredAt date is a calendar date: the server's zone does not change it."""
    text = str(value or "").strip()
    try:
        if len(text) >= 10 and text[4] == "-":
            return dt.date.fromisoformat(text[:10])
        if len(text) >= 8 and text[:8].isdigit():
            return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None
    return None


def age_at_death(born: dt.date | None, died: dt.date | None) -> dict[str, int]:
    """Completed years, completed months and days between birth and death, each on its own (a 40-day-old:
    0 years, 1 month, 40 days), so an analytics filter on any one of them (e.g. days < 28, 1 <= years < 5)
    classifies the death right. {} when a date is missing or death precedes birth."""
    if born is None or died is None or died < born:
        return {}
    months = (died.year - born.year) * 12 + died.month - born.month - (died.day < born.day)
    return {"age_years": months // 12, "age_months": months, "age_days": (died - born).days}


def event_uid(cert_key: str) -> str:
    """Deterministic DHIS2 UID for a death registration: 11 chars, a letter first (E1048), from the cert number."""
    n = int.from_bytes(hashlib.sha256(f"certpipe:GBT:{cert_key}".encode()).digest(), "big")
    first, n = UID_ALPHABET[10 + n % 52], n // 52
    rest = []
    for _ in range(10):
        n, r = divmod(n, 62)
        rest.append(UID_ALPHABET[r])
    return first + "".join(rest)
