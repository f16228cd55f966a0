"""Registrar access: registrations, audit log, least-privilege roles, analyst views without ID numbers in clear.

- wh.registration: a certificate used for a birth/death registration (once), and explicit, reasoned cancellations.
- wh.audit_log: one row per registrar API call: who, when, action, certificates, query kind + hashed query value.
- wh.registrar_pepper: secret pepper for pseudonymous hashes of personal IDs (sha256(pepper || id)).
- roles (cluster-wide, NOLOGIN, created if missing, kept on downgrade since other databases may use them):
  certpipe_registrar (what the API needs, audit append-only), certpipe_analyst (read-only, schema analyst only).

Revision ID: 0006
Revises: 0002
"""

from alembic import op

revision = "0006"
down_revision = "0002"
branch_labels = None
depends_on = None

ROLES = """
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['certpipe_registrar', 'certpipe_analyst'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;  -- created concurrently
            END;
        END IF;
    END LOOP;
END $$;
"""

UP = """
CREATE TABLE wh.registrar_pepper (
    id     integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    pepper bytea NOT NULL
);
INSERT INTO wh.registrar_pepper (pepper) VALUES (decode(replace(gen_random_uuid()::text, '-', '')
    || replace(gen_random_uuid()::text, '-', ''), 'hex'));

CREATE TABLE wh.registration (
    registration_id bigserial PRIMARY KEY,
    cert_id         bigint NOT NULL REFERENCES wh.certificate ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('GCS', 'GBT')),
    registration_no text NOT NULL,     -- number in the civil register (số đăng ký)
    registered_on   date NOT NULL,
    office          text NOT NULL,     -- registering office (from the registrar's token)
    officer         text NOT NULL,     -- registrar account (token sub)
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    cancelled_at    timestamptz,
    cancelled_by    text,
    cancel_reason   text,
    CHECK ((cancelled_at IS NULL) = (cancelled_by IS NULL) AND (cancelled_at IS NULL) = (cancel_reason IS NULL))
);
-- a certificate is used once: at most one registration that is not cancelled
CREATE UNIQUE INDEX registration_active_uq ON wh.registration (cert_id) WHERE cancelled_at IS NULL;

CREATE TABLE wh.audit_log (
    audit_id    bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor       text,                  -- token sub; NULL when unauthenticated
    office      text,
    province    text,
    commune     text,
    action      text NOT NULL,         -- lookup_mother_id, mark_used, ...
    endpoint    text NOT NULL,         -- method + route template (never a raw path)
    cert_ids    bigint[] NOT NULL DEFAULT '{}',
    query_kind  text,                  -- mother_id | deceased_id | number | cert_id
    query_hash  text,                  -- sha256(pepper || value), hex; never the value
    client_addr inet,
    status_code integer NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('ok', 'not_found', 'conflict', 'forbidden', 'unauthenticated',
                                                 'invalid', 'error'))
);
CREATE INDEX audit_log_at_idx ON wh.audit_log (at);
CREATE INDEX audit_log_actor_idx ON wh.audit_log (actor, at);
CREATE INDEX audit_log_cert_idx ON wh.audit_log USING gin (cert_ids);
CREATE INDEX audit_log_query_idx ON wh.audit_log (query_hash) WHERE query_hash IS NOT NULL;

-- The API's role: read certificates, mark them used, append to the audit log (no UPDATE/DELETE there).
GRANT USAGE ON SCHEMA wh TO certpipe_registrar;
GRANT SELECT ON wh.certificate, wh.certificate_source, wh.registration, wh.registrar_pepper TO certpipe_registrar;
GRANT UPDATE (status, used_at, registration) ON wh.certificate TO certpipe_registrar;
GRANT INSERT ON wh.registration, wh.audit_log TO certpipe_registrar;
GRANT UPDATE (cancelled_at, cancelled_by, cancel_reason) ON wh.registration TO certpipe_registrar;
GRANT USAGE ON SEQUENCE wh.registration_registration_id_seq, wh.audit_log_audit_id_seq TO certpipe_registrar;

-- Analysts: read-only views, ID numbers only as pepper-keyed hashes, no names, no free text.
CREATE SCHEMA analyst;
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

CREATE VIEW analyst.audit_log AS
SELECT audit_id, at, actor, office, province, commune, action, endpoint, cert_ids, query_kind, query_hash,
       host(network(set_masklen(client_addr, CASE WHEN family(client_addr) = 4 THEN 24 ELSE 48 END)))
           AS client_network,
       status_code, outcome
FROM wh.audit_log;

GRANT USAGE ON SCHEMA analyst TO certpipe_analyst;

-- Optional tables of other branches (DHIS2 0004, source disagreements 0003) may be created before or after this
-- migration: the API reads them through these functions (owner's rights, read-only, nothing when absent).
CREATE FUNCTION wh.registrar_optional(tbl text, certs bigint[], communes text[]) RETURNS SETOF jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF tbl = 'dhis2_unregistered_deaths' AND to_regclass('wh.dhis2_unregistered_deaths') IS NOT NULL THEN
        IF communes IS NOT NULL THEN
            RETURN QUERY EXECUTE 'SELECT to_jsonb(v) FROM wh.dhis2_unregistered_deaths v WHERE v.commune_code = '
                'ANY($1) ORDER BY v.waiting_days DESC NULLS LAST, v.commune_code, v.event_uid LIMIT 5000'
                USING communes;
        ELSE
            RETURN QUERY EXECUTE 'SELECT to_jsonb(v) FROM wh.dhis2_unregistered_deaths v WHERE v.cert_id = ANY($1)'
                USING certs;
        END IF;
    ELSIF tbl = 'dhis2_death_event' AND to_regclass('wh.dhis2_death_event') IS NOT NULL THEN
        RETURN QUERY EXECUTE 'SELECT to_jsonb(e) - ''data_values'' - ''id_number'' - ''name_key'' '
            'FROM wh.dhis2_death_event e WHERE e.cert_id = ANY($1)' USING certs;
    ELSIF tbl = 'cause_of_death' AND to_regclass('wh.cause_of_death') IS NOT NULL THEN
        RETURN QUERY EXECUTE 'SELECT to_jsonb(c) FROM wh.cause_of_death c WHERE c.cert_id = ANY($1) '
            'ORDER BY c.source' USING certs;
    ELSIF tbl = 'source_disagreement' AND to_regclass('wh.source_disagreement') IS NOT NULL THEN
        RETURN QUERY EXECUTE 'SELECT to_jsonb(d) - ''hash_a'' - ''hash_b'' FROM wh.source_disagreement d '
            'WHERE d.cert_id = ANY($1) ORDER BY d.detected_at' USING certs;
    END IF;
END $fn$;
REVOKE ALL ON FUNCTION wh.registrar_optional(text, bigint[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION wh.registrar_optional(text, bigint[], text[]) TO certpipe_registrar;
GRANT SELECT ON ALL TABLES IN SCHEMA analyst TO certpipe_analyst;
"""

DOWN = """
REVOKE ALL ON ALL TABLES IN SCHEMA analyst FROM certpipe_analyst;
DROP SCHEMA analyst CASCADE;
REVOKE ALL ON ALL TABLES IN SCHEMA wh FROM certpipe_registrar;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA wh FROM certpipe_registrar;
REVOKE ALL ON SCHEMA wh FROM certpipe_registrar;
DROP FUNCTION wh.registrar_optional(text, bigint[], text[]);
DROP TABLE wh.audit_log, wh.registration, wh.registrar_pepper;
"""


def upgrade() -> None:
    op.execute(ROLES)
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
