"""The ingestion core against a real PostgreSQL: the five warehouse rules, bookkeeping, provenance."""

import unicodedata

import pytest

from certpipe import warehouse
from certpipe.core.ingest import ingest
from certpipe.core.stream import ingest_stream
from tests.core.records import birth, death


def run(conn, records, kind="GCS", source="his", ref="01020", ids=None):
    batch = warehouse.create_batch(conn, source=source, source_ref=ref, kind=kind)
    conn.commit()
    return ingest(conn, batch_id=batch, kind=kind, source=source, source_ref=ref, records=records, record_ids=ids)


def outcomes(conn, batch_id):
    return [(o, [r["code"] for r in (rs or [])]) for _, _, _, o, rs in warehouse.outcomes(conn, batch_id)]


def test_rule2_new_valid_records_are_stored(wh):
    r = run(wh, [birth(1), birth(2)], ids=["a", "b"])
    assert (r.received, r.stored, r.refused) == (2, 2, 0)
    rows = wh.execute(
        "SELECT cert_key, status, version, facility_code, issued_on::text, person_id "
        "FROM wh.certificate ORDER BY cert_key"
    ).fetchall()
    assert rows[0] == ("00001.GCS.01020.25", "received", 1, "01020", "2025-11-10", "001195012345")
    src = wh.execute("SELECT source, source_ref, source_record_id FROM wh.certificate_source ORDER BY 3").fetchall()
    assert src == [("his", "01020", "a"), ("his", "01020", "b")]


def test_rule1_invalid_record_refused_with_reasons_and_good_ones_still_stored(wh):
    bad = birth(2, SO_CCCD_NND="001095012345", CAN_NANG_CON=45000, NGAY_CT="20250231")
    r = run(wh, [birth(1), bad, birth(3)])
    assert (r.stored, r.refused) == (2, 1)
    assert r.refusals_by_rule == {"CCCD_SEX": 1, "DATE_INVALID": 1, "WEIGHT_RANGE": 1}
    _, _, _key, outcome, reasons = list(warehouse.outcomes(wh, r.batch_id))[1]
    assert outcome == "refused"
    assert {(x["field"], x["code"]) for x in reasons} == {
        ("SO_CCCD_NND", "CCCD_SEX"),
        ("CAN_NANG_CON", "WEIGHT_RANGE"),
        ("NGAY_CT", "DATE_INVALID"),
    }
    assert all(x["message"] and "001095012345" not in x["message"] for x in reasons)
    # the refused record is kept as received, to be returned and corrected
    payload = wh.execute("SELECT payload FROM wh.refused_record WHERE batch_id = %s", (r.batch_id,)).fetchone()[0]
    assert payload["CAN_NANG_CON"] == 45000
    assert wh.execute("SELECT count(*) FROM wh.certificate").fetchone()[0] == 2


def test_rule3_known_unused_record_is_updated_and_history_kept(wh):
    run(wh, [birth(1)])
    r = run(wh, [birth(1, CAN_NANG_CON=3300)])
    assert (r.updated, r.stored) == (1, 0)
    cur = wh.execute("SELECT version, record->>'CAN_NANG_CON' FROM wh.certificate").fetchone()
    assert cur == (2, "3300")
    hist = wh.execute("SELECT version, record->>'CAN_NANG_CON' FROM wh.certificate_version").fetchall()
    assert hist == [(1, "3200")]


def test_rule4_used_certificate_refuses_changes(wh):
    run(wh, [birth(1)])
    wh.execute("UPDATE wh.certificate SET status = 'used', used_at = now()")
    wh.commit()
    r = run(wh, [birth(1, CAN_NANG_CON=3300)])
    assert (r.refused, r.updated) == (1, 0)
    assert r.refusals_by_rule == {"ALREADY_USED": 1}
    assert outcomes(wh, r.batch_id) == [("refused", ["ALREADY_USED"])]
    assert wh.execute("SELECT version, record->>'CAN_NANG_CON' FROM wh.certificate").fetchone() == (1, "3200")


