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

Size: over 400 lines because the staging layout, the SQL that applies it and the frames copied into it change
together; keys and hashes live in core.keys, backfills in core.stream.
"""

from __future__ import annotations

import gc
import io
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import polars as pl
import psycopg
from psycopg.types.json import Jsonb

from certpipe import warehouse
from certpipe.core.columns import normalise_columns
from certpipe.core.keys import HASH_BYTES, KEYS, iso_date, iso_ts, raw_hash
from certpipe.core.schema import kind_spec, reason
from certpipe.core.validate import validate_columns

log = logging.getLogger(__name__)

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
    # Where the time went (seconds): prepare (normalise, validate), apply (upsert), waited (for the previous apply).
    timings: dict[str, float] = field(default_factory=dict, compare=False)

    def summary(self) -> dict:
        """Counts only: safe for logs and XCom."""
        out = asdict(self)
        del out["timings"]
        return out


# Keys and hashes go to the server as one value each (keys one per line; hashes 16 bytes each, end to end):
# 50,000 array elements cost the client more than the look-up costs the server. No key holds a line break
# (normalised text never does).
KNOWN_SQL = """
WITH found AS MATERIALIZED (
    SELECT c.cert_id FROM unnest(string_to_array(%(keys)s, E'\\n')) AS k(cert_key)
    CROSS JOIN LATERAL (SELECT cert_id FROM wh.certificate c
                        WHERE c.kind = %(kind)s AND c.cert_key = k.cert_key OFFSET 0) c
)
SELECT cert_key, cert_id, status, content_hash, last_source FROM wh.certificate
WHERE cert_id = ANY(ARRAY(SELECT cert_id FROM found)) ORDER BY cert_id FOR UPDATE
"""

# Ids for new certificates: usually one contiguous run (then only its ends come back), else the list (sorted
# only then: sorting 50,000 ids that are not sent back cost a fifth of the statement).
NEW_IDS_SQL = """
WITH v AS MATERIALIZED (SELECT nextval((SELECT pg_get_serial_sequence('wh.certificate', 'cert_id'))::regclass) AS id
                        FROM generate_series(1, %s)),
m AS (SELECT min(id) AS lo, max(id) AS hi, count(*) AS n FROM v)
SELECT lo, hi, CASE WHEN hi - lo + 1 <> n THEN (SELECT array_agg(id ORDER BY id) FROM v) END FROM m
"""

RESENT_SQL = """
SELECT DISTINCT ON (raw_hash) raw_hash, s.cert_id, c.cert_key, c.content_hash
FROM wh.certificate_source s JOIN wh.certificate c USING (cert_id)
WHERE s.source = %(source)s AND s.source_ref = %(source_ref)s AND c.kind = %(kind)s
  AND s.raw_hash = ANY(ARRAY(SELECT substring(%(hashes)s::bytea FROM i * 16 + 1 FOR 16)
                             FROM generate_series(0, length(%(hashes)s::bytea) / 16 - 1) AS i))
