"""Registrar API served on loopback (real uvicorn, real PostgreSQL) over a warehouse loaded by the ingestion core."""

import secrets
from dataclasses import dataclass

import httpx
import pytest

from certpipe import warehouse
from certpipe.core.ingest import ingest
from certpipe.warehouse.logins import REGISTRAR
from registrar import create_app, issue_token
from registrar.security import Settings
from registrar.server import run_in_thread
from tests.core.records import birth, death

MOTHER_ID = "001195012345"  # births 1-3 (Hà Nội, commune 00004)
DECEASED_ID = "096048001234"  # death 1 (Cà Mau, commune 32014)


def load(conn, records, kind, ref):
    batch = warehouse.create_batch(conn, source="his", source_ref=ref, kind=kind)
    conn.commit()
    r = ingest(
        conn,
        batch_id=batch,
        kind=kind,
        source="his",
        source_ref=ref,
        records=records,
        record_ids=[f"{kind}-{i}" for i in range(len(records))],
    )
    assert r.refused == 0, r.refusals_by_rule
    return r


@dataclass
class Api:
    url: str
    secret: str
    dsn: str

    def token(self, sub="hn.hotich1", office="UBND phường Ba Đình", province="01", commune=None, **kw) -> str:
        return issue_token(sub, office, province, commune, secret=self.secret, **kw)

    def client(self, token: str | None = None, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kw)

    def cert_id(self, wh, cert_key: str) -> int:
        return wh.execute("SELECT cert_id FROM wh.certificate WHERE cert_key = %s", (cert_key,)).fetchone()[0]

    def audit(self, wh) -> list[dict]:
        cur = wh.execute("SELECT * FROM wh.audit_log ORDER BY audit_id")
        names = [d.name for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


@pytest.fixture
def secret(monkeypatch):
    s = secrets.token_urlsafe(32)
    monkeypatch.setenv("CERTPIPE_REGISTRAR_JWT_SECRET", s)
    return s


@pytest.fixture
def loaded(wh):
    """Births 1-3 (mother MOTHER_ID, Hà Nội 01/00004), birth 4 (another mother, commune 00008), deaths 1-2 (Cà Mau)."""
    load(wh, [birth(1), birth(2), birth(3), birth(4, SO_CCCD_NND="001195067890", MAXA_CU_TRU="00008")], "GCS", "01020")
    load(wh, [death(1), death(2, SO_GIAYTO="096048005678")], "GBT", "96025")
    wh.commit()
    return wh


# functional tests call faster than a registrar may: the limits themselves are tested in tests/security
GENEROUS = {"rate_token": "1000/second", "rate_address": "1000/second"}


@pytest.fixture
def registrar_dsn(warehouse_dsn, pg_logins):
    """The warehouse as the API's own login (no superuser, no SET ROLE)."""
    return pg_logins[REGISTRAR].dsn(warehouse_dsn)


@pytest.fixture
def api(warehouse_dsn, registrar_dsn, loaded, secret):
    app = create_app(registrar_dsn, settings=Settings.from_env(**GENEROUS))
    with run_in_thread(app) as url:
        yield Api(url, secret, warehouse_dsn)
