"""Alembic environment for the certificate warehouse (schema `wh`). The DSN (URL or libpq conninfo) comes from
`certpipe.warehouse.alembic_config`; the connection is made by psycopg, so every libpq parameter is kept."""

import psycopg
from alembic import context
from sqlalchemy import create_engine, text

dsn = context.config.attributes["dsn"]
engine = create_engine(
    "postgresql+psycopg://", creator=lambda: psycopg.connect(dsn, application_name="certpipe-migrate")
)
with engine.connect() as connection:
    connection.execute(text("CREATE SCHEMA IF NOT EXISTS wh"))
    connection.commit()
    context.configure(connection=connection, version_table_schema="wh", transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
