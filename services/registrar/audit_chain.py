"""Verifying the audit log's hash chain (migration 0019): every row's prev_hash is the previous row's row_hash
(genesis: 64 zeros) and row_hash = sha256(prev_hash || canonical row). A changed row breaks its own hash, a
deleted or inserted row the link of the next one. Deleting the newest rows leaves the chain valid: the head
(count, last id, last hash) printed by `python -m registrar audit-verify` is meant to be recorded elsewhere and
compared on the next run (`--expect-head`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import psycopg

GENESIS = "0" * 64
# the same expression as the migration's, over the stored columns
CANONICAL = """jsonb_build_array(a.audit_id, to_char(a.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
    a.actor, a.office, a.province, a.commune, a.action, a.endpoint, a.cert_ids, a.query_kind,
    a.query_hash, host(a.client_addr), a.status_code, a.outcome)::text"""


@dataclass
class ChainReport:
    rows: int
    head_id: int | None
    head_hash: str
    broken_at: int | None = None  # audit_id of the first row whose hash or link does not hold
    reason: str | None = None  # "row changed" | "link broken (row deleted or inserted before it)"

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify(dsn: str) -> ChainReport:
    """Walk the chain in audit_id order (server-side cursor: any size) and report the first broken link."""
    prev, rows, head = GENESIS, 0, None
    with psycopg.connect(dsn) as conn, conn.cursor(name="audit_chain") as cur:
        cur.itersize = 5000
        cur.execute(f"SELECT a.audit_id, a.prev_hash, a.row_hash, {CANONICAL} FROM wh.audit_log a ORDER BY a.audit_id")
        for audit_id, prev_hash, row_hash, canonical in cur:
            if prev_hash != prev:
                return ChainReport(rows, head, prev, audit_id, "link broken (row deleted or inserted before it)")
            if hashlib.sha256((prev_hash + canonical).encode()).hexdigest() != row_hash:
                return ChainReport(rows, head, prev, audit_id, "row changed")
            prev, head, rows = row_hash, audit_id, rows + 1
    return ChainReport(rows, head, prev)