"""

# Valid records of certificates already in the warehouse (their rows are locked by KNOWN_SQL).
STAGE_DDL = """
CREATE TEMP TABLE _stage (
    cert_id bigint PRIMARY KEY, row_no int NOT NULL, source_record_id text, facility_code text, issued_on date,
    person_id text, event_at timestamp, record jsonb NOT NULL, content_hash bytea NOT NULL, raw_hash bytea,
    outcome text NOT NULL
) ON COMMIT DROP
"""

STAGE_COLS = (
    "cert_id",
    "row_no",
    "source_record_id",
    "facility_code",
    "issued_on",
    "person_id",
    "event_at",
    "record",
    "content_hash",
    "raw_hash",
    "outcome",
)

APPLY_KNOWN_SQL = """
WITH hist AS (
    INSERT INTO wh.certificate_version (cert_id, version, record, content_hash, batch_id, source, valid_from,
                                        superseded_by_batch)
    SELECT c.cert_id, c.version, c.record, c.content_hash, c.last_batch_id, c.last_source, c.updated_at, %(batch)s
    FROM _stage s JOIN wh.certificate c USING (cert_id)
    WHERE s.outcome = 'updated'
),
dis AS (  -- another source's version differs: record which fields (never the values), both hashes, pointers
    INSERT INTO wh.source_disagreement (cert_id, fields, source_a, version_a, hash_a, source_b, source_ref_b,
                                        hash_b, batch_id, row_no, outcome)
    SELECT c.cert_id,
           ARRAY(SELECT k FROM (SELECT jsonb_object_keys(c.record) UNION SELECT jsonb_object_keys(s.record)) f(k)
                 WHERE c.record -> k IS DISTINCT FROM s.record -> k ORDER BY k),
           c.last_source, c.version, c.content_hash, %(source)s, %(source_ref)s, s.content_hash, %(batch)s,
           s.row_no, s.outcome
    FROM _stage s JOIN wh.certificate c USING (cert_id)
    WHERE s.outcome <> 'unchanged' AND c.last_source <> %(source)s
),
upd AS (
    UPDATE wh.certificate c
    SET record = s.record, content_hash = s.content_hash, facility_code = s.facility_code,
        issued_on = s.issued_on, person_id = s.person_id, event_at = s.event_at, version = c.version + 1,
        last_batch_id = %(batch)s, last_source = %(source)s, updated_at = now()
    FROM _stage s
    WHERE c.cert_id = s.cert_id AND s.outcome = 'updated'
)
INSERT INTO wh.certificate_source (cert_id, source, source_ref, source_record_id, content_hash, raw_hash,
                                   first_batch_id, last_batch_id)
SELECT cert_id, %(source)s, %(source_ref)s, source_record_id, content_hash, raw_hash, %(batch)s, %(batch)s
FROM _stage WHERE outcome <> 'refused'
ON CONFLICT (cert_id, source, source_ref) DO UPDATE
SET source_record_id = EXCLUDED.source_record_id, content_hash = EXCLUDED.content_hash,
    raw_hash = EXCLUDED.raw_hash, last_batch_id = EXCLUDED.last_batch_id, last_seen_at = now()
"""

CERT_COPY = (
    "COPY wh.certificate (cert_id, kind, cert_key, facility_code, issued_on, person_id, event_at, record, "
    "content_hash, first_batch_id, last_batch_id, last_source) FROM STDIN"
)
SOURCE_COPY = (
    "COPY wh.certificate_source (cert_id, source, source_ref, source_record_id, content_hash, raw_hash, "
    "first_batch_id, last_batch_id) FROM STDIN"
)
OUTCOME_COPY = (
    "COPY wh.batch_record (batch_id, row_no, source_record_id, cert_key, cert_id, outcome, reasons) FROM STDIN"
)


@dataclass
class Prepared:
    """One batch normalised and validated, ready to apply: no database work left but the upsert."""

    kind: str
    source: str
    source_ref: str
    n: int  # records in the batch
    payloads: dict[int, object]  # row -> the record as received, for the refused rows (kept to be returned)
    ids: list
    raws: list[bytes]
    resent: dict[bytes, tuple]  # raw hash -> (cert_id, cert_key, content_hash) already stored from this source
    reasons: dict[int, list[dict]]  # row -> refusal reasons (rows with none are left out)
    refused_keys: dict[int, str | None]  # row -> certificate key of a refused row
    staged: dict[str, int]  # cert_key -> row of the last valid record of the key in the batch
    # the staged records, in `staged` order: row, key, facility, issued, person, event, doc (the record, keys in
    # jsonb's order), hash (of its canonical JSON)
    rows: pl.DataFrame
    earlier: list[tuple[int, str, bytes]] = field(default_factory=list)  # (row, key, hash): superseded copies


def raw_hashes(records: Sequence[Mapping]) -> list[bytes]:
    """The raw hash of each record as received (what a re-send is recognised by)."""
    with _gc_paused():
        return [raw_hash(r) for r in records]


def lookup_resent(
    conn: psycopg.Connection, *, kind: str, source: str, source_ref: str, raws: Sequence[bytes]
) -> dict[bytes, tuple]:
    """Raw hashes this source already sent for stored certificates: those records need no new work."""
    hashes = b"".join(set(raws))
    if any(len(h) != HASH_BYTES for h in raws):
        raise ValueError("raw hashes are 16 bytes")
    params = {"source": source, "source_ref": source_ref, "kind": kind, "hashes": hashes}
    return {h: (cert_id, key, chash) for h, cert_id, key, chash in conn.execute(RESENT_SQL, params)}


@contextmanager
def _gc_paused():
    """A batch allocates millions of objects and frees them together: the cyclic GC's passes over them are
    wasted work (about a tenth of the time), so it waits until the batch is prepared."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def prepare(
    *,
    kind: str,
    source: str,
    source_ref: str,
    records: Sequence[Mapping],
    record_ids: Sequence[str | None] | None = None,
    refusals: Mapping[int, list[dict]] | None = None,
    raws: list[bytes] | None = None,
    resent: dict[bytes, tuple] | None = None,
) -> Prepared:
    """Normalise, validate, hash and de-duplicate one batch (no database work)."""
    with _gc_paused():
        return _prepare(kind, source, source_ref, records, record_ids, refusals, raws, resent)


