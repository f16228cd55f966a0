"""The ingestion core: the only path into the warehouse for every certificate source.

normalise → validate (GX suite + Vietnam's rules) → upsert by the warehouse rules → outcomes for feedback.

Warehouse rules (shared/DESIGN.md):
1. invalid → refused with reasons;  2. valid, unknown → stored;  3. valid, known, unused, changed → updated
(earlier version kept in wh.certificate_version);  4. valid, known, used, changed → refused ALREADY_USED;
5. valid, identical to what is stored → unchanged (also when the certificate is used: nothing is asked).
Within one batch the last record of a certificate wins; an earlier identical copy counts as unchanged,
an earlier different one is refused DUPLICATE_IN_BATCH. A record byte-for-byte identical to what the same
source sent before for a stored certificate is unchanged at once (rule 5) without being normalised again.
When a record differs from the current version and that version came from another source (e.g. HIS vs BHXH),
the rules above still decide (latest valid wins unless used) and wh.source_disagreement records which fields
differ, both content hashes and pointers to both versions.

The upsert is set-based: rows are COPYed into a staging table, then one statement applies the rules and
writes certificates, history, provenance and per-record outcomes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import msgspec
import psycopg
from psycopg.types.json import Jsonb

from certpipe.normalize import normalise
from certpipe.schema import kind_spec, reason
from certpipe.validate import validate

log = logging.getLogger(__name__)

# Where the identifying columns of each kind come from.
KEYS = {
    "GCS": {"key": "MA_GCS", "facility": "MA_CSKCB", "issued": "NGAY_CT", "person": "SO_CCCD_NND",
            "event": "NGAY_SINH_CON", "fallback": ("MA_CSKCB", "QUYEN_SO", "SO", "NGAY_CT"), "prefix": "XML9"},
    "GBT": {"key": "MA_GBT", "facility": "MACSKCB", "issued": "NGAY_CAPGIAYBT", "person": "SO_GIAYTO",
            "event": "NGAY_TV", "fallback": ("MACSKCB", "QUYEN_SO", "SO_BAOTU", "NGAY_CAPGIAYBT"), "prefix": "GBTSO"},
}
_LOCK_IDS = {"GCS": 7_261_001, "GBT": 7_261_002}


@dataclass
class BatchResult:
    batch_id: int
    kind: str
    received: int = 0
    stored: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: int = 0
    refusals_by_rule: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        """Counts only: safe for logs and XCom."""
        return asdict(self)


def cert_key(kind: str, rec: Mapping) -> str | None:
    k = KEYS[kind]
    if rec.get(k["key"]):
        return rec[k["key"]]
    parts = [rec.get(f) or "" for f in k["fallback"]]
    if parts[0] and parts[2] and parts[3]:
        return ":".join([k["prefix"], *parts])
    return None


def content_hash(record_json: bytes) -> bytes:
    return hashlib.blake2b(record_json, digest_size=16).digest()


def _iso_date(v: str | None) -> str | None:
    return f"{v[:4]}-{v[4:6]}-{v[6:8]}" if v else None


def _iso_ts(v: str | None) -> str | None:
    if not v:
        return None
    return f"{v[:4]}-{v[4:6]}-{v[6:8]} {v[8:10] or '00'}:{v[10:12] or '00'}:{v[12:14] or '00'}"


_ENCODE = msgspec.json.Encoder(order="sorted", enc_hook=str).encode  # compact, sorted keys, UTF-8


def canonical_json(doc) -> bytes:
    return _ENCODE(doc)


def raw_hash(raw) -> bytes:
    return hashlib.blake2b(canonical_json(raw), digest_size=16).digest()


STAGE_DDL = """
CREATE TEMP TABLE _stage (
    row_no int PRIMARY KEY, source_record_id text, cert_key text NOT NULL, facility_code text,
    issued_on date, person_id text, event_at timestamp, record jsonb NOT NULL, content_hash bytea NOT NULL,
    raw_hash bytea
) ON COMMIT DROP
"""

RESENT_SQL = """
SELECT DISTINCT ON (raw_hash) raw_hash, s.cert_id, c.cert_key, c.content_hash
FROM wh.certificate_source s JOIN wh.certificate c USING (cert_id)
WHERE s.source = %s AND s.source_ref = %s AND s.raw_hash = ANY(%s) AND c.kind = %s
"""

TOUCH_SQL = """
UPDATE wh.certificate_source s SET last_batch_id = %(batch)s, last_seen_at = now()
FROM unnest(%(ids)s::bigint[]) AS t(cert_id)
WHERE s.cert_id = t.cert_id AND s.source = %(source)s AND s.source_ref = %(source_ref)s
"""

APPLY_SQL = """
WITH cur AS (
    SELECT s.row_no, c.cert_id, c.status, c.content_hash = s.content_hash AS same
    FROM _stage s LEFT JOIN wh.certificate c ON c.kind = %(kind)s AND c.cert_key = s.cert_key
),
hist AS (
    INSERT INTO wh.certificate_version (cert_id, version, record, content_hash, batch_id, source, valid_from,
                                        superseded_by_batch)
    SELECT c.cert_id, c.version, c.record, c.content_hash, c.last_batch_id, c.last_source, c.updated_at, %(batch)s
    FROM cur JOIN wh.certificate c ON c.cert_id = cur.cert_id
    WHERE cur.status = 'received' AND NOT cur.same
),
dis AS (  -- another source's version differs: record which fields (never the values), both hashes, pointers
    INSERT INTO wh.source_disagreement (cert_id, fields, source_a, version_a, hash_a, source_b, source_ref_b,
                                        hash_b, batch_id, row_no, outcome)
    SELECT c.cert_id,
           ARRAY(SELECT k FROM (SELECT jsonb_object_keys(c.record) UNION SELECT jsonb_object_keys(s.record)) f(k)
                 WHERE c.record -> k IS DISTINCT FROM s.record -> k ORDER BY k),
           c.last_source, c.version, c.content_hash, %(source)s, %(source_ref)s, s.content_hash, %(batch)s,
           s.row_no, CASE WHEN cur.status = 'used' THEN 'refused' ELSE 'updated' END
    FROM cur JOIN wh.certificate c ON c.cert_id = cur.cert_id JOIN _stage s ON s.row_no = cur.row_no
    WHERE NOT cur.same AND c.last_source <> %(source)s
),
upd AS (
    UPDATE wh.certificate c
    SET record = s.record, content_hash = s.content_hash, facility_code = s.facility_code,
        issued_on = s.issued_on, person_id = s.person_id, event_at = s.event_at, version = c.version + 1,
        last_batch_id = %(batch)s, last_source = %(source)s, updated_at = now()
    FROM _stage s JOIN cur ON cur.row_no = s.row_no
    WHERE c.cert_id = cur.cert_id AND cur.status = 'received' AND NOT cur.same
    RETURNING c.cert_id
),
ins AS (
    INSERT INTO wh.certificate (kind, cert_key, facility_code, issued_on, person_id, event_at, record,
                                content_hash, first_batch_id, last_batch_id, last_source)
    SELECT %(kind)s, s.cert_key, s.facility_code, s.issued_on, s.person_id, s.event_at, s.record, s.content_hash,
           %(batch)s, %(batch)s, %(source)s
    FROM _stage s JOIN cur ON cur.row_no = s.row_no
    WHERE cur.cert_id IS NULL
    RETURNING cert_id, cert_key
),
res AS (
    SELECT s.row_no, s.source_record_id, s.cert_key, s.content_hash, s.raw_hash,
           COALESCE(cur.cert_id, ins.cert_id) AS cert_id,
           CASE WHEN cur.cert_id IS NULL THEN 'stored'
                WHEN cur.same THEN 'unchanged'
                WHEN cur.status = 'used' THEN 'refused'
                ELSE 'updated' END AS outcome
    FROM _stage s JOIN cur ON cur.row_no = s.row_no LEFT JOIN ins ON ins.cert_key = s.cert_key
),
prov AS (
    INSERT INTO wh.certificate_source (cert_id, source, source_ref, source_record_id, content_hash, raw_hash,
                                       first_batch_id, last_batch_id)
    SELECT cert_id, %(source)s, %(source_ref)s, source_record_id, content_hash, raw_hash, %(batch)s, %(batch)s
    FROM res WHERE outcome <> 'refused'
    ON CONFLICT (cert_id, source, source_ref) DO UPDATE
    SET source_record_id = EXCLUDED.source_record_id, content_hash = EXCLUDED.content_hash,
        raw_hash = EXCLUDED.raw_hash, last_batch_id = EXCLUDED.last_batch_id, last_seen_at = now()
),
out AS (
    INSERT INTO wh.batch_record (batch_id, row_no, source_record_id, cert_key, cert_id, outcome, reasons)
    SELECT %(batch)s, row_no, source_record_id, cert_key, cert_id, outcome,
           CASE WHEN outcome = 'refused' THEN %(used)s::jsonb END
    FROM res
    RETURNING row_no, cert_key, cert_id, outcome
)
SELECT row_no, cert_key, cert_id, outcome FROM out
"""


def ingest(conn: psycopg.Connection, *, batch_id: int, kind: str, source: str, source_ref: str,
           records: Sequence[Mapping], record_ids: Sequence[str | None] | None = None,
           refusals: Mapping[int, list[dict]] | None = None) -> BatchResult:
    """Normalise, validate and upsert one batch in one transaction. Returns counts (no personal data).

    `refusals`: reasons an adapter found itself (e.g. a file row of another facility), by record index;
    such a record is refused with them, in addition to what validation finds."""
    spec = kind_spec(kind)
    k = KEYS[kind]
    n = len(records)
    ids = list(record_ids) if record_ids is not None else [None] * n
    raws = [raw_hash(r) for r in records]
    resent = {h: (cert_id, key, chash) for h, cert_id, key, chash in conn.execute(
        RESENT_SQL, (source, source_ref, list(set(raws)), kind))}
    todo = [i for i in range(n) if raws[i] not in resent]

    rows: list[dict | None] = [None] * n
    reasons: list[list[dict]] = [[] for _ in range(n)]
    sub_rows, prior = normalise([records[i] for i in todo], spec)
    for i, row, why in zip(todo, sub_rows, validate(sub_rows, spec, prior), strict=True):
        rows[i], reasons[i] = row, why
    for i, why in (refusals or {}).items():
        reasons[i] = [*reasons[i], *why]

    # Valid rows: canonical JSON, hash, key. In-batch duplicates: the last record of a key wins.
    staged: dict[str, tuple] = {}
    earlier: list[tuple[int, str, bytes]] = []
    for i in todo:
        row = rows[i]
        if reasons[i]:
            continue
        key = cert_key(kind, row)
        doc = canonical_json(row)
        h = content_hash(doc)
        prev = staged.get(key)
        if prev is not None:
            earlier.append((prev[0], key, prev[8]))
        staged[key] = (i + 1, ids[i], key, row.get(k["facility"]), _iso_date(row.get(k["issued"])),
                       row.get(k["person"]), _iso_ts(row.get(k["event"])), doc.decode(), h, raws[i])
    # A re-sent record (identical to what is stored) that comes after a different copy of the same
    # certificate in this batch wins: the earlier copy must not overwrite it.
    resent_last = {}
    for i in range(n):
        if raws[i] in resent:
            resent_last[resent[raws[i]][1]] = i
    for key in [k for k, t in staged.items() if resent_last.get(k, -1) > t[0] - 1]:
        row_no = staged.pop(key)[0]
        reasons[row_no - 1] = [reason(spec.key, "DUPLICATE_IN_BATCH")]
    for row_no, key, h in earlier:
        if key not in staged or h != staged[key][8]:
            reasons[row_no - 1] = [reason(spec.key, "DUPLICATE_IN_BATCH")]
    # ...and a re-sent record followed by a different copy of the same certificate loses to it.
    for i in range(n):
        if raws[i] in resent:
            _, key, chash = resent[raws[i]]
            if key in staged and staged[key][0] - 1 > i and staged[key][8] != chash:
                reasons[i] = [reason(spec.key, "DUPLICATE_IN_BATCH")]

    result = BatchResult(batch_id=batch_id, kind=kind, received=n)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_IDS[kind],))
        conn.execute(STAGE_DDL)
        with conn.cursor().copy("COPY _stage FROM STDIN") as copy:
            for t in staged.values():
                copy.write_row(t)
        conn.execute("ANALYZE _stage")
        # Lock the known certificates first, so a registrar marking one used cannot slip in between.
        conn.execute("SELECT c.cert_id FROM wh.certificate c JOIN _stage s ON c.cert_key = s.cert_key "
                     "WHERE c.kind = %s ORDER BY c.cert_id FOR UPDATE OF c", (kind,))
        applied = conn.execute(APPLY_SQL, {"kind": kind, "batch": batch_id, "source": source,
                                           "source_ref": source_ref,
                                           "used": Jsonb([reason(spec.key, "ALREADY_USED")])}).fetchall()
        winners = {key: cert_id for _, key, cert_id, _ in applied}
        counts = Counter(outcome for *_, outcome in applied)
        rules = Counter("ALREADY_USED" for *_, o in applied if o == "refused")

        # Records not staged: re-sent unchanged, refused by validation, earlier copies of a batch duplicate.
        resent_rows = [i for i in range(n) if raws[i] in resent and not reasons[i]]
        resent_ids = sorted({resent[raws[i]][0] for i in resent_rows})
        if resent_ids:
            conn.execute(TOUCH_SQL, {"batch": batch_id, "ids": resent_ids, "source": source,
                                     "source_ref": source_ref})
        with conn.cursor().copy("COPY wh.batch_record (batch_id, row_no, source_record_id, cert_key, cert_id, "
                                "outcome, reasons) FROM STDIN") as copy:
            for i in resent_rows:
                cert_id, key, _ = resent[raws[i]]
                copy.write_row((batch_id, i + 1, ids[i], key, cert_id, "unchanged", None))
                counts["unchanged"] += 1
            for row_no, key, _ in earlier:
                if not reasons[row_no - 1]:
                    copy.write_row((batch_id, row_no, ids[row_no - 1], key, winners.get(key), "unchanged", None))
                    counts["unchanged"] += 1
            for i, why in enumerate(reasons):
                if why:
                    key = cert_key(kind, rows[i]) if rows[i] else resent[raws[i]][1] if raws[i] in resent else None
                    copy.write_row((batch_id, i + 1, ids[i], key, None, "refused", json.dumps(why, ensure_ascii=False)))
                    counts["refused"] += 1
                    rules.update({r["code"] for r in why})
        with conn.cursor().copy("COPY wh.refused_record (batch_id, row_no, payload) FROM STDIN") as copy:
            for i, why in enumerate(reasons):
                if why:
                    copy.write_row((batch_id, i + 1, json.dumps(dict(records[i]) if isinstance(records[i], Mapping)
                                                                else {"value": records[i]},
                                                                ensure_ascii=False, default=str)))
        result.stored, result.updated = counts["stored"], counts["updated"]
        result.unchanged, result.refused = counts["unchanged"], counts["refused"]
        result.refusals_by_rule = dict(sorted(rules.items()))
        conn.execute(
            "UPDATE wh.ingest_batch SET status = 'ingested', ingested_at = now(), received = %s, stored = %s, "
            "updated = %s, unchanged = %s, refused = %s, refusals_by_rule = %s WHERE batch_id = %s",
            (result.received, result.stored, result.updated, result.unchanged, result.refused,
             Jsonb(result.refusals_by_rule), batch_id))
    log.info("batch %s (%s %s/%s): %s", batch_id, kind, source, source_ref,
             {k: v for k, v in result.summary().items() if k not in ("batch_id", "kind")})
    return result
