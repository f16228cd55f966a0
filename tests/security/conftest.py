"""A warehouse set up as in production: one login per service (certpipe.warehouse.logins), the database owned by
certpipe_owner and migrated by it, data loaded by the ingestion login through the real ingestion core, the
registrar API served on loopback as its own login. Tests here attack it as each login would."""

from __future__ import annotations

import itertools
import os
import secrets
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from certpipe import warehouse
from certpipe.warehouse import logins as L
from registrar import create_app, issue_token
from registrar.security import Settings
from registrar.server import run_in_thread
from tests.core.records import birth, death
from tests.services.registrar.conftest import load

_n = itertools.count()


@dataclass
class Secured:
    admin: str  # superuser, this database
    logins: dict
    name: str

    def dsn(self, login: str) -> str:
        return self.logins[login].dsn(self.admin)

    def connect(self, login: str, **kw) -> psycopg.Connection:
        return psycopg.connect(self.dsn(login), **kw)


@pytest.fixture(scope="module")
def secured(pg_server, pg_logins):
    name = f"certpipe_sec{os.getpid()}_{next(_n)}"
    L.create_database(pg_server.admin_url, name, L.OWNER, (L.INGEST, L.REGISTRAR, L.ANALYST, L.QUALITY))
    s = Secured(pg_server.url_for(name), pg_logins, name)
    warehouse.migrate(s.dsn(L.OWNER))
    with s.connect(L.INGEST) as conn:
        # births 1-3 Hà Nội 01/00004, birth 4 commune 00008; deaths 1-2 Cà Mau 96
        load(
            conn,
            [birth(1), birth(2), birth(3), birth(4, SO_CCCD_NND="001195067890", MAXA_CU_TRU="00008")],
            "GCS",
            "01020",
        )
        load(conn, [death(1), death(2, SO_GIAYTO="096048005678")], "GBT", "96025")
        conn.commit()
    yield s
    pg_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Api:
    url: str
    secret: str

    def token(self, sub="hn.hotich1", office="UBND phường Ba Đình", province="01", commune=None, **kw) -> str:
        return issue_token(sub, office, province, commune, secret=self.secret, **kw)

    def client(self, token: str | None = None, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kw)


def serve(secured: Secured, **settings):
    secret = secrets.token_urlsafe(32)
    app = create_app(secured.dsn(L.REGISTRAR), jwt_secret=secret, settings=Settings.from_env(**settings))
    return secret, run_in_thread(app)


@pytest.fixture
def api(secured):
    secret, server = serve(secured, rate_token="1000/second", rate_address="1000/second")
    with server as url:
        yield Api(url, secret)


def cert_id(secured: Secured, key: str) -> int:
    with psycopg.connect(secured.admin) as c:
        return c.execute("SELECT cert_id FROM wh.certificate WHERE cert_key = %s", (key,)).fetchone()[0]


def audit_rows(secured: Secured) -> list[dict]:
    with psycopg.connect(secured.admin) as c:
        cur = c.execute("SELECT * FROM wh.audit_log ORDER BY audit_id")
        names = [d.name for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
