"""DHIS2 against a real server: the source's time zone next to each watermark (stored in UTC), and push outcomes
for events a commune station deleted (left alone) or that the server will not let us change (reported), plus
whether the push updated the station's own event that matching linked.

Revision ID: 0016
Revises: 0010
"""

from alembic import op

revision = "0016"
down_revision = "0010"
branch_labels = None
depends_on = None

UP = """
ALTER TABLE wh.source_watermark ADD COLUMN source_zone text;
COMMENT ON COLUMN wh.source_watermark.source_zone IS
    'time zone of the source''s own timestamps when the watermark was written (e.g. DHIS2 serverTimeZoneId)';

ALTER TABLE wh.dhis2_push DROP CONSTRAINT dhis2_push_outcome_check;
ALTER TABLE wh.dhis2_push ADD CONSTRAINT dhis2_push_outcome_check
    CHECK (outcome IN ('created', 'updated', 'error', 'skipped', 'deleted', 'refused'));
ALTER TABLE wh.dhis2_push ADD COLUMN linked boolean NOT NULL DEFAULT false;
ALTER TABLE wh.dhis2_push ADD COLUMN event_status text;
COMMENT ON COLUMN wh.dhis2_push.linked IS 'the station''s own A6 event (linked by matching) was updated, none created';
COMMENT ON COLUMN wh.dhis2_push.outcome IS
    'created/updated; error (retried next week); skipped (nothing to send yet); deleted (the station deleted the '
    'event: left alone); refused (the server does not allow the change, e.g. E1043: reported, not retried)';
"""

DOWN = """
UPDATE wh.dhis2_push SET outcome = 'error' WHERE outcome IN ('deleted', 'refused');
ALTER TABLE wh.dhis2_push DROP COLUMN event_status, DROP COLUMN linked;
ALTER TABLE wh.dhis2_push DROP CONSTRAINT dhis2_push_outcome_check;
ALTER TABLE wh.dhis2_push ADD CONSTRAINT dhis2_push_outcome_check
    CHECK (outcome IN ('created', 'updated', 'error', 'skipped'));
ALTER TABLE wh.source_watermark DROP COLUMN source_zone;
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
