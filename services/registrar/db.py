"""The registrar's warehouse access: connections, the registrar's scope, certificate look-ups.

The API connects as its own login (certpipe_registrar_login: no superuser, no SET ROLE). Every transaction that
reads or changes registrar data first sets the verified token's claims (`claims`); row-level security in the
database (migration 0019) limits the rows to that scope, whatever SQL runs after."""

import hashlib
import json

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from registrar.auth import Registrar
from registrar.messages import MSG

STATEMENT_TIMEOUT_MS = 10_000


class Db:
    """Connections to the warehouse as the API's login; `connect(reg)` opens a transaction under `reg`'s claims."""

    def __init__(self, dsn: str):
        self.dsn, self._pepper = dsn, None

    def connect(self, reg: Registrar | None = None) -> psycopg.Connection:
        conn = psycopg.connect(
            self.dsn,
            application_name="certpipe-registrar",
            row_factory=dict_row,
            connect_timeout=10,
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c idle_in_transaction_session_timeout=30000",
        )
        if reg is not None:
            claims(conn, reg)
        return conn

    def pepper(self, conn: psycopg.Connection) -> bytes:
        if self._pepper is None:
            self._pepper = bytes(conn.execute("SELECT pepper FROM wh.registrar_pepper").fetchone()["pepper"])
        return self._pepper


def claims(conn: psycopg.Connection, reg: Registrar) -> None:
    """The verified token's claims for this transaction only (set_config(..., true)): what RLS and the audit
    function read. Call again after a commit."""
    conn.execute(
        "SELECT set_config('certpipe.actor', %s, true), set_config('certpipe.office', %s, true), "
        "set_config('certpipe.province', %s, true), set_config('certpipe.commune', %s, true)",
        (reg.sub, reg.office, reg.province, reg.commune or ""),
    )


def revoked(conn: psycopg.Connection, reg: Registrar) -> bool:
    row = conn.execute("SELECT wh.token_revoked(%s, %s, %s) AS r", (reg.jti, reg.sub, reg.iat)).fetchone()
    return bool(row["r"])


def query_hash(pepper: bytes, value: str) -> str:
    """Same construction as the analyst views' person_hash: sha256(pepper || value)."""
    return hashlib.sha256(pepper + value.encode()).hexdigest()


def scope(reg: Registrar) -> tuple[sql.Composable, list]:
    """SQL condition on `c` (wh.certificate) limiting it to the registrar's province or commune, and its params."""
    prov = sql.SQL("(CASE c.kind WHEN 'GCS' THEN c.record->>'MATINH_CU_TRU' ELSE c.record->>'MATINH_THUONGTRU' END)")
    comm = sql.SQL("(CASE c.kind WHEN 'GCS' THEN c.record->>'MAXA_CU_TRU' ELSE c.record->>'MAXA_THUONGTRU' END)")
    if reg.commune:
        return sql.SQL("{} = %s AND {} = %s").format(prov, comm), [reg.province, reg.commune]
    return sql.SQL("{} = %s").format(prov), [reg.province]


def exists(conn: psycopg.Connection, name: str) -> bool:
    return bool(conn.execute("SELECT to_regclass(%s) IS NOT NULL AS ok", (name,)).fetchone()["ok"])


def optional(
    conn: psycopg.Connection, table: str, certs: list[int] | None = None, communes: list[str] | None = None
) -> list[dict]:
    """Rows of another branch's table (DHIS2, disagreements) through wh.registrar_optional: [] when absent."""
    return [
        r["j"]
        for r in conn.execute(
            "SELECT j FROM wh.registrar_optional(%s::text, %s::bigint[], %s::text[]) AS j", (table, certs, communes)
        )
    ]


def jsonable(row: dict) -> dict:
    return json.loads(json.dumps(row, default=str, ensure_ascii=False))


CERT_COLUMNS = sql.SQL(
    "c.cert_id, c.kind, c.cert_key, c.facility_code, c.issued_on, c.status, c.version, "
    "c.created_at AS received_at, c.updated_at, c.used_at, c.registration, c.record"
)


def find(conn: psycopg.Connection, reg: Registrar, where: str, params: list) -> list[dict]:
    """Certificates matching `where` in the registrar's scope, with sources, disagreements and death details."""
    cond, sp = scope(reg)
    q = sql.SQL("SELECT {} FROM wh.certificate c WHERE ({}) AND {} ORDER BY c.issued_on DESC, c.cert_id").format(
        CERT_COLUMNS, sql.SQL(where), cond
    )
    rows = conn.execute(q, params + sp).fetchall()
    if not rows:
        return rows
    ids = [r["cert_id"] for r in rows]
    sources: dict[int, list] = {i: [] for i in ids}
    for s in conn.execute(
        "SELECT cert_id, source, source_ref, source_record_id, first_seen_at, last_seen_at "
        "FROM wh.certificate_source WHERE cert_id = ANY(%s) ORDER BY first_seen_at",
        (ids,),
    ):
        sources[s.pop("cert_id")].append(s)
    disagreements = None
    if exists(conn, "wh.source_disagreement"):
        disagreements = {i: [] for i in ids}
        for d in optional(conn, "source_disagreement", ids):
            disagreements[d.pop("cert_id")].append(d)
    deaths = [i for i, r in zip(ids, rows, strict=True) if r["kind"] == "GBT"]
    dhis2_ok = bool(deaths) and exists(conn, "wh.dhis2_death_event")
    events: dict[int, list] = {}
    for e in optional(conn, "dhis2_death_event", deaths) if dhis2_ok else []:
        events.setdefault(e["cert_id"], []).append(e)
    causes_ok = bool(deaths) and exists(conn, "wh.cause_of_death")
    causes: dict[int, list] = {}
    for m in optional(conn, "cause_of_death", deaths) if causes_ok else []:
        causes.setdefault(m["cert_id"], []).append(m)
    for r in rows:
        i = r["cert_id"]
        r["sources"] = sources[i]
        r["disagreements"] = disagreements[i] if disagreements is not None else None
        if r["kind"] == "GBT":
            r["cause_of_death"] = {
                "text": r["record"].get("NGUYENNHAN_TV"),
                "icd10": r["record"].get("BENH_ICD10_ID"),
                "by_source": causes.get(i, []) if causes_ok else None,
            }
            found = events.get(i, [])
            r["dhis2"] = (
                {"available": True, "match": found[0] if found else None, "events": found}
                if dhis2_ok
                else {"available": False, "note": MSG["no_dhis2"], "match": None, "events": []}
            )
    return rows
