"""python -m registrar [--host 127.0.0.1] [--port 8090]      serve the API
python -m registrar token --sub U --office O --province PP [--commune CCCCC] [--hours 8]
python -m registrar openapi [--out docs/registrar-openapi.json]
python -m registrar station add --facility F --name N | list | revoke ID     hospital look-up stations
python -m registrar revoke (--jti ID | --sub ACCOUNT) --reason TEXT [--dsn URL]
python -m registrar audit-verify [--dsn URL] [--expect-head ID:HASH]

The signing key comes from CERTPIPE_REGISTRAR_JWT_SECRET; the warehouse from CERTPIPE_REGISTRAR_DB_URL (the API's
own login, certpipe_registrar_login) or the Airflow connection `warehouse_db`. `revoke` and `audit-verify` are
administration: they take the owner's DSN (--dsn, else CERTPIPE_ADMIN_DB_URL). Tokens live at most
CERTPIPE_REGISTRAR_MAX_TOKEN_HOURS (12).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "registrar-openapi.json"


def openapi_document() -> dict:
    from registrar.app import create_app

    # the schema does not depend on the database or the key: placeholders, nothing is connected
    return create_app("postgresql://unused@127.0.0.1/unused", jwt_secret="x" * 32).openapi()


def _has_head(dsn: str, audit_id: int, row_hash: str) -> bool:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT row_hash FROM wh.audit_log WHERE audit_id = %s", (audit_id,)).fetchone()
    return bool(row) and row[0] == row_hash


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["token"]:
        p = argparse.ArgumentParser(prog="python -m registrar token", description="Issue a registrar token")
        p.add_argument("--sub", required=True, help="registrar account")
        p.add_argument("--office", required=True, help="registering office")
        p.add_argument("--province", required=True, help="2-digit province code of the office's scope")
        p.add_argument("--commune", help="5-digit commune code, for a commune-level office")
        p.add_argument("--hours", type=float, default=8)
        a = p.parse_args(argv[1:])
        from registrar.auth import issue_token

        token = issue_token(a.sub, a.office, a.province, a.commune, ttl=dt.timedelta(hours=a.hours))
        import jwt

        print(
            f"token id (jti, for revocation): {jwt.decode(token, options={'verify_signature': False})['jti']}",
            file=sys.stderr,
        )
        print(token)
        return 0
    if argv[:1] == ["revoke"]:
        import os

        import psycopg

        p = argparse.ArgumentParser(prog="python -m registrar revoke", description="Revoke a token or a registrar")
        who = p.add_mutually_exclusive_group(required=True)
        who.add_argument("--jti", help="one token (its id)")
        who.add_argument("--sub", help="every token of this registrar issued until now")
        p.add_argument("--reason", required=True)
        p.add_argument("--dsn", default=os.environ.get("CERTPIPE_ADMIN_DB_URL"))
        a = p.parse_args(argv[1:])
        if not a.dsn:
            p.error("--dsn or CERTPIPE_ADMIN_DB_URL is required")
        with psycopg.connect(a.dsn) as conn:
            conn.execute(
                "INSERT INTO wh.token_revocation (jti, sub, reason) VALUES (%s, %s, %s)", (a.jti, a.sub, a.reason)
            )
        print("revoked")
        return 0
    if argv[:1] == ["audit-verify"]:
        import os

        from registrar.audit_chain import verify

        p = argparse.ArgumentParser(prog="python -m registrar audit-verify", description="Verify the audit chain")
        p.add_argument("--dsn", default=os.environ.get("CERTPIPE_ADMIN_DB_URL"))
        p.add_argument("--expect-head", help="ID:HASH printed by an earlier run (detects removed newest rows)")
        a = p.parse_args(argv[1:])
        if not a.dsn:
            p.error("--dsn or CERTPIPE_ADMIN_DB_URL is required")
        r = verify(a.dsn)
        if not r.ok:
            print(f"audit chain BROKEN at audit_id {r.broken_at}: {r.reason} ({r.rows} rows verified before it)")
            return 1
        if a.expect_head:
            want_id, _, want_hash = a.expect_head.partition(":")
            if not _has_head(a.dsn, int(want_id), want_hash):
                print(f"audit chain BROKEN: the recorded head {want_id} is missing or changed (rows removed)")
                return 1
        print(f"audit chain ok: {r.rows} rows, head {r.head_id}:{r.head_hash}")
        return 0
    if argv[:1] == ["station"]:  # hospital look-up stations: add | list | revoke
        from registrar.web.stations import main as stations_main

        return stations_main(argv[1:])
    if argv[:1] == ["openapi"]:
        p = argparse.ArgumentParser(prog="python -m registrar openapi")
        p.add_argument("--out", type=Path, default=OPENAPI)
        a = p.parse_args(argv[1:])
        a.out.write_text(json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {a.out}")
        return 0
    p = argparse.ArgumentParser(prog="python -m registrar", description="Registrar API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--log-level", default="info")
    a = p.parse_args(argv)
    import logging

    from registrar.app import create_app
    from registrar.server import make_server

    # the API's own lines (access: method, route template, status; errors: type only), next to uvicorn's
    logging.basicConfig(level=a.log_level.upper(), format="%(levelname)s:     %(name)s %(message)s")
    make_server(create_app(), a.host, a.port, log_level=a.log_level).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