def _key_expr(kind: str) -> pl.Expr:
    """cert_key() as a polars expression over the canonical columns."""
    k = KEYS[kind]
    p = [pl.col(f) for f in k["fallback"]]
    return (
        pl.when(pl.col(k["key"]).is_not_null())
        .then(pl.col(k["key"]))
        .when(p[0].is_not_null() & p[2].is_not_null() & p[3].is_not_null())
        .then(pl.concat_str([pl.lit(k["prefix"]), p[0], p[1].fill_null(""), p[2], p[3]], separator=":"))
    )


def _map_distinct(s: pl.Series, fn) -> pl.Series:
    distinct = s.drop_nulls().unique().to_list()
    return s.replace_strict(distinct, [fn(v) for v in distinct], default=None, return_dtype=pl.String)


def _prepare(kind, source, source_ref, records, record_ids, refusals, raws, resent) -> Prepared:
    spec = kind_spec(kind)
    k = KEYS[kind]
    n = len(records)
    ids = list(record_ids) if record_ids is not None else [None] * n
    raws = raws if raws is not None else [raw_hash(r) for r in records]
    resent = resent or {}
    todo = [i for i in range(n) if raws[i] not in resent] if resent else None  # None: every row

    cols = normalise_columns([records[i] for i in todo] if todo is not None else records, spec)
    validate_columns(cols, kind)
    at = todo.__getitem__ if todo is not None else int  # row of the batch of a normalised row
    reasons = {at(j): why for j, why in cols.reasons.items()}
    for i, why in (refusals or {}).items():
        reasons[i] = [*reasons.get(i, []), *why]

    # Valid rows: key, canonical JSON, hash. In-batch duplicates: the last record of a key wins.
    keyed = cols.values.select(
        pl.Series("row", todo if todo is not None else range(len(cols.values)), dtype=pl.Int64),
        _key_expr(kind).alias("key"),
        pl.col(k["facility"]).alias("facility"),
        pl.col(k["issued"]).alias("issued"),
        pl.col(k["person"]).alias("person"),
        pl.col(k["event"]).alias("event"),
    )
    valid = ~keyed["row"].is_in(list(reasons)) & ~cols.empty if reasons else ~cols.empty
    refused_keys = dict(zip(*keyed.filter(~valid).select("row", "key"), strict=True)) if len(keyed) else {}
    # the content hash is of the canonical JSON; the record goes to the database with its keys in jsonb's order
    rows = keyed.filter(valid).with_columns(doc=cols.stored.filter(valid), hash=cols.hashes.filter(valid))
    hashes = rows["hash"].to_list()
    row_list, key_list = rows["row"].to_list(), rows["key"].to_list()
    staged: dict[str, int] = dict(zip(key_list, row_list, strict=True))  # first position, last row of each key
    at_row = dict(zip(row_list, range(len(row_list)), strict=True)) if len(staged) < len(row_list) or resent else {}
    earlier: list[tuple[int, str, bytes]] = []
    if len(staged) < len(row_list):  # the same certificate more than once: the earlier copies
        last: dict[str, int] = {}
        for i, key in zip(row_list, key_list, strict=True):
            if key in last:
                earlier.append((last[key], key, hashes[at_row[last[key]]]))
            last[key] = i
    dup = [reason(spec.key, "DUPLICATE_IN_BATCH")]
    if resent:
        # A re-sent record (identical to what is stored) that comes after a different copy of the same
        # certificate in this batch wins: the earlier copy must not overwrite it.
        resent_last = {resent[raws[i]][1]: i for i in range(n) if raws[i] in resent}
        for key in [key for key, i in staged.items() if resent_last.get(key, -1) > i]:
            i = staged.pop(key)
            reasons[i], refused_keys[i] = list(dup), key
        # ...and a re-sent record followed by a different copy of the same certificate loses to it.
        for i in range(n):
            if raws[i] in resent:
                _, key, chash = resent[raws[i]]
                if key in staged and staged[key] > i and hashes[at_row[staged[key]]] != chash:
                    reasons[i] = list(dup)
    for i, key, h in earlier:
        if key not in staged or h != hashes[at_row[staged[key]]]:
            reasons[i], refused_keys[i] = list(dup), key
    if len(staged) < len(row_list):
        order = pl.DataFrame({"row": pl.Series(list(staged.values()), dtype=pl.Int64)})
        rows = order.join(rows, on="row", how="left", maintain_order="left")
    rows = rows.with_columns(issued=_map_distinct(rows["issued"], iso_date), event=_map_distinct(rows["event"], iso_ts))
    return Prepared(
        kind=kind,
        source=source,
        source_ref=source_ref,
        n=n,
        payloads={i: records[i] for i in reasons},
        ids=ids,
        raws=raws,
        resent=resent,
        reasons=reasons,
        refused_keys=refused_keys,
        staged=staged,
        rows=rows,
        earlier=earlier,
    )


