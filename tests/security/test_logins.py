"""Issue 17 §1: one login per service, least privilege, passwords checked (scram-sha-256, no trust), no superuser
and no SET ROLE path; each login tries what it must not do."""

import stat

import psycopg
import pytest

from certpipe.core.ingest import ingest
from certpipe.warehouse import logins as L
from tests.core.records import birth
from tests.security.conftest import cert_id

DENIED = (psycopg.errors.InsufficientPrivilege,)


def refused(conn: psycopg.Connection, stmt: str, params=None, errors=DENIED) -> None:
    with pytest.raises(errors):
        conn.execute(stmt, params)
    conn.rollback()


def test_the_server_checks_passwords_with_scram_and_trusts_nobody(secured, pg_server):
    with psycopg.connect(pg_server.admin_url) as c:
        methods = {r[0] for r in c.execute("SELECT auth_method FROM pg_hba_file_rules WHERE error IS NULL")}
        hashes = dict(
            c.execute(
                "SELECT rolname, rolpassword FROM pg_authid WHERE rolname LIKE 'certpipe\\_%\\_login' "
                "OR rolname IN ('certpipe_owner', 'certpipe_airflow')"
            ).fetchall()
        )
    assert methods == {"scram-sha-256"}
    assert set(hashes) == set(L.LOGINS) and all(h.startswith("SCRAM-SHA-256$") for h in hashes.values())
    host, port = secured.logins[L.INGEST].dsn(secured.admin).split("@")[1].split("/")[0].split(":")
    for url in (
        f"postgresql://{L.INGEST}@{host}:{port}/{secured.name}",  # no password
        f"postgresql://{L.INGEST}:wrong@{host}:{port}/{secured.name}",
        f"postgresql://postgres@{host}:{port}/postgres",
    ):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(url, connect_timeout=5)


def test_passwords_are_generated_into_owner_only_files(pg_logins, tmp_path):
    from tests.conftest import _TMP

    files = sorted((_TMP / "secrets").glob("pg_*"))
    assert {f.name for f in files} == {f"pg_{n}" for n in L.LOGINS}
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert len({f.read_text() for f in files}) == len(files) and all(len(f.read_text()) >= 32 for f in files)


@pytest.mark.parametrize("login", list(L.LOGINS))
def test_no_login_is_privileged_or_can_become_another_role(secured, login):
    if login == L.AIRFLOW:  # may not even connect to the warehouse
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            secured.connect(login)
        return
    with secured.connect(login, autocommit=True) as c:
        flags = c.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication FROM pg_roles "
            "WHERE rolname = current_user"
        ).fetchone()
        assert flags == (False, False, False, login == L.INGEST, False)  # ingestion sees all rows (COPY)
        for role in ("postgres", "certpipe_owner", "certpipe_registrar", "certpipe_ingest", "certpipe_auditor"):
            if role == login or (login == L.OWNER and role == "certpipe_auditor"):
                continue  # oneself; the migration owner hands the audit function to the auditor (docs/security.md)
            refused(c, f"SET ROLE {role}")
            refused(c, f"SET SESSION AUTHORIZATION {role}")
        refused(c, "CREATE ROLE x LOGIN SUPERUSER")
        refused(c, "CREATE DATABASE x")
        refused(c, "ALTER SYSTEM SET fsync = off")
        refused(c, "SELECT pg_read_file('postgresql.conf')")
        refused(c, "COPY (SELECT 1) TO PROGRAM 'true'")
        if login != L.OWNER:
            refused(c, "CREATE TABLE wh.x (i int)")
            refused(c, "CREATE TABLE public.x (i int)")
            if login != L.REGISTRAR:  # the API hashes look-up values with it
                refused(c, "SELECT * FROM wh.registrar_pepper")


def test_the_owner_ran_the_migrations_and_owns_the_warehouse(secured):
    with psycopg.connect(secured.admin) as c:
        owners = dict(
            c.execute(
                "SELECT k.relname, pg_get_userbyid(k.relowner) FROM pg_class k "
                "WHERE k.relnamespace = 'wh'::regnamespace AND k.relkind = 'r'"
            ).fetchall()
        )
        fn = c.execute("SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE proname = 'audit_append'").fetchone()[0]
    assert set(owners.values()) == {L.OWNER} and fn == "certpipe_auditor"


