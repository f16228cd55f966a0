"""Data-quality summaries (the "Data quality" page of the Airflow UI): daily counts kept up to date by triggers.

Schema `quality` (derived data only, rebuilt from wh at any time with `quality.rebuild()`):
- quality.daily: per Vietnam day of the batch (wh.vn_date(created_at)), source, source_ref, kind: ingested
  batches and their received / stored / updated / unchanged / refused counts, failed batches.
- quality.daily_rule: refused records per rule (wh.ingest_batch.refusals_by_rule: a record counts once per rule).
- quality.daily_field: refused records per rule and field (from wh.batch_record.reasons).

Kept up to date without touching the ingestion code: a row trigger on wh.ingest_batch adds a batch's counts when
it becomes ingested (or failed) and takes them back if it changes or is deleted; a statement trigger on
wh.batch_record (transition table, the one the parent check of 0008 already captures) adds each statement's
refusal reasons. The trigger functions run with their owner's rights, so any login allowed to write batches keeps
the summaries right without a grant on schema quality. The page reads these tables and the indexed batch list,
never wh.certificate.

Role certpipe_quality (NOLOGIN, cluster-wide, created if missing): what the page reads, columns without personal
data only (no record ids, certificate numbers, payloads, file names).

Revision ID: 0015
Revises: 0016
"""

from alembic import op

revision = "0015"
down_revision = "0016"
branch_labels = None
depends_on = None

ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'certpipe_quality') THEN
        BEGIN
            CREATE ROLE certpipe_quality NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;  -- created concurrently
        END;
    END IF;
END $$;
"""

UP = """
CREATE SCHEMA quality;

CREATE TABLE quality.daily (
    day        date NOT NULL,
    source     text NOT NULL,
    source_ref text NOT NULL,
    kind       text NOT NULL,
    batches    integer NOT NULL DEFAULT 0,   -- ingested (or acknowledged) batches
    failed     integer NOT NULL DEFAULT 0,   -- batches marked failed
    received   bigint NOT NULL DEFAULT 0,
    stored     bigint NOT NULL DEFAULT 0,
    updated    bigint NOT NULL DEFAULT 0,
    unchanged  bigint NOT NULL DEFAULT 0,
    refused    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, source, source_ref, kind)
);
CREATE TABLE quality.daily_rule (
    day        date NOT NULL,
    source     text NOT NULL,
    source_ref text NOT NULL,
    kind       text NOT NULL,
    rule       text NOT NULL,
    records    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, source, source_ref, kind, rule)
);
CREATE TABLE quality.daily_field (
    day        date NOT NULL,
    source     text NOT NULL,
    source_ref text NOT NULL,
    kind       text NOT NULL,
    rule       text NOT NULL,
    field      text NOT NULL,                -- '' when a reason names no field
    records    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, source, source_ref, kind, rule, field)
);

-- The page's batch lists: newest first, by run (DAG-run and task-instance views).
CREATE INDEX ingest_batch_created_idx ON wh.ingest_batch (created_at DESC);
CREATE INDEX ingest_batch_run_idx ON wh.ingest_batch (run_id) WHERE run_id IS NOT NULL;

-- A batch's contribution to quality.daily / daily_rule, times `sign` (+1 add, -1 take back).
CREATE FUNCTION quality.add_batch(b wh.ingest_batch, sign integer) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    counted boolean := b.status IN ('ingested', 'acknowledged');
BEGIN
    IF NOT counted AND b.status <> 'failed' THEN
        RETURN;
    END IF;
    INSERT INTO quality.daily AS d (day, source, source_ref, kind, batches, failed, received, stored, updated,
                                    unchanged, refused)
    VALUES (wh.vn_date(b.created_at), b.source, b.source_ref, b.kind,
            CASE WHEN counted THEN sign ELSE 0 END, CASE WHEN counted THEN 0 ELSE sign END,
            CASE WHEN counted THEN sign * b.received ELSE 0 END, CASE WHEN counted THEN sign * b.stored ELSE 0 END,
            CASE WHEN counted THEN sign * b.updated ELSE 0 END, CASE WHEN counted THEN sign * b.unchanged ELSE 0 END,
            CASE WHEN counted THEN sign * b.refused ELSE 0 END)
    ON CONFLICT (day, source, source_ref, kind) DO UPDATE SET
        batches = d.batches + EXCLUDED.batches, failed = d.failed + EXCLUDED.failed,
        received = d.received + EXCLUDED.received, stored = d.stored + EXCLUDED.stored,
        updated = d.updated + EXCLUDED.updated, unchanged = d.unchanged + EXCLUDED.unchanged,
        refused = d.refused + EXCLUDED.refused;
    IF counted AND b.refusals_by_rule <> '{}'::jsonb THEN
        INSERT INTO quality.daily_rule AS r (day, source, source_ref, kind, rule, records)
        SELECT wh.vn_date(b.created_at), b.source, b.source_ref, b.kind, e.key, sign * e.value::bigint
        FROM jsonb_each_text(b.refusals_by_rule) e ORDER BY e.key
        ON CONFLICT (day, source, source_ref, kind, rule) DO UPDATE SET records = r.records + EXCLUDED.records;
    END IF;
END $fn$;

