"""Registry of hospital look-up stations (solution 5): one credential per station, revocable.

    python -m registrar station add --facility 01020 --name "Bệnh viện ..." [--id st-01020-1]
    python -m registrar station list
    python -m registrar station revoke st-01020-1

The credential is `<station id>.<secret>`, printed once by `add`; the warehouse keeps sha256(secret) only. Hospital
IT enters it once on the station's setup page (/station/setup); it then lives in the station browser's HttpOnly
cookie. A revoked station's next look-up is refused. The registry is written with the warehouse owner's DSN
(CERTPIPE_REGISTRAR_DB_URL, else the Airflow connection `warehouse_db`), never by the service.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg

from registrar.db import Conn
from registrar.web.common import sha256

_ID = re.compile(r"^[a-z0-9-]{3,40}$")
_FACILITY = re.compile(r"^[0-9A-Za-z]{1,10}$")


@dataclass(frozen=True)
class Station:
    station_id: str
    facility_code: str
    name: str


def split(credential: str) -> tuple[str, str] | None:
    sid, _, secret = (credential or "").strip().partition(".")
    if not (_ID.match(sid) and 20 <= len(secret) <= 100):
        return None
    return sid, secret


def add(dsn: str, facility: str, name: str, station_id: str | None = None) -> str:
    """Register a station; returns its credential (shown once)."""
    if not _FACILITY.match(facility) or not name.strip():
        raise ValueError("facility is a facility code (letters and digits), name is required")
    secret = secrets.token_urlsafe(24)
    with psycopg.connect(dsn) as c:
        if station_id is None:
            n = (c.execute("SELECT count(*) FROM wh.station WHERE facility_code = %s", (facility,)).fetchone() or [0])[
                0
            ]
            station_id = f"st-{facility.lower()}-{n + 1}"
        if not _ID.match(station_id):
            raise ValueError("station id: 3-40 lower-case letters, digits or '-'")
        c.execute(
            "INSERT INTO wh.station (station_id, facility_code, name, secret_hash) VALUES (%s, %s, %s, %s)",
            (station_id, facility.upper(), name.strip(), sha256(secret)),
        )
    return f"{station_id}.{secret}"


def revoke(dsn: str, station_id: str) -> bool:
    with psycopg.connect(dsn) as c:
        row = c.execute(
            "UPDATE wh.station SET revoked_at = now() WHERE station_id = %s AND revoked_at IS NULL "
            "RETURNING station_id",
            (station_id,),
        ).fetchone()
    return row is not None


def listing(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as c:
        return c.execute(
            "SELECT station_id, facility_code, name, created_at, revoked_at FROM wh.station ORDER BY station_id"
        ).fetchall()


def authenticate(conn: Conn, credential: str | None) -> Station | None:
    """The station of a valid, unrevoked credential (through wh.station_auth), else None."""
    parts = split(credential or "")
    if parts is None:
        return None
    row: Any = conn.execute("SELECT * FROM wh.station_auth(%s, %s)", (parts[0], sha256(parts[1]))).fetchone()
    return Station(row["station_id"], row["facility_code"], row["name"]) if row else None


def _dsn() -> str:
    dsn = os.environ.get("CERTPIPE_REGISTRAR_DB_URL")
    if dsn:
        return dsn
    from certpipe.warehouse import warehouse_dsn

    return warehouse_dsn()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m registrar station", description="Hospital look-up stations")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("add", help="register a station; prints its credential once")
    a.add_argument("--facility", required=True, help="the hospital's facility code (MA_CSKCB)")
    a.add_argument("--name", required=True, help="the hospital's name, shown on the station")
    a.add_argument("--id", help="station id (default st-<facility>-<n>)")
    r = sub.add_parser("revoke", help="revoke a station's credential")
    r.add_argument("station_id")
    sub.add_parser("list", help="list stations")
    args = p.parse_args(argv)
    dsn = _dsn()
    if args.cmd == "add":
        print(add(dsn, args.facility, args.name, args.id))
        return 0
    if args.cmd == "revoke":
        ok = revoke(dsn, args.station_id)
        print(f"{args.station_id}: {'revoked' if ok else 'unknown or already revoked'}")
        return 0 if ok else 1
    for sid, fac, name, created, revoked in listing(dsn):
        state = f"revoked {revoked:%Y-%m-%d %H:%M}" if revoked else "active"
        print(f"{sid}\t{fac}\t{name}\tcreated {created:%Y-%m-%d %H:%M}\t{state}")
    return 0
