"""The same certificate from HIS and BHXH: one warehouse record, both sources in its provenance, and any
disagreement recorded (which fields, both versions' hashes and pointers), never silently overwritten."""

from certpipe import warehouse
from certpipe.core.ingest import ingest
from certpipe.sources.bhxh.pull import ingest_window, pull_window
from tests.sources.bhxh.conftest import CLIENT, WINDOWS, load, window_data


def his(conn, records):
    batch = warehouse.create_batch(conn, source="his", source_ref="01020", kind="GCS")
    conn.commit()
    return ingest(conn, batch_id=batch, kind="GCS", source="his", source_ref="01020", records=records)


def test_his_and_bhxh_versions_of_one_certificate(bhxh, wh, warehouse_dsn):
    data = window_data()
    items = [
        e
        for e in data["GCS"]["items"]
        if e["id"] not in data["GCS"]["expected"]
        and e["record"]["MA_CSKCB"] == "01020"
        and data["GCS"]["window"][e["id"]] == 0
    ][:3]
    same, differs, used = (dict(e["record"]) for e in items)
    his(wh, [same, differs, used])
    wh.execute("UPDATE wh.certificate SET status = 'used', used_at = now() WHERE cert_key = %s", (used["MA_GCS"],))
    wh.commit()
    hashes = dict(wh.execute("SELECT cert_key, content_hash FROM wh.certificate"))

    sent = [
        items[0],
        {**items[1], "record": {**differs, "GHI_CHU": "BHXH: đã bổ sung", "CAN_NANG_CON": "3050"}},
        {**items[2], "record": {**used, "TINH_TRANG_CON": "Yếu"}},
    ]
    load(bhxh, "GCS", sent)
    start, end = WINDOWS[0]
    result = ingest_window(pull_window("01", "GCS", start, end, warehouse_dsn, client=CLIENT), warehouse_dsn)
    assert (result["unchanged"], result["updated"], result["refused"], result["disagreements"]) == (1, 1, 1, 2)
    assert result["refusals_by_rule"] == {"ALREADY_USED": 1}

    # one record per certificate, both sources in the provenance
    assert wh.execute("SELECT count(*) FROM wh.certificate").fetchone()[0] == 3
    prov = wh.execute(
        "SELECT c.cert_key, array_agg(s.source ORDER BY s.source) FROM wh.certificate c "
        "JOIN wh.certificate_source s USING (cert_id) GROUP BY 1"
    ).fetchall()
    assert dict(prov) == {same["MA_GCS"]: ["bhxh", "his"], differs["MA_GCS"]: ["bhxh", "his"], used["MA_GCS"]: ["his"]}

    rows = {
        r[0]: r[1:]
        for r in wh.execute(
            "SELECT cert_key, fields, source_a, version_a, source_b, source_ref_b, outcome, hash_a, hash_b, row_no "
            "FROM wh.source_disagreement_view"
        )
    }
    assert set(rows) == {differs["MA_GCS"], used["MA_GCS"]}
    # the latest valid version wins (rule 3); the HIS version stays in the history, pointed at by version_a
    fields, src_a, ver_a, src_b, ref_b, outcome, hash_a, hash_b, row_no = rows[differs["MA_GCS"]]
    assert (fields, src_a, ver_a, src_b, ref_b, outcome) == (
        ["CAN_NANG_CON", "GHI_CHU"],
        "his",
        1,
        "bhxh",
        "01",
        "updated",
    )
    cur = wh.execute(
        "SELECT record->>'GHI_CHU', content_hash, last_source FROM wh.certificate WHERE cert_key = %s",
        (differs["MA_GCS"],),
    ).fetchone()
    assert cur[0] == "BHXH: đã bổ sung" and cur[1].hex() == hash_b and cur[2] == "bhxh"
    old = wh.execute(
        "SELECT v.source, v.content_hash, v.record->>'GHI_CHU' FROM wh.certificate_version v "
        "JOIN wh.certificate c USING (cert_id) WHERE c.cert_key = %s AND v.version = %s",
        (differs["MA_GCS"], ver_a),
    ).fetchone()
    assert old[0] == "his" and old[1] == hashes[differs["MA_GCS"]] and old[1].hex() == hash_a
    landed = wh.execute(
        "SELECT payload->>'GHI_CHU' FROM wh.landing_record WHERE batch_id = %s AND row_no = %s",
        (result["batch_id"], row_no),
    ).fetchone()
    assert landed == ("BHXH: đã bổ sung",)  # the pointer to BHXH's raw version
    # a used certificate keeps its version (rule 4); the disagreement is still visible
    fields, src_a, *_, outcome, hash_a, hash_b, _ = rows[used["MA_GCS"]]
    assert (fields, src_a, outcome) == (["TINH_TRANG_CON"], "his", "refused")
    assert wh.execute(
        "SELECT record->>'TINH_TRANG_CON', version FROM wh.certificate WHERE cert_key = %s", (used["MA_GCS"],)
    ).fetchone() == (used["TINH_TRANG_CON"], 1)

    # pulling the same window again records nothing new
    again = ingest_window(pull_window("01", "GCS", start, end, warehouse_dsn, client=CLIENT), warehouse_dsn)
    assert again["disagreements"] == 1  # the used certificate is still refused, and says so
    assert wh.execute("SELECT count(*) FROM wh.source_disagreement WHERE outcome = 'updated'").fetchone()[0] == 1


def test_same_source_corrections_are_not_disagreements(wh):
    from tests.core.records import birth

    his(wh, [birth(1)])
    his(wh, [birth(1, CAN_NANG_CON=3300)])
    assert wh.execute("SELECT count(*) FROM wh.source_disagreement").fetchone()[0] == 0
