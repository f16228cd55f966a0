"""Migrations: one linear chain with one head; warehouses on the old branch heads upgrade in place, keeping rows;
downgrade and upgrade round-trip to the same schema."""

import psycopg
from alembic import command
from alembic.script import ScriptDirectory

from certpipe import warehouse
from certpipe.core.ingest import ingest
from tests.core.records import birth, death

OLD_HEADS = ("0003", "0004", "0005", "0006", "0007", "0008")  # the feature branches warehouses may carry


def script() -> ScriptDirectory:
    return ScriptDirectory.from_config(warehouse.alembic_config("postgresql://unused"))


def test_one_head_and_a_linear_chain_after_the_merge():
    s = script()
    assert len(s.get_heads()) == 1, f"more than one head: {s.get_heads()}"
    revs = list(s.walk_revisions())  # head first
    after_merge = revs[: [r.revision for r in revs].index("0009") + 1]
    assert all(isinstance(r.down_revision, str) for r in after_merge[:-1]), "a revision after 0009 merges branches"
    assert set(script().get_revision("0009").down_revision) == set(OLD_HEADS)


def counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as c:
        tables = [
            r[0]
            for r in c.execute(
                "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'wh' "
                "AND tablename <> 'alembic_version' ORDER BY 1"
            )
        ]
        return {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def schema(dsn: str) -> set[tuple]:
    with psycopg.connect(dsn) as c:
        cols = set(
            c.execute(
                "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema IN ('wh', 'analyst')"
            ).fetchall()
        )
        funcs = set(
            c.execute(
                "SELECT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = "
                "p.pronamespace WHERE n.nspname IN ('wh', 'analyst')"
            ).fetchall()
        )
        return cols | funcs


def test_a_warehouse_on_the_old_heads_upgrades_in_place_and_keeps_every_row(pg_server):
    name = "certpipe_oldheads"
    pg_server.execute(f'DROP DATABASE IF EXISTS "{name}"')
    pg_server.execute(f'CREATE DATABASE "{name}"')
    dsn = pg_server.url_for(name)
    try:
        cfg = warehouse.alembic_config(dsn)
        for head in OLD_HEADS:  # as an existing warehouse: every feature branch applied, no merge yet
            command.upgrade(cfg, head)
        with psycopg.connect(dsn) as c:
            assert {r[0] for r in c.execute("SELECT version_num FROM wh.alembic_version")} == set(OLD_HEADS)
            for kind, records, ref in (
                ("GCS", [birth(i) for i in range(1, 6)], "01020"),
                ("GBT", [death(i) for i in range(1, 4)], "96025"),
            ):
                batch = warehouse.create_batch(c, source="his", source_ref=ref, kind=kind)
                c.commit()
                ingest(c, batch_id=batch, kind=kind, source="his", source_ref=ref, records=records)
            c.commit()
        before = counts(dsn)
        assert before["wh.certificate"] == 8 and before["wh.batch_record"] == 8
        warehouse.migrate(dsn)
        after = counts(dsn)
        assert {t: n for t, n in after.items() if t in before} == before
        with psycopg.connect(dsn) as c:
            heads = [r[0] for r in c.execute("SELECT version_num FROM wh.alembic_version")]
        assert heads == list(script().get_heads())
    finally:
        pg_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_downgrade_to_the_base_and_upgrade_again_gives_the_same_schema(pg_server):
    name = "certpipe_roundtrip"
    pg_server.execute(f'DROP DATABASE IF EXISTS "{name}"')
    pg_server.execute(f'CREATE DATABASE "{name}"')
    dsn = pg_server.url_for(name)
    try:
        warehouse.migrate(dsn)
        first = schema(dsn)
        cfg = warehouse.alembic_config(dsn)
        command.downgrade(cfg, "base")
        left = {s[1] for s in schema(dsn) if s[0] == "wh" and len(s) == 4}
        assert left == {"alembic_version"}  # every table of the warehouse is gone, only alembic's own is left
        warehouse.migrate(dsn)
        assert schema(dsn) == first
    finally:
        pg_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