# CSV with a tab between fields and \x01 as the quote: canonical JSON holds neither (JSON escapes control
# characters), so the records' many double quotes need no doubling and nearly no field is quoted; PostgreSQL
# parses it in about 10 % less time than comma-and-double-quote CSV. Any value still round-trips exactly (polars
# quotes a field holding a tab, \x01 or a line break, and doubles a \x01 inside it).
_COPY_ROWS = 5000
_CSV_OPTIONS = " (FORMAT csv, DELIMITER E'\\t', QUOTE E'\\x01')"


def _copy_csv(conn: psycopg.Connection, sql: str, frame: pl.DataFrame) -> None:
    """COPY a frame (its columns in the statement's order) as CSV written by polars: no Python per row."""
    with conn.cursor().copy(sql + _CSV_OPTIONS) as copy:
        for at in range(0, len(frame), _COPY_ROWS):  # the server parses one slice while the next is written
            buf = io.BytesIO()
            frame.slice(at, _COPY_ROWS).write_csv(
                buf, include_header=False, quote_style="necessary", separator="\t", quote_char="\x01"
            )
            copy.write(buf.getbuffer())


def _hex(col: str) -> pl.Expr:
    return pl.concat_str(pl.lit("\\x"), pl.col(col).bin.encode("hex"))


