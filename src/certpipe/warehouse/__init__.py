"""Certificate warehouse access: migrations, batches, landing, watermarks, connection lookup."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

WAREHOUSE_CONN_ID = "warehouse_db"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(dsn: str):
    """The alembic configuration of the warehouse; `dsn` is a postgresql:// URL or a libpq conninfo string."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["dsn"] = dsn  # read by migrations/env.py (no URL escaping, extras and quoting kept)
    return cfg


def migrate(dsn: str, revision: str = "head") -> None:
    """Apply the versioned migrations (alembic, one linear chain) up to `revision`."""
    from alembic import command

    command.upgrade(alembic_config(dsn), revision)


# libpq connection parameters an Airflow connection's extra may carry (sslmode, sslrootcert, options, ...)
LIBPQ_EXTRAS = frozenset(
    {
        "sslmode",
        "sslcert",
        "sslkey",
        "sslrootcert",
        "sslcrl",
        "sslpassword",
        "sslnegotiation",
        "sslcompression",
        "sslsni",
        "requiressl",
        "gssencmode",
        "krbsrvname",
        "target_session_attrs",
        "connect_timeout",
        "options",
        "application_name",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "channel_binding",
        "passfile",
        "service",
        "load_balance_hosts",
        "hostaddr",
        "require_auth",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
    }
)


def warehouse_dsn(conn_id: str = WAREHOUSE_CONN_ID) -> str:
    """The warehouse's libpq conninfo from its Airflow connection, through PostgresHook: host, port, login,
    password (quoted, whatever characters it holds), database (`schema`) and the libpq extras (e.g. sslmode)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from airflow.sdk.exceptions import AirflowNotFoundException
    from psycopg.conninfo import make_conninfo

    from certpipe.errors import ConfigError

    try:
        c = PostgresHook(postgres_conn_id=conn_id).connection
    except AirflowNotFoundException:
        raise ConfigError(f"warehouse: connection '{conn_id}' is not defined; create it") from None
    extra = c.extra_dejson or {}
    unknown = sorted(k for k in extra if k not in LIBPQ_EXTRAS and k not in PostgresHook.ignored_extra_options)
    if unknown:
        raise ConfigError(f"warehouse connection '{conn_id}': extra {', '.join(unknown)} is not a libpq parameter")
    params = {k: v for k, v in extra.items() if k in LIBPQ_EXTRAS}
    return make_conninfo(
        host=c.host or "127.0.0.1",
        port=c.port or 5432,
        user=c.login or None,
        password=c.password or None,
        dbname=c.schema or "postgres",
        **params,
    )


def one(conn: psycopg.Connection, query: str, params: Any = None) -> tuple[Any, ...]:
    """The one row a statement returns (an aggregate, INSERT ... RETURNING); LookupError when it returns none."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise LookupError("the statement returned no row")
    return row


def scalar(conn: psycopg.Connection, query: str, params: Any = None) -> Any:
    """The first column of the one row a statement returns (count(*), RETURNING id, ...)."""
    return one(conn, query, params)[0]


def connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, application_name="certpipe")


def create_batch(
    conn: psycopg.Connection,
    *,
    source: str,
    source_ref: str,
    kind: str,
    run_id: str | None = None,
    meta: dict | None = None,
) -> int:
    return scalar(
        conn,
        "INSERT INTO wh.ingest_batch (source, source_ref, kind, run_id, meta) VALUES (%s, %s, %s, %s, %s) "
        "RETURNING batch_id",
        (source, source_ref, kind, run_id, Jsonb(meta or {})),
    )


def _finite(doc: Any) -> Any:
    if isinstance(doc, float) and not math.isfinite(doc):
        return str(doc)  # "nan", "inf", "-inf": kept as what was received, in text
    if isinstance(doc, dict):
        return {k: _finite(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [_finite(v) for v in doc]
    return doc


def raw_json(doc: Any) -> str:
    """A raw record as JSON text that jsonb accepts, whatever it holds: NaN and infinities (JSON has none) become
    text, other non-JSON values (dates, decimals) their str()."""
    try:
        return json.dumps(doc, ensure_ascii=False, default=str, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(doc), ensure_ascii=False, default=str)


def land(conn: psycopg.Connection, batch_id: int, envelopes: Iterable[dict]) -> int:
    """Store raw records exactly as received: {"id", "updated_at", "record"} envelopes."""
    n = 0
    with conn.cursor().copy(
        "COPY wh.landing_record (batch_id, row_no, source_record_id, source_updated_at, payload) FROM STDIN"
    ) as copy:
        for n, env in enumerate(envelopes, start=1):
            copy.write_row(
                (
                    batch_id,
                    n,
                    env.get("id"),
                    env.get("updated_at"),
                    raw_json(env.get("record", env)),
                )
            )
    conn.execute("UPDATE wh.ingest_batch SET received = %s WHERE batch_id = %s", (n, batch_id))
    return n


def landed(conn: psycopg.Connection, batch_id: int) -> tuple[list[str | None], list[dict]]:
    rows = conn.execute(
        "SELECT source_record_id, payload FROM wh.landing_record WHERE batch_id = %s ORDER BY row_no", (batch_id,)
    ).fetchall()
    return [r[0] for r in rows], [r[1] for r in rows]


def batch_row(conn: psycopg.Connection, batch_id: int) -> dict:
    cur = conn.execute("SELECT * FROM wh.ingest_batch WHERE batch_id = %s", (batch_id,))
    names = [d.name for d in cur.description or ()]
    row = cur.fetchone()
    if row is None:
        raise LookupError(f"batch {batch_id} does not exist")
    return dict(zip(names, row, strict=True))


def outcomes(conn: psycopg.Connection, batch_id: int) -> Iterator[tuple]:
    """(row_no, source_record_id, cert_key, outcome, reasons) for every record of a batch."""
    yield from conn.execute(
        "SELECT row_no, source_record_id, cert_key, outcome, reasons FROM wh.batch_record "
        "WHERE batch_id = %s ORDER BY row_no",
        (batch_id,),
    )


def mark_batch(conn: psycopg.Connection, batch_id: int, status: str, meta: dict | None = None) -> None:
    column = {"acknowledged": ", acknowledged_at = now()", "ingested": ", ingested_at = now()"}.get(status, "")
    conn.execute(
        f"UPDATE wh.ingest_batch SET status = %s, meta = meta || %s{column} WHERE batch_id = %s",
        (status, Jsonb(meta or {}), batch_id),
    )


def get_watermark(conn: psycopg.Connection, source: str, source_ref: str, kind: str) -> dt.datetime | None:
    row = conn.execute(
        "SELECT watermark FROM wh.source_watermark WHERE source = %s AND source_ref = %s AND kind = %s",
        (source, source_ref, kind),
    ).fetchone()
    return row[0] if row else None


def set_watermark(
    conn: psycopg.Connection,
    source: str,
    source_ref: str,
    kind: str,
    watermark: dt.datetime,
    batch_id: int | None,
    *,
    zone: str | None = None,
) -> None:
    """Move the watermark forward only (a late or re-run batch never moves it back). `zone`: the time zone of the
    source's own timestamps (the watermark itself is an aware moment, stored in UTC)."""
    conn.execute(
        "INSERT INTO wh.source_watermark (source, source_ref, kind, watermark, batch_id, source_zone) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (source, source_ref, kind) DO UPDATE "
        "SET watermark = GREATEST(wh.source_watermark.watermark, EXCLUDED.watermark), "
        "batch_id = EXCLUDED.batch_id, source_zone = EXCLUDED.source_zone, updated_at = now()",
        (source, source_ref, kind, watermark, batch_id, zone),
    )