def test_rule5_identical_record_changes_nothing(wh):
    first = run(wh, [birth(1), birth(2)])
    before = wh.execute("SELECT cert_id, version, updated_at FROM wh.certificate ORDER BY 1").fetchall()
    r = run(wh, [birth(2), birth(1)])
    assert (r.unchanged, r.stored, r.updated) == (2, 0, 0)
    assert wh.execute("SELECT cert_id, version, updated_at FROM wh.certificate ORDER BY 1").fetchall() == before
    assert wh.execute("SELECT count(*) FROM wh.certificate_version").fetchone()[0] == 0
    assert first.batch_id != r.batch_id


def test_batch_bookkeeping_counts_every_outcome(wh):
    run(wh, [birth(1), birth(2)])
    wh.execute("UPDATE wh.certificate SET status = 'used' WHERE cert_key LIKE '00002%'")
    wh.commit()
    r = run(wh, [birth(1), birth(2, TEN_CON="Khác"), birth(3), birth(4, GIOI_TINH_CON=5), birth(5, CAN_NANG_CON=3100)])
    row = warehouse.batch_row(wh, r.batch_id)
    assert (row["received"], row["stored"], row["updated"], row["unchanged"], row["refused"]) == (5, 2, 0, 1, 2)
    assert row["refusals_by_rule"] == {"ALREADY_USED": 1, "SEX_CODE": 1}
    assert row["status"] == "ingested"


def test_duplicates_within_a_batch(wh):
    r = run(wh, [birth(1), birth(1), birth(2, CAN_NANG_CON=3000), birth(2, CAN_NANG_CON=3100)])
    assert outcomes(wh, r.batch_id) == [
        ("unchanged", []),
        ("stored", []),
        ("refused", ["DUPLICATE_IN_BATCH"]),
        ("stored", []),
    ]
    assert wh.execute("SELECT record->>'CAN_NANG_CON' FROM wh.certificate WHERE cert_key LIKE '00002%'").fetchone() == (
        "3100",
    )


def test_same_certificate_from_two_sources_is_one_record_with_both_in_provenance(wh):
    run(wh, [birth(1)], source="his", ref="01020")
    r = run(wh, [birth(1)], source="bhxh", ref="window")
    assert r.unchanged == 1
    assert wh.execute("SELECT count(*) FROM wh.certificate").fetchone()[0] == 1
    assert [s for (s,) in wh.execute("SELECT source FROM wh.certificate_source ORDER BY 1")] == ["bhxh", "his"]


def test_normalisation_nfc_codes_and_dates(wh):
    raw = birth(
        1,
        HOTEN_NND=unicodedata.normalize("NFD", "  Nguyễn   Thị Lan "),
        MA_DANTOC_NND=1,
        MATINH_CU_TRU=1,
        MAXA_CU_TRU=4,
        SO_CCCD_NND=1195012345,
        NGAY_CT="10/11/2025",
        NGAY_SINH_CON="2025-11-09T08:30:00",
        MA_QUOCTICH_NND="vn",
        CAN_NANG_CON="3200",
    )
    r = run(wh, [raw])
    assert r.stored == 1, r.refusals_by_rule
    rec = wh.execute("SELECT record FROM wh.certificate").fetchone()[0]
    assert rec["HOTEN_NND"] == "Nguyễn Thị Lan" and unicodedata.is_normalized("NFC", rec["HOTEN_NND"])
    assert (rec["MA_DANTOC_NND"], rec["MATINH_CU_TRU"], rec["MAXA_CU_TRU"]) == ("01", "01", "00004")
    assert rec["SO_CCCD_NND"] == "001195012345"
    assert (rec["NGAY_CT"], rec["NGAY_SINH_CON"], rec["MA_QUOCTICH_NND"]) == ("20251110", "202511090830", "704")
    # the same certificate written the canonical way is identical (rule 5)
    assert run(wh, [birth(1)]).unchanged == 1


