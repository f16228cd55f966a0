"""Security (issue 17): ingestion role, registrar scope in the database (RLS), tamper-evident audit, revocation,
k-anonymous analyst views.

- certpipe_ingest (NOLOGIN; login certpipe_ingest_login, certpipe.warehouse.logins): DML on the warehouse tables
  the DAGs write, nothing on registrations, audit, pepper, revocations; no DELETE of certificates or history.
- Row-level security on wh.certificate, wh.certificate_source, wh.registration: certpipe_registrar sees and
  changes only rows in the scope of the claims its API sets per transaction (set_config('certpipe.province'|
  'certpipe.commune'|'certpipe.office'|'certpipe.actor', ..., true), from the verified token). Only the office
  that marked a certificate used can cancel the mark; a cancelled registration cannot be rewritten; the same
  registration (certificate + number) cannot be recorded twice (a cancelled mark cannot be replayed); the
  certificate's status follows its registrations (set used only with an active registration of one's office,
  back to received only once none is active).
- wh.audit_log is append-only and hash-chained: rows are written only by wh.audit_append (SECURITY DEFINER, owned
  by certpipe_auditor), who/office/scope taken from the transaction's claims; row_hash = sha256(prev_hash ||
  canonical row); UPDATE/DELETE/TRUNCATE refused by triggers and privileges. `python -m registrar audit-verify`
  recomputes the chain. Anonymous (unauthenticated) calls are counted per day, endpoint and status
  (wh.audit_anonymous via wh.audit_count_anonymous), never stored row by row.
- wh.token_revocation: revoked token ids (jti) and registrars (sub: tokens issued before the revocation);
  the API asks wh.token_revoked().
- Analysts: k-anonymous aggregates only (k in wh.privacy_setting, default 5): analyst.births, analyst.deaths,
  analyst.death_causes, analyst.registrations; analyst.certificate and analyst.registration (row level) are gone.

Revision ID: 0019
Revises: 0020 (re-chained at merge)
"""

from alembic import op

revision = "0019"
down_revision = "0020"  # re-chained at merge: one linear history
branch_labels = None
depends_on = None

ROLES = """
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['certpipe_ingest', 'certpipe_auditor', 'certpipe_registrar', 'certpipe_analyst'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
            END;
        END IF;
    END LOOP;
END $$;
"""

# the canonical text of an audit row, hashed into the chain; the verifier (registrar.audit_chain) reads the same
# expression over the stored columns
CANONICAL = """jsonb_build_array({p}audit_id, to_char({p}at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
    {p}actor, {p}office, {p}province, {p}commune, {p}action, {p}endpoint, {p}cert_ids, {p}query_kind,
    {p}query_hash, host({p}client_addr), {p}status_code, {p}outcome)::text"""

