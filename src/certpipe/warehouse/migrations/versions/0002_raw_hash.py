"""Provenance keeps a hash of the raw record a source sent, so identical re-sends skip validation.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE wh.certificate_source ADD COLUMN raw_hash bytea")
    op.execute("CREATE INDEX certificate_source_raw_idx ON wh.certificate_source (source, source_ref, raw_hash)")


def downgrade() -> None:
    op.execute("DROP INDEX wh.certificate_source_raw_idx")
    op.execute("ALTER TABLE wh.certificate_source DROP COLUMN raw_hash")
