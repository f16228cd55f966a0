"""Airflow connections of the dev tools and tests, built from database URLs."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit


def pg_connection(url: str, **fields: object) -> dict:
    """A `postgres` Airflow connection (the JSON form of AIRFLOW_CONN_* and `airflow connections import`) for a
    libpq URL; `fields` add or override keys (description, extra, password)."""
    u = urlsplit(url)
    return {
        "conn_type": "postgres",
        "host": u.hostname,
        "port": u.port,
        "login": unquote(u.username or ""),
        "password": unquote(u.password or ""),
        "schema": u.path.lstrip("/"),
        **fields,
    }
