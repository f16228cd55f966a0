"""The warehouse DSN comes from one Airflow connection through PostgresHook: extras kept, passwords quoted."""

import json

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from certpipe import warehouse
from certpipe.errors import ConfigError


def test_password_with_any_character_and_libpq_extras_survive(pg_server, warehouse_dsn, monkeypatch):
    target = conninfo_to_dict(warehouse_dsn)
    password = "p@ss w/rd:'\"%;=x"
    # a login of its own with that password (the server checks passwords: scram-sha-256, no trust)
    with psycopg.connect(warehouse_dsn, autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_roles WHERE rolname = 'certpipe_dsn_test'").fetchone():
            c.execute("CREATE ROLE certpipe_dsn_test LOGIN")
        c.execute(sql.SQL("ALTER ROLE certpipe_dsn_test PASSWORD {}").format(sql.Literal(password)))
        c.execute("GRANT USAGE ON SCHEMA wh TO certpipe_dsn_test")  # this test's database only
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAREHOUSE_DB",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": target["host"],
                "port": int(target["port"]),
                "login": "certpipe_dsn_test",
                "password": password,
                "schema": target["dbname"],
                "extra": {"sslmode": "disable", "application_name": "certpipe-test", "connect_timeout": "5"},
            }
        ),
    )
    dsn = warehouse.warehouse_dsn()
    parts = conninfo_to_dict(dsn)
    assert parts["password"] == password and parts["sslmode"] == "disable" and parts["dbname"] == target["dbname"]
    with psycopg.connect(dsn) as c:  # the server takes it as it is
        assert c.execute("SELECT current_setting('application_name')").fetchone()[0] == "certpipe-test"
        assert c.execute("SELECT wh.vn_today() IS NOT NULL").fetchone()[0]


def test_an_extra_that_is_not_a_libpq_parameter_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAREHOUSE_DB",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": "db",
                "login": "u",
                "password": "secret-x",
                "extra": {"sslmod": "require"},
            }
        ),
    )
    with pytest.raises(ConfigError, match="warehouse connection 'warehouse_db': extra sslmod") as e:
        warehouse.warehouse_dsn()
    assert "secret-x" not in str(e.value)
    with pytest.raises(ConfigError, match="'nowhere' is not defined"):
        warehouse.warehouse_dsn("nowhere")