-- SQL adding the refusal reasons of some batch_record rows (`rows`: a relation or a subquery) per (batch day,
-- source, source_ref, kind, rule, field) of their batches (`batches`: wh.ingest_batch, or the row of a batch being
-- deleted), times `sign`. Returned as text and EXECUTEd by the caller, so that a trigger's transition table is in
-- scope.
CREATE FUNCTION quality.reasons_sql(rows text, sign integer, batches text DEFAULT 'wh.ingest_batch') RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT format($q$
        INSERT INTO quality.daily_field AS f (day, source, source_ref, kind, rule, field, records)
        SELECT wh.vn_date(b.created_at), b.source, b.source_ref, b.kind, x.rule, x.field, %s * count(*)
        FROM (SELECT DISTINCT r.batch_id, r.row_no, e->>'code' AS rule, COALESCE(e->>'field', '') AS field
              FROM %s r, jsonb_array_elements(r.reasons) e
              WHERE r.outcome = 'refused' AND jsonb_typeof(r.reasons) = 'array' AND e->>'code' IS NOT NULL) x
        JOIN %s b USING (batch_id)
        GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
        ON CONFLICT (day, source, source_ref, kind, rule, field) DO UPDATE SET records = f.records + EXCLUDED.records
    $q$, sign, rows, batches)
$fn$;

-- What a batch adds to the summaries (NULL: nothing, e.g. still landed); equal values, equal contributions.
CREATE FUNCTION quality.contribution(b wh.ingest_batch) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $fn$
    SELECT CASE
        WHEN b.status IN ('ingested', 'acknowledged') THEN jsonb_build_array('ingested', b.created_at, b.source,
            b.source_ref, b.kind, b.received, b.stored, b.updated, b.unchanged, b.refused, b.refusals_by_rule)
        WHEN b.status = 'failed' THEN jsonb_build_array('failed', b.created_at, b.source, b.source_ref, b.kind)
    END
$fn$;

CREATE FUNCTION quality.on_batch() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' AND quality.contribution(OLD) IS NOT DISTINCT FROM quality.contribution(NEW) THEN
        RETURN NULL;  -- e.g. landed -> landed (received), ingested -> acknowledged, meta
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM quality.add_batch(OLD, -1);
    END IF;
    IF TG_OP = 'DELETE' THEN  -- its batch_record rows are still there (the cascade runs after row triggers)
        EXECUTE quality.reasons_sql(
            format('(SELECT * FROM wh.batch_record WHERE batch_id = %s)', OLD.batch_id), -1,
            format('(SELECT %s::bigint AS batch_id, %L::timestamptz AS created_at, %L::text AS source, '
                   '%L::text AS source_ref, %L::text AS kind)', OLD.batch_id, OLD.created_at, OLD.source,
                   OLD.source_ref, OLD.kind));
    ELSE
        PERFORM quality.add_batch(NEW, 1);
    END IF;
    RETURN NULL;
END $fn$;
CREATE TRIGGER ingest_batch_quality AFTER INSERT OR UPDATE OR DELETE ON wh.ingest_batch
    FOR EACH ROW EXECUTE FUNCTION quality.on_batch();

CREATE FUNCTION quality.on_batch_records() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF EXISTS (SELECT FROM inserted WHERE outcome = 'refused') THEN
        EXECUTE quality.reasons_sql('inserted', 1);
    END IF;
    RETURN NULL;
END $fn$;
CREATE TRIGGER batch_record_quality AFTER INSERT ON wh.batch_record REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION quality.on_batch_records();

-- Recompute every summary from wh (after a restore, or to check the triggers: the tests compare both).
CREATE FUNCTION quality.rebuild() RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    b wh.ingest_batch;
BEGIN
    LOCK TABLE wh.ingest_batch IN SHARE MODE;
    TRUNCATE quality.daily, quality.daily_rule, quality.daily_field;
    FOR b IN SELECT * FROM wh.ingest_batch ORDER BY batch_id LOOP
        PERFORM quality.add_batch(b, 1);
    END LOOP;
    EXECUTE quality.reasons_sql('wh.batch_record', 1);
END $fn$;
SELECT quality.rebuild();

-- Whoever may write batches keeps the summaries right through the triggers (owner's rights), and nobody else
-- writes them: the functions that change them are not callable directly.
REVOKE ALL ON FUNCTION quality.add_batch(wh.ingest_batch, integer), quality.rebuild(),
    quality.on_batch(), quality.on_batch_records() FROM PUBLIC;

GRANT USAGE ON SCHEMA quality, wh TO certpipe_quality;
GRANT SELECT ON ALL TABLES IN SCHEMA quality TO certpipe_quality;
GRANT SELECT (batch_id, source, source_ref, kind, status, run_id, created_at, ingested_at, acknowledged_at,
              received, stored, updated, unchanged, refused, refusals_by_rule) ON wh.ingest_batch TO certpipe_quality;
GRANT SELECT (batch_id, row_no, outcome, reasons) ON wh.batch_record TO certpipe_quality;
GRANT SELECT ON wh.source_watermark TO certpipe_quality;
GRANT SELECT (file_id, facility_code, status, attempts, claimed_at, updated_at, finished_at, reason_code)
    ON wh.excel_file TO certpipe_quality;
GRANT SELECT ON wh.excel_file_batch TO certpipe_quality;
GRANT SELECT ON wh.dhis2_unregistered_deaths TO certpipe_quality;
GRANT SELECT (event_uid, commune_code, deleted, cert_id, match_method, first_seen_at, last_seen_at, recorded_at)
    ON wh.dhis2_death_event TO certpipe_quality;
GRANT SELECT (cert_id, outcome, error_codes, pushed_at) ON wh.dhis2_push TO certpipe_quality;
"""

DOWN = """
REVOKE ALL ON ALL TABLES IN SCHEMA wh FROM certpipe_quality;
REVOKE ALL ON SCHEMA wh FROM certpipe_quality;
DROP TRIGGER batch_record_quality ON wh.batch_record;
DROP TRIGGER ingest_batch_quality ON wh.ingest_batch;
DROP INDEX wh.ingest_batch_run_idx, wh.ingest_batch_created_idx;
DROP SCHEMA quality CASCADE;
"""


def upgrade() -> None:
    op.execute(ROLE)
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