UP = (
    """
-- ingestion (DAG tasks) --------------------------------------------------------------------------------------
GRANT USAGE ON SCHEMA wh TO certpipe_ingest;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA wh TO certpipe_ingest;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA wh TO certpipe_ingest;
REVOKE DELETE ON wh.certificate, wh.certificate_version, wh.certificate_source, wh.landing_record,
    wh.refused_record, wh.batch_record, wh.ingest_batch FROM certpipe_ingest;
REVOKE ALL ON wh.audit_log, wh.registration, wh.registrar_pepper, wh.alembic_version FROM certpipe_ingest;
ALTER DEFAULT PRIVILEGES IN SCHEMA wh GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO certpipe_ingest;
ALTER DEFAULT PRIVILEGES IN SCHEMA wh GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO certpipe_ingest;
REVOKE ALL ON SCHEMA wh, analyst FROM PUBLIC;

-- claims of the registrar's verified token, set by the API per transaction ------------------------------------
CREATE FUNCTION wh.claim(name text) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp AS $$ SELECT nullif(current_setting('certpipe.' || name, true), '') $$;
CREATE FUNCTION wh.in_registrar_scope(kind text, record jsonb) RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT wh.claim('province') IS NOT NULL
       AND (CASE kind WHEN 'GCS' THEN record->>'MATINH_CU_TRU' ELSE record->>'MATINH_THUONGTRU' END)
           = wh.claim('province')
       AND (wh.claim('commune') IS NULL
            OR (CASE kind WHEN 'GCS' THEN record->>'MAXA_CU_TRU' ELSE record->>'MAXA_THUONGTRU' END)
               = wh.claim('commune'))
$$;
-- cross-table checks of the policies read as the owner (no policy recursion), still under the caller's claims
CREATE FUNCTION wh.cert_in_scope(p_cert_id bigint) RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((SELECT wh.in_registrar_scope(c.kind, c.record) FROM wh.certificate c
                     WHERE c.cert_id = p_cert_id), false)
$$;
CREATE FUNCTION wh.active_registration_office(p_cert_id bigint) RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
    SELECT r.office FROM wh.registration r WHERE r.cert_id = p_cert_id AND r.cancelled_at IS NULL
$$;
REVOKE ALL ON FUNCTION wh.cert_in_scope(bigint), wh.active_registration_office(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION wh.claim(text), wh.in_registrar_scope(text, jsonb), wh.cert_in_scope(bigint),
    wh.active_registration_office(bigint) TO certpipe_registrar;

-- row-level security: the owner (migrations, analyst views, SECURITY DEFINER functions) is not subject to it;
-- ingestion sees every row; the registrar only its scope; any other role nothing
ALTER TABLE wh.certificate ENABLE ROW LEVEL SECURITY;
ALTER TABLE wh.certificate_source ENABLE ROW LEVEL SECURITY;
ALTER TABLE wh.registration ENABLE ROW LEVEL SECURITY;
CREATE POLICY ingest_all ON wh.certificate TO certpipe_ingest USING (true) WITH CHECK (true);
CREATE POLICY ingest_all ON wh.certificate_source TO certpipe_ingest USING (true) WITH CHECK (true);
CREATE POLICY registrar_read ON wh.certificate FOR SELECT TO certpipe_registrar
    USING (wh.in_registrar_scope(kind, record));
-- status follows the registrations: `used` only with an active registration of the claimed office, `received`
-- only once no registration is active
CREATE POLICY registrar_mark ON wh.certificate FOR UPDATE TO certpipe_registrar
    USING (wh.in_registrar_scope(kind, record))
    WITH CHECK (wh.in_registrar_scope(kind, record) AND CASE status
        WHEN 'used' THEN registration->>'office' = wh.claim('office')
            AND wh.active_registration_office(cert_id) = wh.claim('office')
        ELSE registration IS NULL AND wh.active_registration_office(cert_id) IS NULL
        END);
CREATE POLICY registrar_read ON wh.certificate_source FOR SELECT TO certpipe_registrar
    USING (wh.cert_in_scope(cert_id));
CREATE POLICY registrar_read ON wh.registration FOR SELECT TO certpipe_registrar
    USING (wh.cert_in_scope(cert_id));
CREATE POLICY registrar_record ON wh.registration FOR INSERT TO certpipe_registrar
    WITH CHECK (office = wh.claim('office') AND officer = wh.claim('actor') AND cancelled_at IS NULL
                AND wh.cert_in_scope(cert_id));
-- only the office that marked the certificate cancels, once; a cancelled registration is never rewritten
CREATE POLICY registrar_cancel ON wh.registration FOR UPDATE TO certpipe_registrar
    USING (cancelled_at IS NULL AND office = wh.claim('office') AND wh.cert_in_scope(cert_id))
    WITH CHECK (office = wh.claim('office') AND cancelled_by = wh.claim('actor'));
-- a registration (certificate + number) is recorded once: a cancelled mark cannot be replayed
CREATE UNIQUE INDEX registration_once_uq ON wh.registration (cert_id, registration_no);

-- tamper-evident, append-only audit ------------------------------------------------------------------------------
ALTER TABLE wh.audit_log ADD COLUMN prev_hash text, ADD COLUMN row_hash text;
ALTER TABLE wh.audit_log DROP CONSTRAINT audit_log_outcome_check;
ALTER TABLE wh.audit_log ADD CONSTRAINT audit_log_outcome_check CHECK (outcome IN ('ok', 'not_found', 'conflict',
    'forbidden', 'unauthenticated', 'invalid', 'rate_limited', 'error'));
DO $$
DECLARE r wh.audit_log; prev text := repeat('0', 64);
BEGIN
    FOR r IN SELECT * FROM wh.audit_log ORDER BY audit_id LOOP
        UPDATE wh.audit_log SET prev_hash = prev,
            row_hash = encode(sha256(convert_to(prev || """
    + CANONICAL.format(p="r.")
    + """, 'UTF8')), 'hex')
        WHERE audit_id = r.audit_id RETURNING row_hash INTO prev;
    END LOOP;
END $$;
ALTER TABLE wh.audit_log ALTER COLUMN prev_hash SET NOT NULL, ALTER COLUMN row_hash SET NOT NULL;
ALTER TABLE wh.audit_log ADD CONSTRAINT audit_log_hashes CHECK (prev_hash ~ '^[0-9a-f]{64}$'
    AND row_hash ~ '^[0-9a-f]{64}$');

CREATE FUNCTION wh.audit_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'wh.audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON wh.audit_log
    FOR EACH ROW EXECUTE FUNCTION wh.audit_immutable();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON wh.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION wh.audit_immutable();

REVOKE ALL ON wh.audit_log FROM PUBLIC, certpipe_registrar;
REVOKE ALL ON SEQUENCE wh.audit_log_audit_id_seq FROM PUBLIC, certpipe_registrar;
GRANT USAGE ON SCHEMA wh TO certpipe_auditor;
GRANT SELECT, INSERT ON wh.audit_log TO certpipe_auditor;
GRANT USAGE ON SEQUENCE wh.audit_log_audit_id_seq TO certpipe_auditor;

CREATE FUNCTION wh.audit_append(p_action text, p_endpoint text, p_cert_ids bigint[], p_query_kind text,
                                p_query_hash text, p_client_addr inet, p_status integer, p_outcome text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE r wh.audit_log; prev text;
BEGIN
    -- one writer at a time until commit: audit_id order is chain order
    PERFORM pg_advisory_xact_lock(hashtext('wh.audit_log'));
    SELECT a.row_hash INTO prev FROM wh.audit_log a ORDER BY a.audit_id DESC LIMIT 1;
    r.prev_hash := coalesce(prev, repeat('0', 64));
    r.audit_id := nextval('wh.audit_log_audit_id_seq');
    r.at := clock_timestamp();
    r.actor := wh.claim('actor'); r.office := wh.claim('office');
    r.province := wh.claim('province'); r.commune := wh.claim('commune');
    r.action := p_action; r.endpoint := p_endpoint; r.cert_ids := coalesce(p_cert_ids, '{}');
    r.query_kind := p_query_kind; r.query_hash := p_query_hash; r.client_addr := p_client_addr;
    r.status_code := p_status; r.outcome := p_outcome;
    IF r.actor IS NULL THEN
        RAISE EXCEPTION 'audit rows name their registrar (anonymous calls are counted)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    r.row_hash := encode(sha256(convert_to(r.prev_hash || """
    + CANONICAL.format(p="r.")
    + """, 'UTF8')), 'hex');
    INSERT INTO wh.audit_log SELECT r.*;
    RETURN r.audit_id;
END $fn$;

CREATE TABLE wh.audit_anonymous (
    day         date NOT NULL,
    endpoint    text NOT NULL,
    status_code integer NOT NULL,
    calls       bigint NOT NULL,
    last_at     timestamptz NOT NULL,
    PRIMARY KEY (day, endpoint, status_code)
);
GRANT SELECT, INSERT, UPDATE ON wh.audit_anonymous TO certpipe_auditor;
CREATE FUNCTION wh.audit_count_anonymous(p_endpoint text, p_status integer) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    INSERT INTO wh.audit_anonymous AS a (day, endpoint, status_code, calls, last_at)
    VALUES (wh.vn_today(), left(p_endpoint, 200), p_status, 1, now())
    ON CONFLICT (day, endpoint, status_code) DO UPDATE SET calls = a.calls + 1, last_at = excluded.last_at
$fn$;
GRANT EXECUTE ON FUNCTION wh.vn_today() TO certpipe_auditor;
-- a new owner needs CREATE on the schema at the moment of the change only
GRANT CREATE ON SCHEMA wh TO certpipe_auditor;
ALTER FUNCTION wh.audit_append(text, text, bigint[], text, text, inet, integer, text) OWNER TO certpipe_auditor;
ALTER FUNCTION wh.audit_count_anonymous(text, integer) OWNER TO certpipe_auditor;
REVOKE CREATE ON SCHEMA wh FROM certpipe_auditor;
REVOKE ALL ON FUNCTION wh.audit_append(text, text, bigint[], text, text, inet, integer, text),
    wh.audit_count_anonymous(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION wh.audit_append(text, text, bigint[], text, text, inet, integer, text),
    wh.audit_count_anonymous(text, integer) TO certpipe_registrar;
GRANT EXECUTE ON FUNCTION wh.claim(text) TO certpipe_auditor;

-- token revocation --------------------------------------------------------------------------------------------
CREATE TABLE wh.token_revocation (
    revocation_id bigserial PRIMARY KEY,
    jti           text,                -- one token
    sub           text,                -- a registrar: every token issued before revoked_at
    revoked_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    revoked_by    text NOT NULL DEFAULT current_user,
    reason        text,
    CHECK ((jti IS NULL) <> (sub IS NULL))
);
CREATE INDEX token_revocation_jti_idx ON wh.token_revocation (jti) WHERE jti IS NOT NULL;
CREATE INDEX token_revocation_sub_idx ON wh.token_revocation (sub, revoked_at) WHERE sub IS NOT NULL;
REVOKE ALL ON wh.token_revocation FROM certpipe_ingest;
CREATE FUNCTION wh.token_revoked(p_jti text, p_sub text, p_iat timestamptz) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT EXISTS (SELECT 1 FROM wh.token_revocation WHERE jti = p_jti)
        OR EXISTS (SELECT 1 FROM wh.token_revocation WHERE sub = p_sub AND revoked_at >= p_iat)
$fn$;
REVOKE ALL ON FUNCTION wh.token_revoked(text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION wh.token_revoked(text, text, timestamptz) TO certpipe_registrar;
REVOKE INSERT ON wh.audit_log FROM certpipe_registrar;
REVOKE USAGE ON SEQUENCE wh.audit_log_audit_id_seq FROM certpipe_registrar;

-- k-anonymous analyst views -----------------------------------------------------------------------------------
CREATE TABLE wh.privacy_setting (
    id integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    k  integer NOT NULL DEFAULT 5 CHECK (k >= 2)
);
INSERT INTO wh.privacy_setting DEFAULT VALUES;
REVOKE ALL ON wh.privacy_setting FROM certpipe_ingest;

REVOKE ALL ON ALL TABLES IN SCHEMA analyst FROM certpipe_analyst;
DROP VIEW analyst.certificate, analyst.registration;

CREATE FUNCTION wh.age_band(years integer) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN years IS NULL OR years < 0 THEN 'unknown' WHEN years < 1 THEN '0' WHEN years < 5 THEN '1-4'
        WHEN years < 15 THEN '5-14' WHEN years < 30 THEN '15-29' WHEN years < 45 THEN '30-44'
        WHEN years < 60 THEN '45-59' WHEN years < 75 THEN '60-74' ELSE '75+' END
$$;
CREATE FUNCTION wh.compact_date(v text) RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN v ~ '^[0-9]{8}' THEN to_date(left(v, 8), 'YYYYMMDD') END
$$;

-- births per month, province, sex, mother's age band, birth-weight band; cells under k suppressed
CREATE VIEW analyst.births AS
SELECT month, province_code, sex, mother_age_band, birth_weight_band, count(*) AS births
FROM (
    SELECT date_trunc('month', coalesce(c.event_at, c.issued_on::timestamptz) AT TIME ZONE 'Asia/Ho_Chi_Minh')::date
               AS month,
           c.record->>'MATINH_CU_TRU' AS province_code,
           coalesce(c.record->>'GIOI_TINH_CON', 'unknown') AS sex,
           CASE WHEN wh.compact_date(c.record->>'NGAYSINH_NND') IS NULL THEN 'unknown'
                WHEN extract(year FROM age(coalesce(c.event_at::date, c.issued_on),
                                           wh.compact_date(c.record->>'NGAYSINH_NND'))) < 20 THEN '<20'
                WHEN extract(year FROM age(coalesce(c.event_at::date, c.issued_on),
                                           wh.compact_date(c.record->>'NGAYSINH_NND'))) < 35 THEN '20-34'
                ELSE '35+' END AS mother_age_band,
           CASE WHEN c.record->>'CAN_NANG_CON' !~ '^[0-9]+$' THEN 'unknown'
                WHEN (c.record->>'CAN_NANG_CON')::numeric < 2500 THEN '<2500'
                WHEN (c.record->>'CAN_NANG_CON')::numeric < 4000 THEN '2500-3999' ELSE '4000+' END
               AS birth_weight_band
    FROM wh.certificate c WHERE c.kind = 'GCS'
) g
GROUP BY 1, 2, 3, 4, 5
HAVING count(*) >= (SELECT k FROM wh.privacy_setting);

-- deaths per month, province, sex, age band
CREATE VIEW analyst.deaths AS
SELECT month, province_code, sex, age_band, count(*) AS deaths
FROM (
    SELECT date_trunc('month', coalesce(c.event_at, c.issued_on::timestamptz) AT TIME ZONE 'Asia/Ho_Chi_Minh')::date
               AS month,
           c.record->>'MATINH_THUONGTRU' AS province_code,
           coalesce(c.record->>'GIOI_TINH', 'unknown') AS sex,
           wh.age_band(extract(year FROM age(coalesce(c.event_at::date, c.issued_on),
                                             wh.compact_date(c.record->>'NGAY_SINH')))::integer) AS age_band
    FROM wh.certificate c WHERE c.kind = 'GBT'
) g
GROUP BY 1, 2, 3, 4
HAVING count(*) >= (SELECT k FROM wh.privacy_setting);

-- causes of death (ICD-10 3-character category) per year and province: only cells of at least k deaths
CREATE VIEW analyst.death_causes AS
SELECT year, province_code, icd10_category, count(*) AS deaths
FROM (
    SELECT extract(year FROM coalesce(c.event_at, c.issued_on::timestamptz) AT TIME ZONE 'Asia/Ho_Chi_Minh')::integer
               AS year,
           c.record->>'MATINH_THUONGTRU' AS province_code,
           coalesce(upper(left(nullif(c.record->>'BENH_ICD10_ID', ''), 3)), 'unknown') AS icd10_category
    FROM wh.certificate c WHERE c.kind = 'GBT'
) g
GROUP BY 1, 2, 3
HAVING count(*) >= (SELECT k FROM wh.privacy_setting);

-- registrations per month, kind and office (not cancelled), with the delay from issue
CREATE VIEW analyst.registrations AS
SELECT date_trunc('month', r.registered_on)::date AS month, r.kind, r.office, count(*) AS registrations,
       round(avg(r.registered_on - c.issued_on), 1) AS avg_days_from_issue
FROM wh.registration r JOIN wh.certificate c USING (cert_id, kind)
WHERE r.cancelled_at IS NULL
GROUP BY 1, 2, 3
HAVING count(*) >= (SELECT k FROM wh.privacy_setting);

GRANT USAGE ON SCHEMA analyst TO certpipe_analyst;
GRANT SELECT ON analyst.births, analyst.deaths, analyst.death_causes, analyst.registrations, analyst.audit_log
    TO certpipe_analyst;
"""
)

