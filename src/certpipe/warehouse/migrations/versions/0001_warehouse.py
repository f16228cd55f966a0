"""Certificate warehouse: certificates, history, provenance, batches, watermarks.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UP = """
CREATE TABLE wh.ingest_batch (
    batch_id        bigserial PRIMARY KEY,
    source          text NOT NULL,                 -- his | bhxh | excel | dhis2 ...
    source_ref      text NOT NULL,                 -- hospital facility code, file hash, window ...
    kind            text NOT NULL CHECK (kind IN ('GCS', 'GBT')),
    status          text NOT NULL DEFAULT 'landed'
                    CHECK (status IN ('landed', 'ingested', 'acknowledged', 'failed')),
    run_id          text,                          -- Airflow dag_id/run_id that made it
    created_at      timestamptz NOT NULL DEFAULT now(),
    ingested_at     timestamptz,
    acknowledged_at timestamptz,
    received        integer NOT NULL DEFAULT 0,
    stored          integer NOT NULL DEFAULT 0,
    updated         integer NOT NULL DEFAULT 0,
    unchanged       integer NOT NULL DEFAULT 0,
    refused         integer NOT NULL DEFAULT 0,
    refusals_by_rule jsonb NOT NULL DEFAULT '{}'::jsonb,
    meta            jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX ingest_batch_source_idx ON wh.ingest_batch (source, source_ref, created_at);

-- Raw records exactly as a source sent them ("land raw"), so nothing is lost before validation.
CREATE TABLE wh.landing_record (
    batch_id          bigint NOT NULL REFERENCES wh.ingest_batch ON DELETE CASCADE,
    row_no            integer NOT NULL,
    source_record_id  text,
    source_updated_at timestamptz,
    payload           jsonb NOT NULL,
    PRIMARY KEY (batch_id, row_no)
);

-- Current state of every certificate (births GCS, deaths GBT), keyed by certificate number.
CREATE TABLE wh.certificate (
    cert_id       bigserial PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('GCS', 'GBT')),
    cert_key      text NOT NULL,       -- MA_GCS / MA_GBT, or XML9:<facility>:<QUYEN_SO>:<SO>:<NGAY_CT>
    facility_code text,
    issued_on     date,
    person_id     text,                -- mother's personal ID (GCS) / deceased's personal ID (GBT)
    event_at      timestamp,           -- birth / death, local time (Asia/Ho_Chi_Minh)
    record        jsonb NOT NULL,      -- canonical record (official GIAYCHUNGSINH / GIAYBAOTU names)
    content_hash  bytea NOT NULL,
    status        text NOT NULL DEFAULT 'received' CHECK (status IN ('received', 'used')),
    version       integer NOT NULL DEFAULT 1,
    first_batch_id bigint NOT NULL,
    last_batch_id  bigint NOT NULL,
    last_source    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    used_at       timestamptz,
    registration  jsonb,
    UNIQUE (kind, cert_key)
);
CREATE INDEX certificate_person_idx ON wh.certificate (kind, person_id);
CREATE INDEX certificate_issue_idx ON wh.certificate (kind, issued_on, facility_code);

-- Earlier versions, written when an unused certificate is updated (rule 3).
CREATE TABLE wh.certificate_version (
    cert_id      bigint NOT NULL REFERENCES wh.certificate ON DELETE CASCADE,
    version      integer NOT NULL,
    record       jsonb NOT NULL,
    content_hash bytea NOT NULL,
    batch_id     bigint NOT NULL,
    source       text NOT NULL,
    valid_from   timestamptz NOT NULL,
    valid_to     timestamptz NOT NULL DEFAULT now(),
    superseded_by_batch bigint NOT NULL,
    PRIMARY KEY (cert_id, version)
);

-- Provenance: every source that sent a certificate, with what it sent last.
CREATE TABLE wh.certificate_source (
    cert_id          bigint NOT NULL REFERENCES wh.certificate ON DELETE CASCADE,
    source           text NOT NULL,
    source_ref       text NOT NULL,
    source_record_id text,
    content_hash     bytea NOT NULL,
    first_batch_id   bigint NOT NULL,
    last_batch_id    bigint NOT NULL,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cert_id, source, source_ref)
);

-- Outcome of every received record: stored / updated / unchanged / refused (with reasons).
CREATE TABLE wh.batch_record (
    batch_id         bigint NOT NULL REFERENCES wh.ingest_batch ON DELETE CASCADE,
    row_no           integer NOT NULL,
    source_record_id text,
    cert_key         text,
    cert_id          bigint,
    outcome          text NOT NULL CHECK (outcome IN ('stored', 'updated', 'unchanged', 'refused')),
    reasons          jsonb,            -- [{field, code, message}], no personal data
    PRIMARY KEY (batch_id, row_no)
);
CREATE INDEX batch_record_refused_idx ON wh.batch_record (batch_id) WHERE outcome = 'refused';

-- Refused records keep their raw payload here, so they can be returned and corrected.
CREATE TABLE wh.refused_record (
    batch_id  bigint NOT NULL REFERENCES wh.ingest_batch ON DELETE CASCADE,
    row_no    integer NOT NULL,
    payload   jsonb NOT NULL,
    PRIMARY KEY (batch_id, row_no)
);

-- Incremental pull positions per source.
CREATE TABLE wh.source_watermark (
    source     text NOT NULL,
    source_ref text NOT NULL,
    kind       text NOT NULL,
    watermark  timestamptz NOT NULL,
    batch_id   bigint,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, source_ref, kind)
);
"""

DOWN = """
DROP TABLE wh.source_watermark, wh.refused_record, wh.batch_record, wh.certificate_source,
    wh.certificate_version, wh.certificate, wh.landing_record, wh.ingest_batch;
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
