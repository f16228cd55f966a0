"""Alembic environment for the certificate warehouse (schema `wh`)."""

from alembic import context
from sqlalchemy import create_engine, text

url = context.config.get_main_option("sqlalchemy.url")
engine = create_engine(url)
with engine.connect() as connection:
    connection.execute(text("CREATE SCHEMA IF NOT EXISTS wh"))
    connection.commit()
    context.configure(connection=connection, version_table_schema="wh", transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