def test_xml9_record_without_certificate_number_is_keyed_by_facility_book_number_date(wh):
    rec = birth(7, HO_TEN_NND="Đỗ Thị Hạnh")
    del rec["MA_GCS"], rec["HOTEN_NND"]
    r = run(wh, [rec])
    assert r.stored == 1
    assert wh.execute("SELECT cert_key FROM wh.certificate").fetchone()[0] == "XML9:01020:01/2025:7:20251110"


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"SO_CCCD_NND": "00119501234"}, "ID_FORMAT"),
        ({"SO_CCCD_NND": "001199012345"}, "CCCD_YEAR"),
        ({"SO_CCCD_NND": "999195012345"}, "CCCD_PROVINCE"),
        ({"NGAY_SINH_CON": "203011090830", "NGAY_CT": "20301110", "MA_GCS": "00001.GCS.01020.30"}, "DATE_FUTURE"),
        ({"NGAY_SINH_CON": "202511120830"}, "DATE_ORDER"),
        ({"NGAYSINH_NND": "20200101", "SO_CCCD_NND": "001320012345"}, "DATE_ORDER"),
        ({"MA_DANTOC_NND": "77"}, "ETHNICITY_CODE"),
        ({"MA_QUOCTICH_NND": "XX"}, "NATIONALITY_CODE"),
        ({"MAXA_CU_TRU": "26740"}, "COMMUNE_PROVINCE"),
        ({"MATINH_CU_TRU": "74", "MAXA_CU_TRU": "25747"}, "PROVINCE_CODE"),
        ({"MA_GCS": "00001.GCS.01021.25"}, "CERT_FACILITY"),
        ({"MA_GCS": "00001.GCS.01020.24"}, "CERT_YEAR"),
        ({"MA_GCS": "1.GCS.01020.25"}, "CERT_FORMAT"),
        ({"HOTEN_NND": None}, "REQUIRED"),
        ({"NGAY_SINH_CON": "20251109"}, "DATETIME_INVALID"),
        ({"SINHCON_PHAUTHUAT": 2}, "FLAG_VALUE"),
    ],
)
def test_birth_rules(wh, over, code):
    r = run(wh, [birth(1, **over)])
    assert r.refused == 1 and code in r.refusals_by_rule, r.refusals_by_rule


def test_old_codes_valid_before_reform_new_codes_after(wh):
    old = birth(
        1,
        NGAY_CT="20250520",
        NGAY_SINH_CON="202505190700",
        MA_GCS="00001.GCS.01020.25",
        MATINH_CU_TRU="74",
        MAXA_CU_TRU="25747",
    )  # Bình Dương, before 1 July 2025
    r = run(wh, [old])
    assert r.stored == 1, r.refusals_by_rule


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"SO_GIAYTO": "096148001234"}, "CCCD_SEX"),
        ({"NGAY_TV": "194701010000"}, "DATE_ORDER"),
        ({"NGAYGIO_VV": "202511040000"}, "DATE_ORDER"),
        ({"BENH_ICD10_ID": "J12.82"}, "ICD10_CODE"),
        ({"MA_GBT": "00001.GBT.96025.24"}, "CERT_YEAR"),
    ],
)
def test_death_rules(wh, over, code):
    r = run(wh, [death(1, **over)], kind="GBT", ref="96025")
    assert r.refused == 1 and code in r.refusals_by_rule, r.refusals_by_rule


def test_valid_death_notice_is_stored(wh):
    r = run(wh, [death(1), death(2, BENH_ICD10_ID="R54", NGUYENNHAN_TV="Suy kiệt tuổi già")], kind="GBT", ref="96025")
    assert r.stored == 2, r.refusals_by_rule


def test_resent_batch_with_two_versions_keeps_the_latest(wh):
    v1, v2 = birth(1, CAN_NANG_CON=3000), birth(1, CAN_NANG_CON=3100)
    first = run(wh, [v1, v2])
    assert outcomes(wh, first.batch_id) == [("refused", ["DUPLICATE_IN_BATCH"]), ("stored", [])]
    again = run(wh, [v1, v2])  # an overlap window sends both versions again
    assert outcomes(wh, again.batch_id) == [("refused", ["DUPLICATE_IN_BATCH"]), ("unchanged", [])]
    assert wh.execute("SELECT version, record->>'CAN_NANG_CON' FROM wh.certificate").fetchone() == (1, "3100")
    later = run(wh, [v2, v1])  # a real change after the re-send wins
    assert (later.updated, later.refused) == (1, 1)
    assert wh.execute("SELECT record->>'CAN_NANG_CON' FROM wh.certificate").fetchone() == ("3000",)


