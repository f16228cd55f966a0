"""Excel inbox (solution 3): the file ledger that makes processing exactly-once.

Revision ID: 0007
Revises: 0002
"""

from alembic import op

revision = "0007"
down_revision = "0002"
branch_labels = None
depends_on = None

UP = """
-- One row per distinct file content dropped into the inbox. Claimed (inserted) before anything is read,
-- keyed by the SHA-256 of the bytes: the same file dropped again, under any name, is never processed twice.
-- status: claimed -> landed (records in wh.landing_record, one transaction) -> ingested (every batch through
-- the ingestion core) -> done (result written, file moved to processed/); or quarantined (unreadable).
CREATE TABLE wh.excel_file (
    file_id        bigserial PRIMARY KEY,
    content_hash   bytea NOT NULL UNIQUE,
    facility_code  text NOT NULL,
    file_name      text NOT NULL,      -- as dropped; may be personal: never logged
    inbox_key      text NOT NULL,      -- path under the bucket root it was claimed from
    size_bytes     bigint NOT NULL,
    status         text NOT NULL DEFAULT 'claimed'
                   CHECK (status IN ('claimed', 'landed', 'ingested', 'done', 'quarantined')),
    attempts       integer NOT NULL DEFAULT 1,
    claimed_run    text,
    claimed_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    reason_code    text,               -- quarantine reason: a FILE_* rule of rules.json
    final_key      text,               -- processed/... or quarantine/...
    result_key     text,               -- results/...
    counts         jsonb NOT NULL DEFAULT '{}'::jsonb,
    sheets         jsonb NOT NULL DEFAULT '[]'::jsonb   -- layout notes: sheet, kind, header row, ignored columns
);
CREATE INDEX excel_file_open_idx ON wh.excel_file (file_id) WHERE status NOT IN ('done', 'quarantined');
CREATE INDEX excel_file_facility_idx ON wh.excel_file (facility_code, claimed_at);

-- The ingestion batches a file was landed as (one per record kind and chunk of rows).
CREATE TABLE wh.excel_file_batch (
    file_id  bigint NOT NULL REFERENCES wh.excel_file ON DELETE CASCADE,
    batch_id bigint NOT NULL REFERENCES wh.ingest_batch ON DELETE CASCADE,
    kind     text NOT NULL,
    chunk    integer NOT NULL,
    PRIMARY KEY (file_id, batch_id)
);

-- Every object seen in the inbox: the drop that claimed a file, and later drops of the same content.
CREATE TABLE wh.excel_drop (
    drop_id    bigserial PRIMARY KEY,
    file_id    bigint NOT NULL REFERENCES wh.excel_file ON DELETE CASCADE,
    object_key text NOT NULL,
    outcome    text NOT NULL CHECK (outcome IN ('claimed', 'duplicate')),
    seen_at    timestamptz NOT NULL DEFAULT now(),
    final_key  text,
    result_key text
);
CREATE INDEX excel_drop_file_idx ON wh.excel_drop (file_id);
"""

DOWN = "DROP TABLE wh.excel_drop, wh.excel_file_batch, wh.excel_file;"


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
