"""Certificate keys and content hashes: how a record is identified and compared across sources and re-sends."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import msgspec

# Where the identifying columns of each kind come from.
KEYS: dict[str, dict[str, Any]] = {
    "GCS": {
        "key": "MA_GCS",
        "facility": "MA_CSKCB",
        "issued": "NGAY_CT",
        "person": "SO_CCCD_NND",
        "event": "NGAY_SINH_CON",
        "fallback": ("MA_CSKCB", "QUYEN_SO", "SO", "NGAY_CT"),
        "prefix": "XML9",
    },
    "GBT": {
        "key": "MA_GBT",
        "facility": "MACSKCB",
        "issued": "NGAY_CAPGIAYBT",
        "person": "SO_GIAYTO",
        "event": "NGAY_TV",
        "fallback": ("MACSKCB", "QUYEN_SO", "SO_BAOTU", "NGAY_CAPGIAYBT"),
        "prefix": "GBTSO",
    },
}


def cert_key(kind: str, rec: Mapping) -> str | None:
    k = KEYS[kind]
    if rec.get(k["key"]):
        return rec[k["key"]]
    parts = [rec.get(f) or "" for f in k["fallback"]]
    if parts[0] and parts[2] and parts[3]:
        return ":".join([k["prefix"], *parts])
    return None


HASH_BYTES = 16


def content_hash(record_json: bytes) -> bytes:
    return hashlib.blake2b(record_json, digest_size=HASH_BYTES).digest()


def iso_date(v: str | None) -> str | None:
    return f"{v[:4]}-{v[4:6]}-{v[6:8]}" if v else None


def iso_ts(v: str | None) -> str | None:
    if not v:
        return None
    return f"{v[:4]}-{v[4:6]}-{v[6:8]} {v[8:10] or '00'}:{v[10:12] or '00'}:{v[12:14] or '00'}"


_ENCODE = msgspec.json.Encoder(order="sorted", enc_hook=str).encode  # compact, sorted keys, UTF-8


def canonical_json(doc) -> bytes:
    return _ENCODE(doc)


def raw_hash(raw) -> bytes:
    return hashlib.blake2b(canonical_json(raw), digest_size=HASH_BYTES).digest()
