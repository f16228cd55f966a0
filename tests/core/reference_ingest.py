"""The ingestion core's row-by-row path as it was before the columnar one (kept for the differential test).

Verbatim copies of the earlier certpipe.core.ingest._prepare/apply, certpipe.core.validate.validate and
certpipe.core.rules.check_birth/check_death (with address() as it was); everything else they call is shared with
the package (normalise(), SuiteRunner.run(), the rule helpers, the SQL). `reference_ingest()` is the old
`ingest()`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg.types.json import Jsonb

from certpipe.core import reference as ref
from certpipe.core.ingest import (
    _LOCK_IDS,
    APPLY_KNOWN_SQL,
    CERT_COPY,
    OUTCOME_COPY,
    SOURCE_COPY,
    STAGE_COLS,
    STAGE_DDL,
    BatchResult,
    _gc_paused,
    log,
)
from certpipe.core.keys import KEYS, canonical_json, cert_key, content_hash, iso_date, iso_ts, raw_hash
from certpipe.core.normalize import normalise
from certpipe.core.rules import _d, cert_number, nationality, not_future, now_local, person_id
from certpipe.core.schema import KindSpec, kind_spec, reason
from certpipe.core.validate import suite_runner

# The earlier SQL of the look-ups and of the touch of re-sent records.
KNOWN_SQL = """
SELECT cert_key, cert_id, status, content_hash, last_source FROM wh.certificate
WHERE kind = %s AND cert_key = ANY(%s) ORDER BY cert_id FOR UPDATE
"""

# Ids for new certificates: usually one contiguous run (then only its ends come back), else the list.
NEW_IDS_SQL = """
WITH v AS (SELECT nextval((SELECT pg_get_serial_sequence('wh.certificate', 'cert_id'))::regclass) AS id
           FROM generate_series(1, %s))
SELECT min(id), max(id), CASE WHEN max(id) - min(id) + 1 <> count(*) THEN array_agg(id ORDER BY id) END FROM v
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


def lookup_resent(
    conn: psycopg.Connection, *, kind: str, source: str, source_ref: str, raws: Sequence[bytes]
) -> dict[bytes, tuple]:
    """Raw hashes this source already sent for stored certificates: those records need no new work."""
    return {
        h: (cert_id, key, chash)
        for h, cert_id, key, chash in conn.execute(RESENT_SQL, (source, source_ref, list(set(raws)), kind))
    }


# Fields of a staged (valid, to be applied) record.
ROW, RID, KEY, FAC, ISS, PER, EVT, DOC, HASH, RAW = range(10)


@dataclass
class Prepared:
    """One batch normalised and validated, ready to apply: no database work left but the upsert."""

    kind: str
    source: str
    source_ref: str
    records: Sequence
    ids: list
    raws: list[bytes]
    resent: dict[bytes, tuple]  # raw hash -> (cert_id, cert_key, content_hash) already stored from this source
    rows: list
    reasons: list[list[dict]]
    staged: dict[str, tuple]  # cert_key -> staged record (the last valid record of the key in the batch)
    earlier: list[tuple[int, str, bytes]] = field(default_factory=list)  # (row_no, key, hash): superseded copies