def test_stream_of_batches_applies_in_order_with_the_same_rules(wh, warehouse_dsn):
    """A backfill: each batch is its own batch and transaction; a later batch sees what earlier ones stored."""
    batches = [
        ([birth(1), birth(2)], ["a", "b"], {"part": 1}),
        ([birth(2, CAN_NANG_CON=3300), birth(3, GIOI_TINH_CON="9")], None, {"part": 2}),
        ([birth(1), birth(2, CAN_NANG_CON=3300)], None, {"part": 3}),
    ]
    results = list(ingest_stream(warehouse_dsn, iter(batches), kind="GCS", source="his", source_ref="01020"))
    assert [(r.stored, r.updated, r.unchanged, r.refused) for r in results] == [
        (2, 0, 0, 0),
        (0, 1, 0, 1),
        (0, 0, 2, 0),
    ]
    assert results[1].refusals_by_rule == {"SEX_CODE": 1}
    rows = wh.execute("SELECT meta->>'part', status, received FROM wh.ingest_batch ORDER BY batch_id").fetchall()
    assert rows == [("1", "ingested", 2), ("2", "ingested", 2), ("3", "ingested", 2)]
    assert wh.execute(
        "SELECT version, record->>'CAN_NANG_CON' FROM wh.certificate WHERE cert_key LIKE '00002.%'"
    ).fetchone() == (2, "3300")


def test_stream_gives_batch_by_batch_outcomes_when_a_record_is_re_sent_after_a_change_still_in_flight(
    wh, warehouse_dsn
):
    """The look-up of re-sent records runs ahead of the batches being applied: a record this source sent before
    (found re-sent) whose certificate an uncommitted batch changes must still be compared with what that batch
    stores, not taken as unchanged."""
    v1, v2 = birth(1, CAN_NANG_CON=3000), birth(1, CAN_NANG_CON=3100)
    run(wh, [v1, birth(2)])  # the source sent v1 before: its raw hash is known
    wh.commit()
    batches = [([v2, birth(2)], None, {}), ([v1, birth(2)], None, {}), ([v1], None, {}), ([v2], None, {})]
    results = list(ingest_stream(warehouse_dsn, iter(batches), kind="GCS", source="his", source_ref="01020"))
    assert [(r.updated, r.unchanged) for r in results] == [(1, 1), (1, 1), (0, 1), (1, 0)]
    assert wh.execute(
        "SELECT version, record->>'CAN_NANG_CON' FROM wh.certificate WHERE cert_key LIKE '00001.%'"
    ).fetchone() == (4, "3100")


def test_stream_failure_marks_the_unapplied_batches_failed_and_keeps_the_applied_ones(wh, warehouse_dsn):
    def batches():
        yield [birth(1)], None, {}
        yield [birth(2)], None, {}
        raise RuntimeError("source went away")

    with pytest.raises(RuntimeError, match="source went away"):
        for _ in ingest_stream(warehouse_dsn, batches(), kind="GCS", source="his", source_ref="01020"):
            pass
    assert wh.execute("SELECT status FROM wh.ingest_batch ORDER BY batch_id").fetchall() == [
        ("ingested",),
        ("ingested",),
    ]
    assert wh.execute("SELECT count(*) FROM wh.certificate").fetchone()[0] == 2

    wh.execute("ALTER TABLE wh.certificate ADD CONSTRAINT no_three CHECK (cert_key NOT LIKE '00003.%')")
    wh.commit()
    with pytest.raises(Exception, match="no_three"):
        list(
            ingest_stream(
                warehouse_dsn,
                iter([([birth(3)], None, {}), ([birth(4)], None, {})]),
                kind="GCS",
                source="his",
                source_ref="01020",
            )
        )
    assert wh.execute("SELECT status FROM wh.ingest_batch ORDER BY batch_id").fetchall()[2:] == [
        ("failed",),
        ("failed",),
    ]
    assert wh.execute("SELECT count(*) FROM wh.certificate").fetchone()[0] == 2


