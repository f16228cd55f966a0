"""Web faces of the registrar service: hospital look-up stations (solution 5) and registrar console sessions.

- wh.station: one credential per hospital look-up station (sha256 of a random secret; the secret is shown once),
  revocable (revoked_at).
- wh.station_auth(id, secret_hash): the station's facility and name when the credential is valid and not revoked.
- wh.station_lookup(id, secret_hash, kind, number, factor, date): the one certificate matching every factor, only
  the columns a citizen needs (number, kind, facility, date, received, used); nothing for a revoked station.
  Both run with their owner's rights: the station never reads wh.certificate itself.
- wh.console_logout: registrar console sessions ended by "Đăng xuất" (sha256 of the token) until the token expires.
- wh.office_audit(office, since, until, max): the audit trail of one office, for supervisors in the console.

Revision ID: 0020
Revises: 0015
"""

from alembic import op

revision = "0020"
down_revision = "0017"  # re-chained at merge: one linear history
branch_labels = None
depends_on = None

UP = """
CREATE TABLE wh.station (
    station_id    text PRIMARY KEY CHECK (station_id ~ '^[a-z0-9-]{3,40}$'),
    facility_code text NOT NULL,
    name          text NOT NULL,
    secret_hash   text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

CREATE FUNCTION wh.station_auth(p_station text, p_secret_hash text)
RETURNS TABLE (station_id text, facility_code text, name text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT s.station_id, s.facility_code, s.name FROM wh.station s
    WHERE s.station_id = p_station AND s.secret_hash = p_secret_hash AND s.revoked_at IS NULL
$fn$;

CREATE FUNCTION wh.station_lookup(p_station text, p_secret_hash text, p_kind text, p_number text, p_factor text,
                                  p_date date)
RETURNS TABLE (cert_id bigint, kind text, cert_key text, facility_code text, facility_name text, issued_on date,
               received_at timestamptz, used boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    WITH s AS (SELECT * FROM wh.station_auth(p_station, p_secret_hash)),
    m AS (
        SELECT c.* FROM wh.certificate c, s
        WHERE c.kind = p_kind AND c.person_id = p_factor AND c.issued_on = p_date
          AND (c.cert_key = upper(p_number)
               OR (c.facility_code = s.facility_code
                   AND c.record->>(CASE c.kind WHEN 'GCS' THEN 'SO' ELSE 'SO_BAOTU' END) = p_number))
    )
    SELECT m.cert_id, m.kind, m.cert_key, m.facility_code,
           (SELECT min(st.name) FROM wh.station st WHERE st.facility_code = m.facility_code),
           m.issued_on, m.created_at, m.status = 'used'
    FROM m WHERE (SELECT count(*) FROM m) = 1
$fn$;

CREATE TABLE wh.console_logout (
    token_hash text PRIMARY KEY,
    expires_at timestamptz NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION wh.office_audit(p_office text, p_since timestamptz, p_until timestamptz, p_max integer)
RETURNS TABLE (audit_id bigint, at timestamptz, actor text, action text, endpoint text, cert_ids bigint[],
               query_kind text, client_addr inet, status_code integer, outcome text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT a.audit_id, a.at, a.actor, a.action, a.endpoint, a.cert_ids, a.query_kind, a.client_addr,
           a.status_code, a.outcome
    FROM wh.audit_log a
    WHERE a.office = p_office AND a.at >= p_since AND a.at < p_until
    ORDER BY a.at DESC, a.audit_id DESC LIMIT least(p_max, 5000)
$fn$;

REVOKE ALL ON FUNCTION wh.station_auth(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION wh.station_lookup(text, text, text, text, text, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION wh.office_audit(text, timestamptz, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION wh.station_auth(text, text) TO certpipe_registrar;
GRANT EXECUTE ON FUNCTION wh.station_lookup(text, text, text, text, text, date) TO certpipe_registrar;
GRANT EXECUTE ON FUNCTION wh.office_audit(text, timestamptz, timestamptz, integer) TO certpipe_registrar;
GRANT SELECT, INSERT, DELETE ON wh.console_logout TO certpipe_registrar;
"""

DOWN = """
DROP FUNCTION wh.office_audit(text, timestamptz, timestamptz, integer);
DROP FUNCTION wh.station_lookup(text, text, text, text, text, date);
DROP FUNCTION wh.station_auth(text, text);
DROP TABLE wh.console_logout, wh.station;
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
