"""Security-server directory (national portal guide, section V.1): current mappings, their history, every refresh.

Revision ID: 0005
Revises: 0002
"""

from alembic import op

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None

UP = """
-- Every attempt to refresh the directory, applied or not, with its reason when not.
CREATE TABLE wh.secserver_directory_refresh (
    refresh_id   bigserial PRIMARY KEY,
    run_id       text,                           -- Airflow dag_id/run_id that made it
    created_at   timestamptz NOT NULL DEFAULT now(),
    status       text NOT NULL CHECK (status IN ('applied', 'rejected', 'failed')),
    reason_code  text,                           -- rules.json code (SS_DIR_*) when rejected
    reason       text,                           -- Vietnamese explanation, no secrets
    received     integer,                        -- mappings in the answer
    previous     integer,                        -- mappings before the refresh
    appeared     integer NOT NULL DEFAULT 0,
    changed      integer NOT NULL DEFAULT 0,
    renamed      integer NOT NULL DEFAULT 0,
    disappeared  integer NOT NULL DEFAULT 0,
    unchanged    integer NOT NULL DEFAULT 0,
    answer       jsonb                           -- the answer as received (when it was JSON)
);

-- Current directory: one row per agency (MACOQUAN) and the security server (DSTCODE) that serves its files.
CREATE TABLE wh.secserver_directory (
    macoquan       text PRIMARY KEY,
    tencoquan      text NOT NULL,
    dstcode        text NOT NULL,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),  -- this appearance
    valid_from     timestamptz NOT NULL DEFAULT now(),  -- current DSTCODE since
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    last_refresh_id bigint NOT NULL REFERENCES wh.secserver_directory_refresh
);
CREATE INDEX secserver_directory_dstcode_idx ON wh.secserver_directory (dstcode);

-- When each mapping appeared, changed (DSTCODE), was renamed (TENCOQUAN only) and disappeared.
CREATE TABLE wh.secserver_directory_history (
    history_id     bigserial PRIMARY KEY,
    refresh_id     bigint NOT NULL REFERENCES wh.secserver_directory_refresh,
    changed_at     timestamptz NOT NULL DEFAULT now(),
    macoquan       text NOT NULL,
    change         text NOT NULL CHECK (change IN ('appeared', 'changed', 'renamed', 'disappeared')),
    dstcode        text,                         -- after the change (NULL when disappeared)
    tencoquan      text,
    old_dstcode    text,                         -- before the change (NULL when appeared)
    old_tencoquan  text
);
CREATE INDEX secserver_directory_history_idx ON wh.secserver_directory_history (macoquan, changed_at);
"""

DOWN = "DROP TABLE wh.secserver_directory_history, wh.secserver_directory, wh.secserver_directory_refresh;"


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
