"""python -m registrar [--host 127.0.0.1] [--port 8090]      serve the API
python -m registrar token --sub U --office O --province PP [--commune CCCCC] [--hours 8]
python -m registrar openapi [--out docs/registrar-openapi.json]
python -m registrar station add --facility F --name N | list | revoke ID     hospital look-up stations

The signing key comes from CERTPIPE_REGISTRAR_JWT_SECRET; the warehouse from CERTPIPE_REGISTRAR_DB_URL or the
Airflow connection `warehouse_db`; CERTPIPE_REGISTRAR_DB_ROLE (e.g. certpipe_registrar) limits the DB session.
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

        print(issue_token(a.sub, a.office, a.province, a.commune, ttl=dt.timedelta(hours=a.hours)))
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
    from registrar.app import create_app
    from registrar.server import make_server

    make_server(create_app(), a.host, a.port, log_level=a.log_level).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
