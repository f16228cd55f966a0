"""DHIS2 mortality (solutions 4.1, 4.2): A6 death events, their match to death notices/registrations, what was
pushed back to DHIS2, causes of death per source, and the registrars' list of deaths not yet registered.

Revision ID: 0004
Revises: 0002
"""

from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None

UP = """
-- A6 register events (commune mortality), one row per DHIS2 event UID; deletions kept as deleted = true.
CREATE TABLE wh.dhis2_death_event (
    event_uid        text PRIMARY KEY,
    org_unit         text NOT NULL,
    commune_code     text,                     -- the org unit's code (administrative commune code)
    event_status     text,
    date_of_death    date,
    date_of_birth    date,
    recorded_at      timestamptz,              -- Ngày ghi sổ, else the event's createdAt
    dhis2_updated_at timestamptz,
    deleted          boolean NOT NULL DEFAULT false,
    data_values      jsonb NOT NULL,           -- {mapping name: value}
    id_number        text,                     -- match keys (normalised)
    name_key         text,
    cert_id          bigint REFERENCES wh.certificate ON DELETE SET NULL,  -- matched death notice (GBT)
    match_method     text CHECK (match_method IN ('pushed', 'id_number', 'name_dob_dod_commune',
                                                  'name_dob_commune_dod_near', 'ambiguous')),
    match_confidence numeric(3, 2),
    matched_at       timestamptz,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    run_id           text
);
CREATE INDEX dhis2_death_event_commune_idx ON wh.dhis2_death_event (commune_code) WHERE NOT deleted;
CREATE INDEX dhis2_death_event_cert_idx ON wh.dhis2_death_event (cert_id);

-- Death registrations pushed to DHIS2 (4.2): one deterministic event per certificate, last outcome kept.
CREATE TABLE wh.dhis2_push (
    cert_id      bigint PRIMARY KEY REFERENCES wh.certificate ON DELETE CASCADE,
    event_uid    text NOT NULL UNIQUE,
    org_unit     text,
    payload_hash bytea,
    outcome      text NOT NULL CHECK (outcome IN ('created', 'updated', 'error', 'skipped')),
    error_codes  text[] NOT NULL DEFAULT '{}',
    errors       jsonb,                    -- DHIS2 messages (may quote values: never logged)
    attempts     integer NOT NULL DEFAULT 1,
    pushed_at    timestamptz NOT NULL DEFAULT now(),
    run_id       text
);

-- Cause of death as each source said it (the hospital's GBT record is never overwritten).
CREATE TABLE wh.cause_of_death (
    cert_id     bigint NOT NULL REFERENCES wh.certificate ON DELETE CASCADE,
    source      text NOT NULL,             -- hospital | dhis2
    text        text,
    icd10       text,
    updated_at  timestamptz,               -- when the source last changed it
    event_uid   text,                      -- dhis2: the A6 event it came from
    stored_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cert_id, source)
);

-- Registrars' list (4.1): deaths DHIS2 knows that are not yet registered, per commune, with the wait.
CREATE VIEW wh.dhis2_unregistered_deaths AS
SELECT e.commune_code, e.org_unit, e.event_uid, e.cert_id, e.date_of_death, e.recorded_at,
       ((now() AT TIME ZONE 'Asia/Ho_Chi_Minh')::date
        - (COALESCE(e.recorded_at, e.first_seen_at) AT TIME ZONE 'Asia/Ho_Chi_Minh')::date) AS waiting_days,
       e.match_method, e.match_confidence,
       CASE WHEN c.cert_id IS NULL THEN 'Chưa có giấy báo tử, chưa đăng ký khai tử'
            ELSE 'Đã có giấy báo tử, chưa đăng ký khai tử' END AS status_vi
FROM wh.dhis2_death_event e
LEFT JOIN wh.certificate c ON c.cert_id = e.cert_id
WHERE NOT e.deleted AND (c.cert_id IS NULL OR c.status <> 'used');
"""

DOWN = """
DROP VIEW wh.dhis2_unregistered_deaths;
DROP TABLE wh.cause_of_death, wh.dhis2_push, wh.dhis2_death_event;
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