def reference_ingest(
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
    """The earlier ingest(): raw hashes, the re-send look-up, the row-by-row prepare, apply."""
    with _gc_paused():
        raws = [raw_hash(r) for r in records]
    resent = lookup_resent(conn, kind=kind, source=source, source_ref=source_ref, raws=raws)
    with _gc_paused():
        p = _prepare(kind, source, source_ref, records, record_ids, refusals, raws, resent)
    return apply(conn, batch_id, p)


def _prepare(kind, source, source_ref, records, record_ids, refusals, raws, resent) -> Prepared:
    spec = kind_spec(kind)
    k = KEYS[kind]
    n = len(records)
    ids = list(record_ids) if record_ids is not None else [None] * n
    raws = raws if raws is not None else [raw_hash(r) for r in records]
    resent = resent or {}
    todo = [i for i in range(n) if raws[i] not in resent] if resent else range(n)

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
    fk, ik, pk, ek = k["facility"], k["issued"], k["person"], k["event"]
    for i in todo:
        if reasons[i]:
            continue
        row = rows[i]
        key = cert_key(kind, row)
        doc = canonical_json(row)
        h = content_hash(doc)
        prev = staged.get(key)
        if prev is not None:
            earlier.append((prev[ROW], key, prev[HASH]))
        staged[key] = (
            i + 1,
            ids[i],
            key,
            row.get(fk),
            iso_date(row.get(ik)),
            row.get(pk),
            iso_ts(row.get(ek)),
            doc.decode(),
            h,
            raws[i],
        )
    if resent:
        # A re-sent record (identical to what is stored) that comes after a different copy of the same
        # certificate in this batch wins: the earlier copy must not overwrite it.
        resent_last = {resent[raws[i]][1]: i for i in range(n) if raws[i] in resent}
        for key in [key for key, t in staged.items() if resent_last.get(key, -1) > t[ROW] - 1]:
            reasons[staged.pop(key)[ROW] - 1] = [reason(spec.key, "DUPLICATE_IN_BATCH")]
        # ...and a re-sent record followed by a different copy of the same certificate loses to it.
        for i in range(n):
            if raws[i] in resent:
                _, key, chash = resent[raws[i]]
                if key in staged and staged[key][ROW] - 1 > i and staged[key][HASH] != chash:
                    reasons[i] = [reason(spec.key, "DUPLICATE_IN_BATCH")]
    for row_no, key, h in earlier:
        if key not in staged or h != staged[key][HASH]:
            reasons[row_no - 1] = [reason(spec.key, "DUPLICATE_IN_BATCH")]
    return Prepared(
        kind=kind,
        source=source,
        source_ref=source_ref,
        records=records,
        ids=ids,
        raws=raws,
        resent=resent,
        rows=rows,
        reasons=reasons,
        staged=staged,
        earlier=earlier,
    )


def apply(conn: psycopg.Connection, batch_id: int, p: Prepared) -> BatchResult:
    """Upsert a prepared batch by the warehouse rules, in one transaction, and record every outcome.

    Certificates not yet known are COPYed straight into the warehouse (ids drawn beforehand); only records of
    known certificates go through a staging table and one statement (history, disagreement, update, provenance).
    """
    kind, source, source_ref = p.kind, p.source, p.source_ref
    spec = kind_spec(kind)
    n = len(p.records)
    result = BatchResult(batch_id=batch_id, kind=kind, received=n)
    counts: Counter = Counter()
    rules: Counter = Counter()
    outcomes: list[tuple] = []  # wh.batch_record rows
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_IDS[kind],))
        # Known certificates are locked first, so a registrar marking one used cannot slip in between.
        known = {r[0]: r[1:] for r in conn.execute(KNOWN_SQL, (kind, list(p.staged)))} if p.staged else {}
        new = [t for key, t in p.staged.items() if key not in known]
        winners: dict[str, int] = {}
        if new:
            lo, hi, listed = conn.execute(NEW_IDS_SQL, (len(new),)).fetchone()
            cert_ids = listed or range(lo, hi + 1)
            with conn.cursor().copy(CERT_COPY) as copy:
                for cid, t in zip(cert_ids, new, strict=True):
                    copy.write_row(
                        (cid, kind, t[KEY], t[FAC], t[ISS], t[PER], t[EVT], t[DOC], t[HASH], batch_id, batch_id, source)
                    )
            with conn.cursor().copy(SOURCE_COPY) as copy:
                for cid, t in zip(cert_ids, new, strict=True):
                    copy.write_row((cid, source, source_ref, t[RID], t[HASH], t[RAW], batch_id, batch_id))
            for cid, t in zip(cert_ids, new, strict=True):
                winners[t[KEY]] = cid
                outcomes.append((batch_id, t[ROW], t[RID], t[KEY], cid, "stored", None))
            counts["stored"] += len(new)
        if known:
            used = json.dumps([reason(spec.key, "ALREADY_USED")], ensure_ascii=False)
            stage = []
            for key, (cid, status, chash, _) in known.items():
                t = p.staged[key]
                outcome = "unchanged" if chash == t[HASH] else "refused" if status == "used" else "updated"
                stage.append((cid, t[ROW], t[RID], t[FAC], t[ISS], t[PER], t[EVT], t[DOC], t[HASH], t[RAW], outcome))
                winners[key] = cid
                outcomes.append((batch_id, t[ROW], t[RID], key, cid, outcome, used if outcome == "refused" else None))
                counts[outcome] += 1
            if counts["refused"]:
                rules["ALREADY_USED"] = counts["refused"]
            conn.execute(STAGE_DDL)
            with conn.cursor().copy(f"COPY _stage ({', '.join(STAGE_COLS)}) FROM STDIN") as copy:
                for t in stage:
                    copy.write_row(t)
            if len(stage) > 1000:
                conn.execute("ANALYZE _stage")
            conn.execute(APPLY_KNOWN_SQL, {"batch": batch_id, "source": source, "source_ref": source_ref})

        # Records not staged: re-sent unchanged, refused by validation, earlier copies of a batch duplicate.
        resent, raws, reasons = p.resent, p.raws, p.reasons
        resent_rows = [i for i in range(n) if raws[i] in resent and not reasons[i]] if resent else []
        resent_ids = sorted({resent[raws[i]][0] for i in resent_rows})
        if resent_ids:
            conn.execute(TOUCH_SQL, {"batch": batch_id, "ids": resent_ids, "source": source, "source_ref": source_ref})
        for i in resent_rows:
            cert_id, key, _ = resent[raws[i]]
            outcomes.append((batch_id, i + 1, p.ids[i], key, cert_id, "unchanged", None))
        counts["unchanged"] += len(resent_rows)
        for row_no, key, _ in p.earlier:
            if not reasons[row_no - 1]:
                outcomes.append((batch_id, row_no, p.ids[row_no - 1], key, winners.get(key), "unchanged", None))
                counts["unchanged"] += 1
        refused = [i for i, why in enumerate(reasons) if why]
        for i in refused:
            why = reasons[i]
            row = p.rows[i]
            key = cert_key(kind, row) if row else resent[raws[i]][1] if raws[i] in resent else None
            outcomes.append((batch_id, i + 1, p.ids[i], key, None, "refused", json.dumps(why, ensure_ascii=False)))
            rules.update({r["code"] for r in why})
        counts["refused"] += len(refused)
        outcomes.sort(key=lambda r: r[1])
        with conn.cursor().copy(OUTCOME_COPY) as copy:
            for r in outcomes:
                copy.write_row(r)
        if refused:
            with conn.cursor().copy("COPY wh.refused_record (batch_id, row_no, payload) FROM STDIN") as copy:
                for i in refused:
                    rec = p.records[i]
                    copy.write_row(
                        (
                            batch_id,
                            i + 1,
                            json.dumps(
                                dict(rec) if isinstance(rec, Mapping) else {"value": rec},
                                ensure_ascii=False,
                                default=str,
                            ),
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


# ---------------------------------------------------------------- validation as it was


def to_frame(rows: list[dict], fields) -> object:
    """A pandas frame of the given fields (FieldSpec) of the rows. Integers go in as float64 (missing = NaN),
    so GX compares them vectorised; everything else as Python objects."""
    import numpy as np
    import pandas as pd

    return pd.DataFrame(
        {f.name: np.array([r.get(f.name) for r in rows], dtype=float if f.type == "int" else object) for f in fields}
    )


def validate(rows: list[dict], spec: KindSpec, prior: list[list[dict]] | None = None) -> list[list[dict]]:
    """Reasons per row: normalisation reasons (prior), then the GX suite, then Vietnam's rules."""
    reasons = [list(p) for p in prior] if prior else [[] for _ in rows]
    if not rows:
        return reasons
    for idx, rs in (runner := suite_runner(spec.kind)).run(to_frame(rows, runner.columns)).items():
        failed = {r["field"] for r in reasons[idx]}  # a field normalisation refused is not reported twice
        reasons[idx].extend(r for r in rs if r["field"] not in failed)
    check = checker(spec.kind)
    for i, row in enumerate(rows):
        if row:
            reasons[i].extend(check(row))
    for rs in reasons:  # one reason per (field, code)
        if len(rs) > 1:
            seen, uniq = set(), []
            for r in rs:
                k = (r["field"], r["code"])
                if k not in seen:
                    seen.add(k)
                    uniq.append(r)
            rs[:] = uniq
    return reasons


def address(rec: dict, province_field: str, commune_field: str, on: dt.datetime | None) -> list[dict]:
    province, commune = rec.get(province_field), rec.get(commune_field)
    if on is None or not (province or commune):
        return []
    era = ref.admin_era(on.date())
    out = []
    province_ok = province in ref.provinces(era) if province else False
    if province and not province_ok:
        out.append(reason(province_field, "PROVINCE_CODE"))
    if commune:
        if commune not in ref.communes(era):
            out.append(reason(commune_field, "COMMUNE_CODE"))
        elif province_ok and (province, commune) not in ref.commune_pairs(era):
            out.append(reason(commune_field, "COMMUNE_PROVINCE"))
    return out


def check_birth(rec: dict, now: dt.datetime | None = None) -> list[dict]:
    now = now or now_local()
    g = rec.get
    born, issued, mother_born = _d(g("NGAY_SINH_CON")), _d(g("NGAY_CT")), _d(g("NGAYSINH_NND"))
    id_issued = _d(g("NGAYCAP_CCCD_NND"))
    out = []
    if not g("MA_GCS") and not (g("SO") and g("NGAY_CT") and g("MA_CSKCB")):
        out.append(reason("MA_GCS", "KEY_MISSING"))
    out += cert_number("MA_GCS", g("MA_GCS"), g("MA_CSKCB"), issued)
    out += person_id("SO_CCCD_NND", g("SO_CCCD_NND"), 2, mother_born)
    out += not_future(
        {"NGAY_SINH_CON": born, "NGAY_CT": issued, "NGAYSINH_NND": mother_born, "NGAYCAP_CCCD_NND": id_issued}, now
    )
    if born and issued and born.date() > issued.date():
        out.append(reason("NGAY_SINH_CON", "DATE_ORDER", "birth_after_issue"))
    if born and mother_born and not 10 <= (born - mother_born).days / 365.25 <= 65:
        out.append(reason("NGAYSINH_NND", "DATE_ORDER", "mother_age"))
    if id_issued and mother_born and id_issued < mother_born:
        out.append(reason("NGAYCAP_CCCD_NND", "DATE_ORDER", "id_before_birth"))
    out += nationality("MA_QUOCTICH_NND", g("MA_QUOCTICH_NND"))
    out += address(rec, "MATINH_CU_TRU", "MAXA_CU_TRU", issued or born)
    return out


def check_death(rec: dict, now: dt.datetime | None = None) -> list[dict]:
    now = now or now_local()
    g = rec.get
    born, died, issued = _d(g("NGAY_SINH")), _d(g("NGAY_TV")), _d(g("NGAY_CAPGIAYBT"))
    admitted, id_issued = _d(g("NGAYGIO_VV")), _d(g("NGAY_CAP"))
    out = []
    if not g("MA_GBT") and not (g("SO_BAOTU") and g("NGAY_CAPGIAYBT") and g("MACSKCB")):
        out.append(reason("MA_GBT", "KEY_MISSING"))
    out += cert_number("MA_GBT", g("MA_GBT"), g("MACSKCB"), issued)
    out += person_id("SO_GIAYTO", g("SO_GIAYTO"), g("GIOI_TINH"), born)
    out += not_future(
        {"NGAY_TV": died, "NGAY_CAPGIAYBT": issued, "NGAY_SINH": born, "NGAYGIO_VV": admitted, "NGAY_CAP": id_issued},
        now,
    )
    if born and died and died.date() < born.date():
        out.append(reason("NGAY_TV", "DATE_ORDER", "death_before_birth"))
    if died and issued and died.date() > issued.date():
        out.append(reason("NGAY_TV", "DATE_ORDER", "death_after_issue"))
    if admitted and died and admitted > died:
        out.append(reason("NGAYGIO_VV", "DATE_ORDER", "admission_after_death"))
    if id_issued and born and id_issued < born:
        out.append(reason("NGAY_CAP", "DATE_ORDER", "id_before_birth"))
    out += nationality("MA_QUOCTICH", g("MA_QUOCTICH"))
    on = issued or died
    out += address(rec, "MATINH_THUONGTRU", "MAXA_THUONGTRU", on)
    out += address(rec, "MATINH_HIENTAI", "MAXA_HIENTAI", on)
    icd = g("BENH_ICD10_ID")
    if icd and not all(ref.icd10_valid(c) for c in ref.split_icd10(icd)):
        out.append(reason("BENH_ICD10_ID", "ICD10_CODE"))
    return out


def checker(kind: str):
    now = now_local()
    fn = check_birth if kind == "GCS" else check_death
    return lambda rec: fn(rec, now)
