"""The summaries behind the data-quality page (migration 0015) stay equal to what wh holds, whatever happens to
batches: ingested, acknowledged, failed, retried, deleted; and a rebuild gives the same."""

from certpipe import warehouse
from certpipe.core.ingest import ingest
from tests.core.records import birth, death

TABLES = ("daily", "daily_rule", "daily_field")


def run(conn, records, kind="GCS", source="his", ref="01020"):
    batch = warehouse.create_batch(conn, source=source, source_ref=ref, kind=kind, run_id="manual__1")
    conn.commit()
    result = ingest(conn, batch_id=batch, kind=kind, source=source, source_ref=ref, records=records)
    conn.commit()
    return result


def direct(conn) -> dict:
    """The same figures computed from wh by hand."""
    daily = conn.execute(
        "SELECT wh.vn_date(created_at), source, source_ref, kind, "
        "count(*) FILTER (WHERE status IN ('ingested', 'acknowledged')), count(*) FILTER (WHERE status = 'failed'), "
        "sum(received) FILTER (WHERE status IN ('ingested', 'acknowledged')), "
        "sum(stored) FILTER (WHERE status IN ('ingested', 'acknowledged')), "
        "sum(refused) FILTER (WHERE status IN ('ingested', 'acknowledged')) "
        "FROM wh.ingest_batch WHERE status <> 'landed' GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
    ).fetchall()
    rules = conn.execute(
        "SELECT e.key, sum(e.value::int) FROM wh.ingest_batch b, jsonb_each_text(b.refusals_by_rule) e "
        "WHERE status IN ('ingested', 'acknowledged') GROUP BY 1 ORDER BY 1"
    ).fetchall()
    fields = conn.execute(
        "SELECT e->>'code', e->>'field', count(DISTINCT (r.batch_id, r.row_no)) FROM wh.batch_record r, "
        "jsonb_array_elements(r.reasons) e WHERE r.outcome = 'refused' GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    return {"daily": daily, "rules": rules, "fields": fields}


def summarised(conn) -> dict:
    daily = conn.execute(
        "SELECT day, source, source_ref, kind, batches, failed, "
        "CASE WHEN batches > 0 THEN received END, CASE WHEN batches > 0 THEN stored END, "
        "CASE WHEN batches > 0 THEN refused END FROM quality.daily "
        "WHERE batches <> 0 OR failed <> 0 ORDER BY 1, 2, 3, 4"
    ).fetchall()
    rules = conn.execute(
        "SELECT rule, sum(records) FROM quality.daily_rule GROUP BY 1 HAVING sum(records) <> 0 ORDER BY 1"
    ).fetchall()
    fields = conn.execute(
        "SELECT rule, NULLIF(field, ''), sum(records) FROM quality.daily_field GROUP BY 1, 2 "
        "HAVING sum(records) <> 0 ORDER BY 1, 2"
    ).fetchall()
    return {"daily": daily, "rules": rules, "fields": fields}


def test_summaries_follow_every_batch_event_and_match_a_rebuild(wh):
    bad_weight = birth(2, CAN_NANG_CON=45000)
    bad_two = birth(3, SO_CCCD_NND="001095012345", NGAY_CT="20250231")
    r1 = run(wh, [birth(1), bad_weight, bad_two])
    assert (r1.stored, r1.refused) == (1, 2)
    run(wh, [death(1), death(2, NGAY_TV="20990101")], kind="GBT", ref="96025")
    run(wh, [birth(1), birth(4)], source="excel", ref="79034")
    assert summarised(wh) == direct(wh)
    fields = {(r, f): n for r, f, n in summarised(wh)["fields"]}
    assert fields[("WEIGHT_RANGE", "CAN_NANG_CON")] == 1

    # acknowledged: same counts; landed only: nothing; failed: a failed batch, no counts
    warehouse.mark_batch(wh, r1.batch_id, "acknowledged")
    landed = warehouse.create_batch(wh, source="his", source_ref="01020", kind="GCS")
    warehouse.land(wh, landed, [{"id": "x", "record": birth(9)}])
    failed = warehouse.create_batch(wh, source="his", source_ref="01020", kind="GCS")
    warehouse.mark_batch(wh, failed, "failed")
    wh.commit()
    got = summarised(wh)
    assert got == direct(wh)
    assert [(r[4], r[5]) for r in got["daily"] if r[1:4] == ("his", "01020", "GCS")] == [(1, 1)]

    # a failed batch ingested on retry moves from failed to ingested
    wh.execute("UPDATE wh.ingest_batch SET status = 'landed' WHERE batch_id = %s", (failed,))
    warehouse.land(wh, failed, [{"id": "y", "record": birth(5, CAN_NANG_CON=45000)}])
    ids, payloads = warehouse.landed(wh, failed)
    ingest(wh, batch_id=failed, kind="GCS", source="his", source_ref="01020", records=payloads, record_ids=ids)
    wh.commit()
    assert summarised(wh) == direct(wh)

    # deleting a batch takes its counts and reasons back
    wh.execute("DELETE FROM wh.ingest_batch WHERE batch_id = %s", (r1.batch_id,))
    wh.commit()
    assert summarised(wh) == direct(wh)

    before = {t: wh.execute(f"SELECT * FROM quality.{t} ORDER BY 1, 2, 3, 4, 5").fetchall() for t in TABLES}
    wh.execute("SELECT quality.rebuild()")
    after = {t: wh.execute(f"SELECT * FROM quality.{t} ORDER BY 1, 2, 3, 4, 5").fetchall() for t in TABLES}
    nonzero = {t: [r for r in rows if any(v for v in r[4:] if isinstance(v, int))] for t, rows in before.items()}
    assert nonzero == after


def test_day_is_vietnam_day_of_the_batch(wh):
    """A batch received at 17:30 UTC belongs to the next day in Vietnam."""
    batch = warehouse.create_batch(wh, source="his", source_ref="01020", kind="GCS")
    wh.execute("UPDATE wh.ingest_batch SET created_at = '2026-11-20 17:30+00' WHERE batch_id = %s", (batch,))
    warehouse.land(wh, batch, [{"id": "a", "record": birth(1)}])
    ids, payloads = warehouse.landed(wh, batch)
    ingest(wh, batch_id=batch, kind="GCS", source="his", source_ref="01020", records=payloads, record_ids=ids)
    wh.commit()
    assert wh.execute("SELECT day::text, received FROM quality.daily").fetchall() == [("2026-11-21", 1)]


def test_a_login_that_may_only_write_batches_keeps_the_summaries_and_cannot_forge_them(wh, warehouse_dsn):
    import psycopg
    import pytest

    role = f"cp_writer_{abs(hash(warehouse_dsn)) % 10**8}"
    wh.execute(f"CREATE ROLE {role} NOLOGIN")
    try:
        wh.execute(f"GRANT USAGE ON SCHEMA wh TO {role}")
        wh.execute(f"GRANT SELECT, INSERT, UPDATE ON wh.ingest_batch TO {role}")
        wh.execute(f"GRANT INSERT ON wh.batch_record TO {role}")
        wh.execute(f"GRANT USAGE ON SEQUENCE wh.ingest_batch_batch_id_seq TO {role}")
        wh.commit()
        wh.execute(f"SET ROLE {role}")
        batch = warehouse.create_batch(wh, source="his", source_ref="01020", kind="GCS")
        wh.execute(
            "INSERT INTO wh.batch_record (batch_id, row_no, outcome, reasons) VALUES (%s, 1, 'refused', "
            '\'[{"field": "SO", "code": "REQUIRED", "message": "-"}]\')',
            (batch,),
        )
        wh.execute(
            "UPDATE wh.ingest_batch SET status = 'ingested', received = 1, refused = 1, "
            "refusals_by_rule = '{\"REQUIRED\": 1}' WHERE batch_id = %s",
            (batch,),
        )
        wh.commit()
        for forged in ("INSERT INTO quality.daily VALUES (now()::date, 'his', 'x', 'GCS')", "SELECT quality.rebuild()"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                wh.execute(forged)
            wh.rollback()
            wh.execute(f"SET ROLE {role}")
        wh.execute("RESET ROLE")
        assert wh.execute("SELECT received, refused FROM quality.daily").fetchall() == [(1, 1)]
        assert wh.execute("SELECT rule, field, records FROM quality.daily_field").fetchall() == [("REQUIRED", "SO", 1)]
    finally:
        wh.rollback()
        wh.execute("RESET ROLE")
        wh.execute(f"DROP OWNED BY {role}")
        wh.execute(f"DROP ROLE {role}")
        wh.commit()
