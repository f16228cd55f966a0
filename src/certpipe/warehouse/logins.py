"""One PostgreSQL login per service, least privilege (docs/security.md).

- certpipe_owner: warehouse migrations only; owns the warehouse database and its objects
- certpipe_airflow: Airflow; owns the Airflow metadata database, nothing in the warehouse
- certpipe_ingest_login: DAG tasks (connection warehouse_db); member of certpipe_ingest (migration 0019)
- certpipe_registrar_login: the registrar API; member of certpipe_registrar (0006; row-level security 0019)
- certpipe_analyst_login: analysts; member of certpipe_analyst (k-anonymous views, 0019)
- certpipe_quality_login: the Data quality page (connection warehouse_quality); member of certpipe_quality (0015)

Logins are NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS (the ingestion login BYPASSRLS: it
sees every row by design, and COPY refuses tables under row-level security otherwise).
A login holds its group's privileges by inheritance only: the membership is granted `WITH INHERIT TRUE,
SET FALSE`, so no login can `SET ROLE` to anything
(there is no role to escape to; the group roles are NOLOGIN). Passwords are generated (scram-sha-256, the server's
default `password_encryption`) into 0600 files `<secrets_dir>/pg_<login>`; run by the bring-up (`./dev up`), the
compose init (`docker/init.sh`) and the tests, as the server's superuser, once per cluster.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

OWNER = "certpipe_owner"
AIRFLOW = "certpipe_airflow"
INGEST = "certpipe_ingest_login"
REGISTRAR = "certpipe_registrar_login"
ANALYST = "certpipe_analyst_login"
QUALITY = "certpipe_quality_login"
# login -> the NOLOGIN group role whose privileges it inherits (None: owns its database)
LOGINS: dict[str, str | None] = {
    OWNER: None,
    AIRFLOW: None,
    INGEST: "certpipe_ingest",
    REGISTRAR: "certpipe_registrar",
    ANALYST: "certpipe_analyst",
    QUALITY: "certpipe_quality",
}
# group roles the migrations grant to; created here too so that the owner (no CREATEROLE) can run them
GROUPS = ("certpipe_ingest", "certpipe_registrar", "certpipe_analyst", "certpipe_quality", "certpipe_auditor")


@dataclass(frozen=True)
class Login:
    name: str
    password: str

    def dsn(self, base_url: str, database: str | None = None) -> str:
        """`base_url` (any postgresql:// URL of the server) with this login, its password and `database`."""
        u = urlsplit(base_url)
        host = u.hostname or "127.0.0.1"
        netloc = f"{quote(self.name, safe='')}:{quote(self.password, safe='')}@{host}" + (
            f":{u.port}" if u.port else ""
        )
        path = "/" + database if database else u.path
        return urlunsplit((u.scheme, netloc, path, u.query, ""))


def write_secret(path: Path, value: str) -> None:
    """A secret file readable by its owner only (0600 from creation: never a moment world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    path.chmod(0o600)


def _password(secrets_dir: Path, login: str) -> str:
    p = secrets_dir / f"pg_{login}"
    if not p.exists():
        write_secret(p, secrets.token_urlsafe(32))
    return p.read_text().strip()


def ensure_logins(admin_url: str, secrets_dir: Path) -> dict[str, Login]:
    """Create (or reset the password of) every login and group role; returns the logins with their passwords."""
    out = {name: Login(name, _password(secrets_dir, name)) for name in LOGINS}
    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute("SELECT pg_advisory_lock(hashtext('certpipe.logins'))")
        for g in GROUPS:
            if not c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (g,)).fetchone():
                c.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(g)))
        for name, group in LOGINS.items():
            # ingestion sees every row by design, and COPY (its bulk path) refuses tables under row-level security
            # unless the role bypasses it: the only attribute a login gets beyond LOGIN
            rls = "BYPASSRLS" if name == INGEST else "NOBYPASSRLS"
            attrs = sql.SQL(
                "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION " + rls + " INHERIT PASSWORD {}"
            ).format(sql.Literal(out[name].password))
            exists = c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            c.execute(sql.SQL(verb + " ROLE {} ").format(sql.Identifier(name)) + attrs)
            if group:
                c.execute(
                    sql.SQL("GRANT {} TO {} WITH INHERIT TRUE, SET FALSE, ADMIN FALSE").format(
                        sql.Identifier(group), sql.Identifier(name)
                    )
                )
        # the migration owner hands the audit function to certpipe_auditor (ALTER FUNCTION ... OWNER TO needs SET)
        c.execute(sql.SQL("GRANT certpipe_auditor TO {} WITH INHERIT FALSE, SET TRUE").format(sql.Identifier(OWNER)))
        c.execute("SELECT pg_advisory_unlock(hashtext('certpipe.logins'))")
    return out


def create_database(admin_url: str, name: str, owner: str, connect: tuple[str, ...] = ()) -> None:
    """A database owned by `owner`; only the owner and `connect` logins may connect (not PUBLIC)."""
    with psycopg.connect(admin_url, autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            c.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))
        else:
            c.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), sql.Identifier(owner)))
        c.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
        for login in connect:
            c.execute(
                sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
                    sql.Identifier(name), sql.Identifier(login)
                )
            )
    # PostgreSQL 15+: nobody but the owner creates in schema public; kept explicit for older servers
    u = urlsplit(admin_url)
    with psycopg.connect(urlunsplit((u.scheme, u.netloc, "/" + name, u.query, "")), autocommit=True) as c:
        c.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")


def provision(
    admin_url: str, secrets_dir: Path, warehouse_db: str = "warehouse", airflow_db: str | None = "airflow"
) -> dict[str, Login]:
    """Logins, the warehouse database (owned by certpipe_owner) and the Airflow one (owned by certpipe_airflow)."""
    logins = ensure_logins(admin_url, secrets_dir)
    create_database(admin_url, warehouse_db, OWNER, (INGEST, REGISTRAR, ANALYST, QUALITY))
    if airflow_db:
        create_database(admin_url, airflow_db, AIRFLOW)
    return logins


def adopt(db_url: str, owner: str) -> int:
    """Hand every schema, table, view, sequence and function that the connecting superuser owns in a database made
    before the service logins (a .state or volume of an earlier version) to `owner`, who runs the migrations
    from now on; returns how many objects changed hands."""
    with psycopg.connect(db_url, autocommit=True) as c:
        schemas = [
            r[0]
            for r in c.execute(
                "SELECT nspname FROM pg_namespace WHERE nspowner = current_user::regrole AND nspname NOT LIKE 'pg\\_%' "
                "AND nspname NOT IN ('information_schema', 'public')"
            )
        ]
        for n in schemas:
            c.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(sql.Identifier(n), sql.Identifier(owner)))
        rels = c.execute(
            "SELECT n.nspname, k.relname FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace "
            "WHERE k.relowner = current_user::regrole AND k.relkind IN ('r', 'v', 'p', 'f') "
            "AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'"
        ).fetchall()
        for n, r in rels:
            c.execute(sql.SQL("ALTER TABLE {}.{} OWNER TO {}").format(*map(sql.Identifier, (n, r, owner))))
        seqs = c.execute(
            "SELECT n.nspname, k.relname FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace "
            "WHERE k.relowner = current_user::regrole AND k.relkind = 'S' AND n.nspname NOT LIKE 'pg\\_%'"
        ).fetchall()
        for n, r in seqs:
            c.execute(sql.SQL("ALTER SEQUENCE {}.{} OWNER TO {}").format(*map(sql.Identifier, (n, r, owner))))
        funcs = c.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE p.proowner = current_user::regrole AND n.nspname NOT LIKE 'pg\\_%' "
            "AND n.nspname <> 'information_schema'"
        ).fetchall()
        for (f,) in funcs:
            c.execute(sql.SQL("ALTER ROUTINE {} OWNER TO {}").format(sql.SQL(f), sql.Identifier(owner)))
    return len(schemas) + len(rels) + len(seqs) + len(funcs)
