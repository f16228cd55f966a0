"""One definition of "today in Vietnam" in SQL: wh.clock(), wh.vn_date(ts), wh.vn_today().

`current_date` is the session's zone (UTC on most servers): registrar worklists were one day off from 17:00 to
24:00 UTC. Every SQL date computed from the clock now goes through these functions. `wh.clock()` is now() unless
the session sets `certpipe.clock_offset` (an interval; tests only), so tests can run SQL at a chosen instant.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UP = """
CREATE FUNCTION wh.clock() RETURNS timestamptz LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT now() + COALESCE(NULLIF(current_setting('certpipe.clock_offset', true), '')::interval, interval '0')
$$;
CREATE FUNCTION wh.vn_date(ts timestamptz) RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (ts AT TIME ZONE 'Asia/Ho_Chi_Minh')::date
$$;
CREATE FUNCTION wh.vn_today() RETURNS date LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT wh.vn_date(wh.clock())
$$;
GRANT EXECUTE ON FUNCTION wh.clock(), wh.vn_date(timestamptz), wh.vn_today() TO PUBLIC;

CREATE OR REPLACE VIEW wh.dhis2_unregistered_deaths AS
SELECT e.commune_code, e.org_unit, e.event_uid, e.cert_id, e.date_of_death, e.recorded_at,
       (wh.vn_today() - wh.vn_date(COALESCE(e.recorded_at, e.first_seen_at))) AS waiting_days,
       e.match_method, e.match_confidence,
       CASE WHEN c.cert_id IS NULL THEN 'Chưa có giấy báo tử, chưa đăng ký khai tử'
            ELSE 'Đã có giấy báo tử, chưa đăng ký khai tử' END AS status_vi
FROM wh.dhis2_death_event e
LEFT JOIN wh.certificate c ON c.cert_id = e.cert_id
WHERE NOT e.deleted AND (c.cert_id IS NULL OR c.status <> 'used');
"""

DOWN = """
CREATE OR REPLACE VIEW wh.dhis2_unregistered_deaths AS
SELECT e.commune_code, e.org_unit, e.event_uid, e.cert_id, e.date_of_death, e.recorded_at,
       ((now() AT TIME ZONE 'Asia/Ho_Chi_Minh')::date
        - (COALESCE(e.recorded_at, e.first_seen_at) AT TIME ZONE 'Asia/Ho_Chi_Minh')::date) AS waiting_days,
       e.match_method, e.match_confidence,
       CASE WHEN c.cert_id IS NULL THEN 'Chưa có giấy báo tử, chưa đăng ký khai tử'
            ELSE 'Đã có giấy báo tử, chưa đăng ký khai tử' END AS status_vi
FROM wh.dhis2_death_event e
LEFT JOIN wh.certificate c ON c.cert_id = e.cert_id
WHERE NOT e.deleted AND (c.cert_id IS NULL OR c.status <> 'used');
DROP FUNCTION wh.vn_today(), wh.vn_date(timestamptz), wh.clock();
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
