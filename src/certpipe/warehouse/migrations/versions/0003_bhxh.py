"""Source disagreements: when a source sends a certificate whose content differs from what another source sent.

Which fields differ, both versions' content hashes and pointers to both versions; never the personal values
themselves (they stay in wh.certificate / wh.certificate_version / wh.landing_record).

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UP = """
CREATE TABLE wh.source_disagreement (
    disagreement_id bigserial PRIMARY KEY,
    cert_id      bigint NOT NULL REFERENCES wh.certificate ON DELETE CASCADE,
    fields       text[] NOT NULL,          -- canonical field names whose values differ
    source_a     text NOT NULL,            -- source of the version that was current (wh.certificate.last_source)
    version_a    integer NOT NULL,         -- its version: wh.certificate_version (or wh.certificate if refused)
    hash_a       bytea NOT NULL,
    source_b     text NOT NULL,            -- source of the incoming record
    source_ref_b text NOT NULL,
    hash_b       bytea NOT NULL,
    batch_id     bigint NOT NULL REFERENCES wh.ingest_batch ON DELETE CASCADE,
    row_no       integer NOT NULL,         -- with batch_id: the raw record in wh.landing_record / wh.batch_record
    outcome      text NOT NULL CHECK (outcome IN ('updated', 'refused')),  -- b won (rule 3) / a kept (rule 4)
    detected_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX source_disagreement_cert_idx ON wh.source_disagreement (cert_id);
CREATE INDEX source_disagreement_batch_idx ON wh.source_disagreement (batch_id);

CREATE VIEW wh.source_disagreement_view AS
SELECT d.disagreement_id, c.kind, c.cert_key, d.fields, d.source_a, d.version_a, d.source_b, d.source_ref_b,
       d.outcome, d.batch_id, d.row_no, encode(d.hash_a, 'hex') AS hash_a, encode(d.hash_b, 'hex') AS hash_b,
       d.detected_at
FROM wh.source_disagreement d JOIN wh.certificate c USING (cert_id);
"""

DOWN = """
DROP VIEW wh.source_disagreement_view;
DROP TABLE wh.source_disagreement;
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
