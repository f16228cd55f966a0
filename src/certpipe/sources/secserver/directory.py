"""Security-server directory (national portal guide, section V.1).

MACOQUAN (agency) → DSTCODE (the security server that serves its files), refreshed daily into
`wh.secserver_directory` with every appearance, change and disappearance in `wh.secserver_directory_history`.
An answer that is empty, not JSON, not the documented shape, or that drops more than `max_shrink` of the current
mappings is rejected: the directory stays as it was and the refresh fails with the reason.
V.2 papers look-up: `papers`; V.3 download links: `links`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from certpipe.core.schema import message
from certpipe.errors import CertpipeError, SourceError, SourceUnavailable, Terminal
from certpipe.warehouse import scalar

REQUIRED_KEYS = ("MACOQUAN", "TENCOQUAN", "DSTCODE")
DSTCODE_RE = re.compile(r"[A-Z]{2}:[A-Z]+:[^:\s]+:[^:\s]+")  # X-Road: instance:class:member:subsystem
DEFAULT_MAX_SHRINK = 0.2
_LOCK = "certpipe.secserver_directory"


# ---------------------------------------------------------------- errors


class DirectoryRejected(CertpipeError):
    """The directory was not refreshed; the current one stays. `code` is a rules.json code (SS_DIR_*).
    This class is the transient case (the security server could not be reached or answered garbage): retried."""

    def __init__(self, code: str, detail: str = ""):
        self.code, self.detail = code, detail
        super().__init__(f"{code}: {message(code)}" + (f" ({detail})" if detail else ""))


class DirectoryRefused(DirectoryRejected, Terminal):
    """An answer that is wrong, not unavailable (empty, malformed, ambiguous, truncated) or a refused request:
    retrying returns the same answer, so the task fails at once (no Airflow retry) with the reason."""


TRANSIENT = {"SS_DIR_UNAVAILABLE", "SS_DIR_NOT_JSON"}


def rejected(code: str, detail: str = "") -> DirectoryRejected:
    return (DirectoryRejected if code in TRANSIENT else DirectoryRefused)(code, detail)


# ---------------------------------------------------------------- directory (V.1)


@dataclass(frozen=True)
class Entry:
    macoquan: str
    tencoquan: str
    dstcode: str


def parse_directory(body: Any) -> dict[str, Entry]:
    """The documented answer {"result": [{MACOQUAN, TENCOQUAN, DSTCODE}]} → entries by MACOQUAN.

    Raises DirectoryRejected (SS_DIR_SHAPE, SS_DIR_EMPTY, SS_DIR_DSTCODE, SS_DIR_AMBIGUOUS) otherwise."""
    if not isinstance(body, dict) or "result" not in body:
        keys = ", ".join(sorted(map(str, body)))[:200] if isinstance(body, dict) else type(body).__name__
        raise rejected("SS_DIR_SHAPE", f"thiếu khóa result; nhận được: {keys}")
    result = body["result"]
    if result is None or result == [] or result == {}:
        raise rejected("SS_DIR_EMPTY")
    if not isinstance(result, list):
        raise rejected("SS_DIR_SHAPE", "result không phải danh sách")
    out: dict[str, Entry] = {}
    for i, item in enumerate(result):
        if not isinstance(item, dict):
            raise rejected("SS_DIR_SHAPE", f"mục {i} không phải đối tượng")
        missing = [k for k in REQUIRED_KEYS if not isinstance(item.get(k), str) or not item[k].strip()]
        if missing:
            raise rejected("SS_DIR_SHAPE", f"mục {i} thiếu {', '.join(missing)}")
        entry = Entry(
            item["MACOQUAN"].strip(),
            unicodedata.normalize("NFC", " ".join(item["TENCOQUAN"].split())),
            item["DSTCODE"].strip(),
        )
        if not DSTCODE_RE.fullmatch(entry.dstcode):
            raise rejected("SS_DIR_DSTCODE", f"mục {i}, MACOQUAN {entry.macoquan}")
        seen = out.get(entry.macoquan)
        if seen is not None and seen.dstcode != entry.dstcode:
            raise rejected("SS_DIR_AMBIGUOUS", f"MACOQUAN {entry.macoquan}")
        out[entry.macoquan] = entry
    return out


def apply_directory(
    conn: psycopg.Connection,
    entries: Mapping[str, Entry],
    *,
    max_shrink: float = DEFAULT_MAX_SHRINK,
    run_id: str | None = None,
    answer: Any = None,
) -> dict:
    """Make `entries` the current directory, recording what appeared, changed, was renamed or disappeared.

    Rejects (DirectoryRejected SS_DIR_TRUNCATED, nothing written) an answer without more than `max_shrink` of
    the current mappings: a truncated answer must not wipe the directory. Returns the refresh's counts.
    """
    if not entries:
        raise rejected("SS_DIR_EMPTY")
    if not 0 <= max_shrink <= 1:
        raise ValueError("max_shrink must be between 0 and 1")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_LOCK,))
        current = {
            r[0]: Entry(*r)
            for r in conn.execute("SELECT macoquan, tencoquan, dstcode FROM wh.secserver_directory FOR UPDATE")
        }
        gone = sorted(current.keys() - entries.keys())
        if current and len(gone) / len(current) > max_shrink:
            raise rejected(
                "SS_DIR_TRUNCATED",
                (
                    f"thiếu {len(gone)}/{len(current)} cơ quan đang có = {len(gone) / len(current):.0%}, "
                    f"ngưỡng {max_shrink:.0%}; danh mục mới có {len(entries)} cơ quan"
                ),
            )
        new = sorted(entries.keys() - current.keys())
        changed = sorted(k for k in entries.keys() & current.keys() if entries[k].dstcode != current[k].dstcode)
        renamed = sorted(
            k
            for k in entries.keys() & current.keys()
            if entries[k].dstcode == current[k].dstcode and entries[k].tencoquan != current[k].tencoquan
        )
        counts = {
            "received": len(entries),
            "previous": len(current),
            "appeared": len(new),
            "changed": len(changed),
            "renamed": len(renamed),
            "disappeared": len(gone),
            "unchanged": len(entries) - len(new) - len(changed) - len(renamed),
        }
        refresh_id = scalar(
            conn,
            "INSERT INTO wh.secserver_directory_refresh (run_id, status, received, previous, appeared, changed, "
            "renamed, disappeared, unchanged, answer) VALUES (%s, 'applied', %s, %s, %s, %s, %s, %s, %s, %s) "
            "RETURNING refresh_id",
            (
                run_id,
                counts["received"],
                counts["previous"],
                counts["appeared"],
                counts["changed"],
                counts["renamed"],
                counts["disappeared"],
                counts["unchanged"],
                Jsonb(answer) if answer is not None else None,
            ),
        )
        cur = conn.cursor()
        history = (
            "INSERT INTO wh.secserver_directory_history (refresh_id, macoquan, change, dstcode, tencoquan, "
            "old_dstcode, old_tencoquan) VALUES (%s, %s, %s, %s, %s, %s, %s)"
        )
        if new:
            cur.executemany(
                "INSERT INTO wh.secserver_directory (macoquan, tencoquan, dstcode, last_refresh_id) "
                "VALUES (%s, %s, %s, %s)",
                [(k, entries[k].tencoquan, entries[k].dstcode, refresh_id) for k in new],
            )
            cur.executemany(
                history,
                [(refresh_id, k, "appeared", entries[k].dstcode, entries[k].tencoquan, None, None) for k in new],
            )
        if changed:
            cur.executemany(
                "UPDATE wh.secserver_directory SET dstcode = %s, tencoquan = %s, valid_from = now() "
                "WHERE macoquan = %s",
                [(entries[k].dstcode, entries[k].tencoquan, k) for k in changed],
            )
        if renamed:
            cur.executemany(
                "UPDATE wh.secserver_directory SET tencoquan = %s WHERE macoquan = %s",
                [(entries[k].tencoquan, k) for k in renamed],
            )
        if changed or renamed:
            cur.executemany(
                history,
                [
                    (
                        refresh_id,
                        k,
                        "changed" if k in changed else "renamed",
                        entries[k].dstcode,
                        entries[k].tencoquan,
                        current[k].dstcode,
                        current[k].tencoquan,
                    )
                    for k in changed + renamed
                ],
            )
        if gone:
            cur.execute("DELETE FROM wh.secserver_directory WHERE macoquan = ANY(%s)", (gone,))
            cur.executemany(
                history,
                [(refresh_id, k, "disappeared", None, None, current[k].dstcode, current[k].tencoquan) for k in gone],
            )
        cur.execute("UPDATE wh.secserver_directory SET last_seen_at = now(), last_refresh_id = %s", (refresh_id,))
    return {"refresh_id": refresh_id, **counts}


def record_failure(
    conn: psycopg.Connection, exc: DirectoryRejected, *, run_id: str | None = None, answer: Any = None
) -> int:
    status = "failed" if exc.code == "SS_DIR_UNAVAILABLE" else "rejected"
    with conn.transaction():
        return scalar(
            conn,
            "INSERT INTO wh.secserver_directory_refresh (run_id, status, reason_code, reason, answer) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING refresh_id",
            (run_id, status, exc.code, str(exc), Jsonb(answer) if answer is not None else None),
        )


def refresh_directory(
    conn_id: str, dsn: str, *, max_shrink: float = DEFAULT_MAX_SHRINK, run_id: str | None = None
) -> dict:
    """Fetch the directory from our security server and apply it; a rejected answer is recorded, then raised."""
    from certpipe import warehouse
    from certpipe.sources.secserver.hook import SecServerHook

    answer = None
    with warehouse.connect(dsn) as conn:
        conn.autocommit = True
        try:
            try:
                answer = SecServerHook(conn_id).directory()
            except SourceUnavailable as e:
                code = "SS_DIR_NOT_JSON" if isinstance(e.__cause__, ValueError) else "SS_DIR_UNAVAILABLE"
                raise rejected(code, str(e)) from e
            except SourceError as e:  # refused (4xx) or misconfigured: retrying will not help
                raise DirectoryRefused("SS_DIR_UNAVAILABLE", str(e)) from e
            return apply_directory(conn, parse_directory(answer), max_shrink=max_shrink, run_id=run_id, answer=answer)
        except DirectoryRejected as e:
            record_failure(conn, e, run_id=run_id, answer=answer)
            raise
