"""Directory refresh (V.1) from the sandbox security server into a real PostgreSQL warehouse: history, and
answers that must never wipe the directory."""

import pytest

from certpipe.sources.secserver.directory import DirectoryRejected, refresh_directory
from sandbox.secserver import GUIDE_DIRECTORY
from tests.sources.secserver.conftest import secserver_conn

H22 = "000.00.00.H22"


def current(wh):
    return {m: (n, d) for m, n, d in wh.execute("SELECT macoquan, tencoquan, dstcode FROM wh.secserver_directory")}


def history(wh):
    return list(
        wh.execute(
            "SELECT macoquan, change, old_dstcode, dstcode FROM wh.secserver_directory_history ORDER BY history_id"
        )
    )


def refreshes(wh):
    return wh.execute("SELECT status, reason_code FROM wh.secserver_directory_refresh ORDER BY refresh_id").fetchall()


def guide():
    return {e["MACOQUAN"]: (e["TENCOQUAN"], e["DSTCODE"]) for e in GUIDE_DIRECTORY}


def test_first_refresh_loads_the_guides_directory(control, warehouse_dsn, wh):
    counts = refresh_directory("secserver_default", warehouse_dsn, run_id="t1")
    assert counts["appeared"] == counts["received"] == len(GUIDE_DIRECTORY) and counts["previous"] == 0
    assert current(wh) == guide()
    assert current(wh)[H22] == ("UBND tỉnh Hà Giang", "VN:GOV:000.00.00.H22:hagiangvdxpsvc01")
    assert {(m, c) for m, c, _, _ in history(wh)} == {(m, "appeared") for m in guide()}
    assert refreshes(wh) == [("applied", None)]
    # the same answer again changes nothing but "last seen"
    again = refresh_directory("secserver_default", warehouse_dsn)
    assert again["unchanged"] == len(GUIDE_DIRECTORY) and again["appeared"] == again["changed"] == 0
    assert len(history(wh)) == len(GUIDE_DIRECTORY)


def test_changes_appearances_and_disappearances_are_recorded(control, warehouse_dsn, wh):
    refresh_directory("secserver_default", warehouse_dsn)
    valid_from = wh.execute("SELECT valid_from FROM wh.secserver_directory WHERE macoquan = %s", (H22,)).fetchone()[0]
    entries = [dict(e) for e in GUIDE_DIRECTORY if e["MACOQUAN"] != "000.00.00.G08"]  # 1/9 gone: under 20 %
    for e in entries:
        if e["MACOQUAN"] == H22:
            e["DSTCODE"] = "VN:GOV:000.00.00.H22:hagiangvdxpsvc02"
        if e["MACOQUAN"] == "000.00.00.G04":
            e["TENCOQUAN"] = "Bộ Xây dựng"
    entries.append(
        {
            "MACOQUAN": "000.00.00.H29",
            "TENCOQUAN": "UBND thành phố Hà Nội",
            "DSTCODE": "VN:GOV:000.00.00.H29:hanoivdxpsvc01",
        }
    )
    control.directory(entries)
    counts = refresh_directory("secserver_default", warehouse_dsn)
    assert {k: counts[k] for k in ("appeared", "changed", "renamed", "disappeared")} == {
        "appeared": 1,
        "changed": 1,
        "renamed": 1,
        "disappeared": 1,
    }
    now = current(wh)
    assert now[H22][1] == "VN:GOV:000.00.00.H22:hagiangvdxpsvc02"
    assert now["000.00.00.G04"][0] == "Bộ Xây dựng" and "000.00.00.G08" not in now and "000.00.00.H29" in now
    assert history(wh)[len(GUIDE_DIRECTORY) :] == [
        ("000.00.00.H29", "appeared", None, "VN:GOV:000.00.00.H29:hanoivdxpsvc01"),
        (H22, "changed", "VN:GOV:000.00.00.H22:hagiangvdxpsvc01", "VN:GOV:000.00.00.H22:hagiangvdxpsvc02"),
        ("000.00.00.G04", "renamed", "VN:GOV:000.00.00.G04:g04ss01", "VN:GOV:000.00.00.G04:g04ss01"),
        ("000.00.00.G08", "disappeared", "VN:GOV:000.00.00.G08:g08ss01", None),
    ]
    assert wh.execute(
        "SELECT valid_from > %s FROM wh.secserver_directory WHERE macoquan = %s", (valid_from, H22)
    ).fetchone()[0]

    # an agency that comes back appears again
    control.directory(GUIDE_DIRECTORY)
    refresh_directory("secserver_default", warehouse_dsn)
    assert {h[:2] for h in history(wh)[-4:]} == {
        ("000.00.00.G08", "appeared"),
        (H22, "changed"),
        ("000.00.00.G04", "renamed"),
        ("000.00.00.H29", "disappeared"),
    }
    assert current(wh) == guide()