def test_ingestion_login_ingests_but_touches_nothing_of_registrars_or_the_audit(secured):
    with secured.connect(L.INGEST) as c:
        from certpipe import warehouse

        batch = warehouse.create_batch(c, source="his", source_ref="01020", kind="GCS")
        c.commit()
        r = ingest(
            c, batch_id=batch, kind="GCS", source="his", source_ref="01020", records=[birth(9)], record_ids=["GCS-9"]
        )
        c.commit()
        assert r.stored == 1
        for stmt in (
            "SELECT * FROM wh.registration",
            "SELECT * FROM wh.audit_log",
            "INSERT INTO wh.audit_log (action, endpoint, status_code, outcome, prev_hash, row_hash) "
            "VALUES ('x', 'x', 200, 'ok', repeat('0', 64), repeat('0', 64))",
            "DELETE FROM wh.certificate",
            "DELETE FROM wh.certificate_version",
            "TRUNCATE wh.landing_record",
            "SELECT * FROM wh.token_revocation",
            "UPDATE wh.privacy_setting SET k = 1",
            "SELECT wh.audit_append('x', 'x', '{}', NULL, NULL, NULL, 200, 'ok')",
            "SELECT * FROM analyst.births",
        ):
            refused(c, stmt)


def test_registrar_login_cannot_forge_audit_rows_or_read_raw_data(secured):
    cid = cert_id(secured, "00001.GCS.01020.25")
    with secured.connect(L.REGISTRAR) as c:
        for stmt in (
            "INSERT INTO wh.audit_log (action, endpoint, status_code, outcome, prev_hash, row_hash) "
            "VALUES ('x', 'x', 200, 'ok', repeat('0', 64), repeat('0', 64))",
            "UPDATE wh.audit_log SET actor = 'x'",
            "DELETE FROM wh.audit_log",
            "SELECT * FROM wh.audit_log",
            "SELECT * FROM wh.landing_record",
            "SELECT * FROM wh.refused_record",
            "UPDATE wh.certificate SET record = '{}'",
            "DELETE FROM wh.registration",
            "INSERT INTO wh.token_revocation (sub) VALUES ('someone')",
            "SELECT * FROM analyst.births",
        ):
            refused(c, stmt)
        # the audit function takes who and where from the claims: no claims, no row
        refused(c, "SELECT wh.audit_append('x', 'x', %s, NULL, NULL, NULL, 200, 'ok')", ([cid],))


def test_analyst_and_quality_logins_read_only_their_views(secured):
    with secured.connect(L.ANALYST) as c:
        assert c.execute("SELECT count(*) FROM analyst.births").fetchone()[0] >= 0
        for stmt in (
            "SELECT * FROM wh.certificate",
            "SELECT * FROM quality.daily",
            "SELECT * FROM wh.registration",
            "INSERT INTO wh.privacy_setting VALUES (2, 1)",
        ):
            refused(c, stmt)
    with secured.connect(L.QUALITY) as c:
        assert c.execute("SELECT count(*) FROM quality.daily").fetchone()[0] >= 0
        for stmt in (
            "SELECT * FROM wh.certificate",
            "SELECT * FROM wh.landing_record",
            "DELETE FROM quality.daily",
            "SELECT * FROM analyst.births",
        ):
            refused(c, stmt)


def test_a_warehouse_from_before_the_logins_is_handed_to_the_owner_and_upgraded(pg_server, pg_logins):
    """An existing deployment (migrated by the superuser up to 0015) after the upgrade: provision, adopt, and the
    owner migrates to head; the registrar login then works under row-level security."""
    from certpipe import warehouse

    name = "certpipe_sec_upgrade"
    pg_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg_server.execute(f'CREATE DATABASE "{name}"')
    try:
        warehouse.migrate(pg_server.url_for(name), "0015")
        L.create_database(pg_server.admin_url, name, L.OWNER, (L.INGEST, L.REGISTRAR, L.ANALYST, L.QUALITY))
        assert L.adopt(pg_server.url_for(name), L.OWNER) > 20
        warehouse.migrate(pg_logins[L.OWNER].dsn(pg_server.url_for(name)))
        with psycopg.connect(pg_server.url_for(name)) as c:
            owners = {
                r[0]
                for r in c.execute(
                    "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relnamespace = 'wh'::regnamespace"
                )
            }
            head = c.execute("SELECT version_num FROM wh.alembic_version").fetchone()[0]
        from alembic.script import ScriptDirectory

        want = ScriptDirectory.from_config(warehouse.alembic_config(pg_server.url_for(name))).get_current_head()
        assert owners == {L.OWNER} and head == want
        with psycopg.connect(pg_logins[L.REGISTRAR].dsn(pg_server.url_for(name))) as c:
            assert c.execute("SELECT count(*) FROM wh.certificate").fetchone()[0] == 0
    finally:
        pg_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
