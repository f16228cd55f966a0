"""Merge the feature branches 0003-0008 into one line: from here on, one linear chain with one head.

Revisions 0003-0008 each revised 0002 (six heads); warehouses that applied them keep their history untouched,
and every later revision builds on this one.

Revision ID: 0009
Revises: 0003, 0004, 0005, 0006, 0007, 0008
"""

revision = "0009"
down_revision = ("0003", "0004", "0005", "0006", "0007", "0008")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