def apply(conn: psycopg.Connection, batch_id: int, p: Prepared) -> BatchResult:
    """Upsert a prepared batch by the warehouse rules, in one transaction, and record every outcome.

    Certificates not yet known are COPYed straight into the warehouse (ids drawn beforehand); only records of
    known certificates go through a staging table and one statement (history, disagreement, update, provenance).
    """
    kind, source, source_ref = p.kind, p.source, p.source_ref
    spec = kind_spec(kind)
    n = p.n
    result = BatchResult(batch_id=batch_id, kind=kind, received=n)
    counts: Counter = Counter()
    rules: Counter = Counter()
    outcomes: list[pl.DataFrame] = []  # wh.batch_record rows: row, cert_key, cert_id, outcome, reasons
    ids = pl.Series("rid", p.ids, dtype=pl.String, strict=False)
    with conn.transaction():
        # A batch is applied once: a retried task (killed after the commit, before Airflow saw it succeed) gets the
        # stored counts back instead of a duplicate-key error on its outcomes. The row lock orders two attempts.
        before = conn.execute(
            "SELECT status, received, stored, updated, unchanged, refused, refusals_by_rule FROM wh.ingest_batch "
            "WHERE batch_id = %s FOR UPDATE",
            (batch_id,),
        ).fetchone()
        if before is not None and before[0] in ("ingested", "acknowledged"):
            result.received, result.stored, result.updated, result.unchanged, result.refused = before[1:6]
            result.refusals_by_rule = dict(before[6] or {})
            log.info("batch %s (%s %s/%s) was already ingested: nothing done", batch_id, kind, source, source_ref)
            return result
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_IDS[kind],))
        # Known certificates are locked first, so a registrar marking one used cannot slip in between.
        known = (
            {r[0]: r[1:] for r in conn.execute(KNOWN_SQL, {"kind": kind, "keys": "\n".join(p.staged)})}
            if p.staged
            else {}
        )
        rows = p.rows.with_columns(rid=ids.gather(p.rows["row"]) if len(p.rows) else pl.lit(None, pl.String))
        is_new = ~rows["key"].is_in(list(known)) if known else pl.repeat(True, len(rows), eager=True)
        new = rows.filter(is_new)
        cert_ids = pl.Series("cert_id", [], dtype=pl.Int64)
        if len(new):
            lo, hi, listed = warehouse.one(conn, NEW_IDS_SQL, (len(new),))
            cert_ids = pl.Series("cert_id", listed or range(lo, hi + 1), dtype=pl.Int64)
            new = new.with_columns(cert_ids)
            _copy_csv(
                conn,
                CERT_COPY,
                new.select(
                    "cert_id",
                    pl.lit(kind).alias("kind"),
                    "key",
                    "facility",
                    "issued",
                    "person",
                    "event",
                    "doc",
                    _hex("hash").alias("hash"),
                    pl.lit(batch_id).alias("first"),
                    pl.lit(batch_id).alias("last"),
                    pl.lit(source).alias("source"),
                ),
            )
            raw = pl.Series([p.raws[i] for i in new["row"].to_list()], dtype=pl.Binary)
            _copy_csv(
                conn,
                SOURCE_COPY,
                new.with_columns(raw=raw).select(
                    "cert_id",
                    pl.lit(source).alias("source"),
                    pl.lit(source_ref).alias("source_ref"),
                    "rid",
                    _hex("hash").alias("hash"),
                    _hex("raw").alias("raw"),
                    pl.lit(batch_id).alias("first"),
                    pl.lit(batch_id).alias("last"),
                ),
            )
            outcomes.append(
                new.select("row", "key", "cert_id", outcome=pl.lit("stored"), reasons=pl.lit(None, pl.String))
            )
            counts["stored"] += len(new)
        winners = dict(zip(new["key"].to_list(), cert_ids.to_list(), strict=True)) if len(new) else {}
        if known:
            used = json.dumps([reason(spec.key, "ALREADY_USED")], ensure_ascii=False)
            stage: list[tuple] = []
            known_out: list[tuple] = []
            for t in rows.filter(~is_new).iter_rows(named=True):
                key = t["key"]
                cid, status, chash, _ = known[key]
                outcome = "unchanged" if chash == t["hash"] else "refused" if status == "used" else "updated"
                stage.append(
                    (cid, t["row"] + 1, t["rid"], t["facility"], t["issued"], t["person"], t["event"], t["doc"],
                     t["hash"], p.raws[t["row"]], outcome)
                )  # fmt: skip
                winners[key] = cid
                known_out.append((t["row"], key, cid, outcome, used if outcome == "refused" else None))
                counts[outcome] += 1
            outcomes.append(_outcome_frame(known_out))
            if counts["refused"]:
                rules["ALREADY_USED"] = counts["refused"]
            conn.execute(STAGE_DDL)
            with conn.cursor().copy(f"COPY _stage ({', '.join(STAGE_COLS)}) FROM STDIN") as copy:
                for staged_row in stage:
                    copy.write_row(staged_row)
            if len(stage) > 1000:
                conn.execute("ANALYZE _stage")
            conn.execute(APPLY_KNOWN_SQL, {"batch": batch_id, "source": source, "source_ref": source_ref})

        # Records not staged: re-sent unchanged, refused by validation, earlier copies of a batch duplicate.
        resent, raws, reasons = p.resent, p.raws, p.reasons
        # Their provenance rows stay as they are: the outcome row says this batch sent them again.
        resent_rows = [i for i in range(n) if raws[i] in resent and i not in reasons] if resent else []
        if resent_rows:
            got = [resent[raws[i]] for i in resent_rows]
            outcomes.append(
                pl.DataFrame(
                    {
                        "row": pl.Series(resent_rows, dtype=pl.Int64),
                        "key": pl.Series([g[1] for g in got], dtype=pl.String),
                        "cert_id": pl.Series([g[0] for g in got], dtype=pl.Int64),
                    }
                ).with_columns(outcome=pl.lit("unchanged"), reasons=pl.lit(None, pl.String))
            )
        counts["unchanged"] += len(resent_rows)
        done: list[tuple] = [
            (i, key, winners.get(key), "unchanged", None) for i, key, _ in p.earlier if i not in reasons
        ]
        counts["unchanged"] += len(done)
        refused = sorted(reasons)
        for i in refused:
            why = reasons[i]
            key = p.refused_keys[i] if i in p.refused_keys else resent[raws[i]][1] if raws[i] in resent else None
            done.append((i, key, None, "refused", json.dumps(why, ensure_ascii=False)))
            rules.update({r["code"] for r in why})
        outcomes.append(_outcome_frame(done))
        counts["refused"] += len(refused)
        out = pl.concat(outcomes).sort("row")
        _copy_csv(
            conn,
            OUTCOME_COPY,
            out.select(
                pl.lit(batch_id).alias("batch"),
                (pl.col("row") + 1).alias("row_no"),
                ids.gather(out["row"]).alias("rid") if len(out) else pl.lit(None, pl.String).alias("rid"),
                "key",
                "cert_id",
                "outcome",
                "reasons",
            ),
        )
        if refused:
            with conn.cursor().copy("COPY wh.refused_record (batch_id, row_no, payload) FROM STDIN") as copy:
                for i in refused:
                    rec = p.payloads[i]
                    copy.write_row(
                        (
                            batch_id,
                            i + 1,
                            warehouse.raw_json(dict(rec) if isinstance(rec, Mapping) else {"value": rec}),
                        )
                    )
        result.stored, result.updated = counts["stored"], counts["updated"]
        result.unchanged, result.refused = counts["unchanged"], counts["refused"]
        result.refusals_by_rule = dict(sorted(rules.items()))
        conn.execute(
            "UPDATE wh.ingest_batch SET status = 'ingested', ingested_at = now(), received = %s, stored = %s, "
            "updated = %s, unchanged = %s, refused = %s, refusals_by_rule = %s WHERE batch_id = %s",
            (
                result.received,
                result.stored,
                result.updated,
                result.unchanged,
                result.refused,
                Jsonb(result.refusals_by_rule),
                batch_id,
            ),
        )
    log.info(
        "batch %s (%s %s/%s): %s",
        batch_id,
        kind,
        source,
        source_ref,
        {k: v for k, v in result.summary().items() if k not in ("batch_id", "kind")},
    )
    return result


