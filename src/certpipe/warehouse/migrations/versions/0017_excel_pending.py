"""Excel inbox: what the scan took out of the inbox, before its content is claimed.

Derived object names are bounded (a hash and a shortened stem), so the name as dropped (any legal name, with
its sub-folders) is kept here between the move to processing/ and the claim; a later drop of a content still
in progress waits here as the twin of that file and is answered as soon as the file is done.

Revision ID: 0017
Revises: 0015
"""

from alembic import op

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None

UP = """
CREATE TABLE wh.excel_pending (
    object_key  text PRIMARY KEY,     -- processing/... key the object was moved to
    folder      text NOT NULL,        -- inbox folder it was dropped in ('' directly under inbox/)
    file_name   text NOT NULL,        -- as dropped, sub-folders included; may be personal: never logged
    seen_at     timestamptz NOT NULL DEFAULT now(),
    twin_of     bigint REFERENCES wh.excel_file ON DELETE CASCADE  -- same content as a file still in progress
);
CREATE INDEX excel_pending_twin_idx ON wh.excel_pending (twin_of) WHERE twin_of IS NOT NULL;
"""

DOWN = "DROP TABLE wh.excel_pending;"


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