DOWN = """
DROP VIEW analyst.births, analyst.deaths, analyst.death_causes, analyst.registrations;
DROP FUNCTION wh.age_band(integer), wh.compact_date(text);
DROP TABLE wh.privacy_setting;
CREATE VIEW analyst.certificate AS
SELECT c.cert_id, c.kind, c.cert_key, c.facility_code, c.issued_on, c.event_at::date AS event_date,
       CASE c.kind WHEN 'GCS' THEN c.record->>'MATINH_CU_TRU' ELSE c.record->>'MATINH_THUONGTRU' END
           AS province_code,
       CASE c.kind WHEN 'GCS' THEN c.record->>'MAXA_CU_TRU' ELSE c.record->>'MAXA_THUONGTRU' END AS commune_code,
       CASE c.kind WHEN 'GCS' THEN c.record->>'GIOI_TINH_CON' ELSE c.record->>'GIOI_TINH' END AS sex,
       (c.record->>'CAN_NANG_CON')::numeric AS birth_weight_g,
       c.record->>'BENH_ICD10_ID' AS icd10,
       encode(sha256(p.pepper || convert_to(c.person_id, 'UTF8')), 'hex') AS person_hash,
       c.status, c.created_at AS received_at, c.used_at, c.last_source
FROM wh.certificate c CROSS JOIN wh.registrar_pepper p;
CREATE VIEW analyst.registration AS
SELECT registration_id, cert_id, kind, registered_on, office, officer, recorded_at, cancelled_at,
       cancelled_by, (registered_on - c.issued_on) AS days_from_issue
FROM wh.registration r JOIN wh.certificate c USING (cert_id, kind);
GRANT SELECT ON ALL TABLES IN SCHEMA analyst TO certpipe_analyst;
DROP FUNCTION wh.token_revoked(text, text, timestamptz);
DROP TABLE wh.token_revocation;
DROP FUNCTION wh.audit_append(text, text, bigint[], text, text, inet, integer, text);
DROP FUNCTION wh.audit_count_anonymous(text, integer);
DROP TABLE wh.audit_anonymous;
DROP TRIGGER audit_log_append_only ON wh.audit_log;
DROP TRIGGER audit_log_no_truncate ON wh.audit_log;
DROP FUNCTION wh.audit_immutable();
ALTER TABLE wh.audit_log DROP CONSTRAINT audit_log_hashes, DROP COLUMN prev_hash, DROP COLUMN row_hash;
ALTER TABLE wh.audit_log DROP CONSTRAINT audit_log_outcome_check;
ALTER TABLE wh.audit_log ADD CONSTRAINT audit_log_outcome_check CHECK (outcome IN ('ok', 'not_found', 'conflict',
    'forbidden', 'unauthenticated', 'invalid', 'error')) NOT VALID;
GRANT INSERT ON wh.audit_log TO certpipe_registrar;
GRANT USAGE ON SEQUENCE wh.audit_log_audit_id_seq TO certpipe_registrar;
DROP INDEX wh.registration_once_uq;
DROP POLICY registrar_cancel ON wh.registration;
DROP POLICY registrar_record ON wh.registration;
DROP POLICY registrar_read ON wh.registration;
DROP POLICY registrar_read ON wh.certificate_source;
DROP POLICY registrar_mark ON wh.certificate;
DROP POLICY registrar_read ON wh.certificate;
DROP POLICY ingest_all ON wh.certificate_source;
DROP POLICY ingest_all ON wh.certificate;
ALTER TABLE wh.registration DISABLE ROW LEVEL SECURITY;
ALTER TABLE wh.certificate_source DISABLE ROW LEVEL SECURITY;
ALTER TABLE wh.certificate DISABLE ROW LEVEL SECURITY;
DROP FUNCTION wh.cert_in_scope(bigint), wh.active_registration_office(bigint);
DROP FUNCTION wh.in_registrar_scope(text, jsonb);
DROP FUNCTION wh.claim(text);
ALTER DEFAULT PRIVILEGES IN SCHEMA wh REVOKE ALL ON TABLES FROM certpipe_ingest;
ALTER DEFAULT PRIVILEGES IN SCHEMA wh REVOKE ALL ON SEQUENCES FROM certpipe_ingest;
REVOKE ALL ON ALL TABLES IN SCHEMA wh FROM certpipe_ingest;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA wh FROM certpipe_ingest;
REVOKE ALL ON SCHEMA wh FROM certpipe_ingest, certpipe_auditor;
"""


def upgrade() -> None:
    op.execute(ROLES)
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