def test_provenance_and_outcomes_keep_their_parents(wh):
    """The set-based integrity triggers (migration 0008) hold what the row-level foreign keys held."""
    import psycopg

    r = run(wh, [birth(1)])
    wh.commit()
    cert_id = wh.execute("SELECT cert_id FROM wh.certificate").fetchone()[0]
    for sql in (
        "INSERT INTO wh.certificate_source (cert_id, source, source_ref, content_hash, first_batch_id, "
        "last_batch_id) VALUES (-1, 'his', 'x', '\\x00', 1, 1)",
        "INSERT INTO wh.batch_record (batch_id, row_no, outcome) VALUES (-1, 1, 'stored')",
        "UPDATE wh.certificate_source SET cert_id = -1",
    ):
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            wh.execute(sql)
        wh.rollback()
    wh.execute("DELETE FROM wh.ingest_batch WHERE batch_id = %s", (r.batch_id,))
    assert wh.execute("SELECT count(*) FROM wh.batch_record").fetchone()[0] == 0
    wh.execute("DELETE FROM wh.certificate WHERE cert_id = %s", (cert_id,))
    assert wh.execute("SELECT count(*) FROM wh.certificate_source").fetchone()[0] == 0


def test_numbers_json_cannot_hold_or_no_field_needs_are_refused_and_kept_never_a_crash(wh):
    import math

    odd = [
        birth(1, CAN_NANG_CON=math.nan),
        birth(2, CAN_NANG_CON=10**400),
        birth(3, SO_CON=math.inf),
        birth(4, SO_CON="9" * 30),
        birth(5),
    ]
    r = run(wh, odd)
    got = outcomes(wh, r.batch_id)
    assert [o for o, _ in got] == ["refused"] * 4 + ["stored"]
    assert all(set(codes) <= {"REQUIRED", "INT_FORMAT"} and codes for _, codes in got[:4])
    kept = wh.execute("SELECT payload->>'CAN_NANG_CON', payload->>'SO_CON' FROM wh.refused_record ORDER BY row_no")
    assert kept.fetchall() == [("nan", "1"), ("1" + "0" * 400, "1"), ("3200", "inf"), ("3200", "9" * 30)]


def test_record_ids_and_records_come_back_exactly_whatever_their_characters(wh):
    """The COPY dialect (tab between fields, \\x01 as the quote) and records sent with their keys in jsonb's order:
    ids holding tabs, the quote byte, line breaks, quotes and backslashes are stored as sent, the stored record
    equals its canonical JSON, and its content hash is that JSON's."""
    from certpipe.core.keys import canonical_json, content_hash

    ids = ["a\tb", "q\x01\x01", "line\nbreak\r\n", '"quoted", \\back\\', "", "\\.", "\\N"]
    recs = [birth(i + 1, TEN_CON=name) for i, name in enumerate(['Đạt "Bé" \\ Bình', *["An"] * 6])]
    r = run(wh, recs, ids=ids)
    assert (r.stored, r.refused) == (7, 0)
    got = wh.execute("SELECT source_record_id FROM wh.batch_record ORDER BY row_no").fetchall()
    assert [g[0] for g in got] == ids
    got = wh.execute("SELECT source_record_id FROM wh.certificate_source ORDER BY cert_id").fetchall()
    assert [g[0] for g in got] == ids
    rows = wh.execute("SELECT record::text, content_hash FROM wh.certificate ORDER BY cert_id").fetchall()
    import json

    for text, chash in rows:
        canonical = canonical_json(json.loads(text))
        assert chash == content_hash(canonical)
    assert json.loads(rows[0][0])["TEN_CON"] == 'Đạt "Bé" \\ Bình'
