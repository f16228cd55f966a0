"""bhxh_lookup end to end: a registrar's request through dag.test(), validated first, stored through the core."""

from tests.sources.bhxh.conftest import load_windows, run_dag, served, texts_of_run, window_data


def valid_item(data, kind):
    return next(e for e in data[kind]["items"] if e["id"] not in data[kind]["expected"])


def lookup_batches(wh):
    return wh.execute(
        "SELECT kind, received, stored, refused, meta FROM wh.ingest_batch "
        "WHERE source = 'bhxh' AND source_ref = 'lookup' ORDER BY batch_id"
    ).fetchall()


def test_birth_certificates_by_mother_id_are_fetched_and_stored_without_leaking_the_id(bhxh_env, wh, capfd, caplog):
    data = window_data()
    load_windows(bhxh_env, data)
    rec = valid_item(data, "GCS")["record"]
    mother = rec["SO_CCCD_NND"]
    run = run_dag("bhxh_lookup", conf={"request_type": "GCS_MOTHER_ID", "mother_id": f" {mother} "})
    assert run.state == "success"
    found = [e for e in data["GCS"]["items"] if e["record"]["SO_CCCD_NND"] == mother]
    ((kind, received, stored, refused, meta),) = lookup_batches(wh)
    assert (kind, received, stored + refused) == ("GCS", len(found), len(found))
    assert meta["criteria"] == {"SO_CCCD_NND": "*" * 9 + mother[-3:]} and meta["found"] == len(found)
    row = wh.execute(
        "SELECT c.person_id, array_agg(s.source || '/' || s.source_ref) FROM wh.certificate c "
        "JOIN wh.certificate_source s USING (cert_id) WHERE c.cert_key = %s GROUP BY 1",
        (rec["MA_GCS"],),
    ).fetchone()
    assert row == (mother, ["bhxh/lookup"])
    texts = texts_of_run(run, capfd, caplog)
    assert rec["MA_GCS"] in texts["xcom"]  # the registrar gets the certificate number
    for where, text in texts.items():
        assert mother not in text, f"the mother's ID leaked into {where}"
        assert rec["HOTEN_NND"] not in text, f"the mother's name leaked into {where}"

    # asking again changes nothing
    before = wh.execute("SELECT count(*), max(updated_at) FROM wh.certificate").fetchone()
    assert run_dag("bhxh_lookup", conf={"request_type": "GCS_MOTHER_ID", "mother_id": mother}).state == "success"
    assert wh.execute("SELECT count(*), max(updated_at) FROM wh.certificate").fetchone() == before
    assert lookup_batches(wh)[-1][2] == 0


def test_death_notice_by_number_date_and_facility(bhxh_env, wh):
    data = window_data()
    load_windows(bhxh_env, data)
    rec = valid_item(data, "GBT")["record"]
    d = rec["NGAY_CAPGIAYBT"]
    conf = {
        "request_type": "GBT_BOOK",
        "number": rec["SO_BAOTU"],
        "issued_on": f"{d[6:]}/{d[4:6]}/{d[:4]}",
        "facility": rec["MACSKCB"],
    }
    assert run_dag("bhxh_lookup", conf=conf).state == "success"
    assert lookup_batches(wh)[-1][:3] == ("GBT", 1, 1)
    assert wh.execute("SELECT cert_key FROM wh.certificate").fetchall() == [(rec["MA_GBT"],)]
    by_number = {"request_type": "GBT_NUMBER", "certificate_number": rec["MA_GBT"].lower()}
    assert run_dag("bhxh_lookup", conf=by_number).state == "success"
    assert lookup_batches(wh)[-1][1:3] == (1, 0)


def test_nothing_found_is_recorded_as_an_empty_look_up(bhxh_env, wh):
    conf = {"request_type": "GBT_DECEASED_ID", "deceased_id": "096048999999"}
    assert run_dag("bhxh_lookup", conf=conf).state == "success"
    ((kind, received, *_, meta),) = lookup_batches(wh)
    assert (kind, received, meta["found"]) == ("GBT", 0, 0)


def test_malformed_request_is_refused_in_vietnamese_before_any_call(bhxh_env, wh, capfd, caplog):
    bad_id = "0791950ABCDE"
    run = run_dag("bhxh_lookup", conf={"request_type": "GCS_MOTHER_ID", "mother_id": bad_id})
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {"validate_request": "failed", "fetch_and_store": "upstream_failed"}
    assert served(bhxh_env) == {}  # not even a token was asked for
    assert lookup_batches(wh) == []
    texts = texts_of_run(run, capfd, caplog)
    alltext = "\n".join(texts.values())
    assert "Số định danh cá nhân phải gồm đúng 12 chữ số." in alltext
    assert bad_id not in alltext


def test_every_malformed_form_has_a_vietnamese_message():
    import pytest

    from certpipe.sources.bhxh.pull import MESSAGES, InvalidRequest, parse_request

    cases = [
        ({"request_type": "SOMETHING"}, "type"),
        ({"request_type": "GCS_MOTHER_ID"}, "person_id_missing"),
        ({"request_type": "GBT_DECEASED_ID", "deceased_id": "12345678901"}, "person_id"),
        ({"request_type": "GCS_NUMBER", "certificate_number": "00001.GBT.01020.25"}, "cert_number"),
        ({"request_type": "GBT_BOOK", "number": "x", "issued_on": "01/01/2026", "facility": "01020"}, "number"),
        ({"request_type": "GBT_BOOK", "number": "4", "issued_on": "31/02/2026", "facility": "01020"}, "date"),
        ({"request_type": "GBT_BOOK", "number": "4", "issued_on": "01/01/2099", "facility": "01020"}, "date"),
        ({"request_type": "GCS_BOOK", "number": "4", "issued_on": "20260101", "facility": "0102"}, "facility"),
    ]
    for params, key in cases:
        with pytest.raises(InvalidRequest) as e:
            parse_request(params)
        assert str(e.value) == MESSAGES[key]
    assert parse_request(
        {"request_type": "gcs_book", "number": "007", "issued_on": "2026-01-05", "facility": "01020"}
    ) == ("GCS", {"SO": "7", "NGAY_CT": "20260105", "MA_CSKCB": "01020"})