def _outcome_frame(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={"row": pl.Int64, "key": pl.String, "cert_id": pl.Int64, "outcome": pl.String, "reasons": pl.String},
        orient="row",
    )


def ingest(
    conn: psycopg.Connection,
    *,
    batch_id: int,
    kind: str,
    source: str,
    source_ref: str,
    records: Sequence[Mapping],
    record_ids: Sequence[str | None] | None = None,
    refusals: Mapping[int, list[dict]] | None = None,
) -> BatchResult:
    """Normalise, validate and upsert one batch in one transaction. Returns counts (no personal data).

    `refusals`: reasons an adapter found itself (e.g. a file row of another facility), by record index;
    such a record is refused with them, in addition to what validation finds.
    """
    p = prepare_batch(
        conn, kind=kind, source=source, source_ref=source_ref, records=records, record_ids=record_ids, refusals=refusals
    )
    return apply(conn, batch_id, p)


def prepare_batch(
    conn: psycopg.Connection | None,
    *,
    kind: str,
    source: str,
    source_ref: str,
    records: Sequence[Mapping],
    record_ids: Sequence[str | None] | None = None,
    refusals: Mapping[int, list[dict]] | None = None,
) -> Prepared:
    """Raw hashes, the look-up of what this source re-sent (skipped when `conn` is None), then prepare()."""
    raws = raw_hashes(records)
    resent = lookup_resent(conn, kind=kind, source=source, source_ref=source_ref, raws=raws) if conn else {}
    return prepare(
        kind=kind,
        source=source,
        source_ref=source_ref,
        records=records,
        record_ids=record_ids,
        refusals=refusals,
        raws=raws,
        resent=resent,
    )