BAD_ANSWERS = [
    ({"answer": "empty"}, "SS_DIR_EMPTY"),
    ({"answer": "truncated", "keep": 0.5}, "SS_DIR_TRUNCATED"),
    ({"answer": "missing_keys"}, "SS_DIR_SHAPE"),
    ({"answer": "no_result"}, "SS_DIR_SHAPE"),
    ({"answer": "raw", "body": '{"result": {"MACOQUAN": "000.00.00.G01"}}'}, "SS_DIR_SHAPE"),
    (
        {
            "answer": "raw",
            "body": '{"result": [{"MACOQUAN": "000.00.00.G01", "TENCOQUAN": "Bộ Công an", '
            '"DSTCODE": "khong-phai-dstcode"}]}',
        },
        "SS_DIR_DSTCODE",
    ),
    ({"answer": "broken_json", "count": 3}, "SS_DIR_NOT_JSON"),  # the guide's own sample is cut JSON
    ({"answer": "not_json", "count": 3}, "SS_DIR_NOT_JSON"),
    ({"status": 503, "count": 3}, "SS_DIR_UNAVAILABLE"),
    ({"delay_seconds": 1.5, "count": 3}, "SS_DIR_UNAVAILABLE"),  # timeouts (0.5 s)
]


@pytest.mark.parametrize(
    ("fault", "code"),
    BAD_ANSWERS,
    ids=[f"{c}-{f.get('answer') or f.get('status') or 'timeout'}" for f, c in BAD_ANSWERS],
)
def test_a_bad_answer_never_wipes_the_directory(control, ss, monkeypatch, warehouse_dsn, wh, fault, code):
    refresh_directory("secserver_default", warehouse_dsn)
    if fault.get("delay_seconds"):
        monkeypatch.setenv("AIRFLOW_CONN_SECSERVER_DEFAULT", secserver_conn(ss, timeout=0.5))
    before = wh.execute("SELECT * FROM wh.secserver_directory ORDER BY macoquan").fetchall()
    control.fault(**fault)
    with pytest.raises(DirectoryRejected, match=code) as e:
        refresh_directory("secserver_default", warehouse_dsn, run_id="bad")
    assert e.value.code == code
    assert wh.execute("SELECT * FROM wh.secserver_directory ORDER BY macoquan").fetchall() == before
    assert len(history(wh)) == len(GUIDE_DIRECTORY)
    status, reason_code, reason = wh.execute(
        "SELECT status, reason_code, reason FROM wh.secserver_directory_refresh ORDER BY refresh_id DESC"
    ).fetchone()
    assert (status, reason_code) == ("failed" if code == "SS_DIR_UNAVAILABLE" else "rejected", code)
    assert reason.startswith(code) and "giữ nguyên danh mục" in reason


def test_ambiguous_mapping_is_rejected(control, warehouse_dsn, wh):
    control.directory([*GUIDE_DIRECTORY, {**GUIDE_DIRECTORY[0], "DSTCODE": "VN:GOV:000.00.00.G01:other01"}])
    with pytest.raises(DirectoryRejected, match=r"SS_DIR_AMBIGUOUS.*000\.00\.00\.G01"):
        refresh_directory("secserver_default", warehouse_dsn)
    assert current(wh) == {}


def test_an_empty_first_answer_is_rejected_too(control, warehouse_dsn, wh):
    control.directory([])
    with pytest.raises(DirectoryRejected, match="SS_DIR_EMPTY"):
        refresh_directory("secserver_default", warehouse_dsn)
    assert refreshes(wh) == [("rejected", "SS_DIR_EMPTY")]


def test_the_shrink_threshold_is_configurable(control, warehouse_dsn, wh):
    refresh_directory("secserver_default", warehouse_dsn)
    control.directory(GUIDE_DIRECTORY[:7])  # 2 of 9 gone = 22 %
    with pytest.raises(DirectoryRejected, match=r"SS_DIR_TRUNCATED.*2/9"):
        refresh_directory("secserver_default", warehouse_dsn)
    assert len(current(wh)) == 9
    counts = refresh_directory("secserver_default", warehouse_dsn, max_shrink=0.25)
    assert counts["disappeared"] == 2 and len(current(wh)) == 7
