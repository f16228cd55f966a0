"""Any legal file name, any folder: bounded derived names, sub-folders, unknown facilities, files that keep
killing their worker; every file ends in results/ with an answer and nothing stays in processing/."""

from __future__ import annotations

import logging
from pathlib import Path

import openpyxl
import pytest

from certpipe.sources.excel import inbox as excel
from certpipe.sources.excel import storage
from tests.sources.excel.conftest import FACILITY, KNOWN, births, template_file
from tests.sources.excel.test_inbox import drop, files, result_book, run

LONG = "Giấy chứng sinh của bà Nguyễn Thị Hường tháng mười " + "ệ" * 60 + ".xlsx"


def _summary_text(bucket, key: str) -> str:
    return " ".join(str(v) for row in result_book(bucket, key)["Tóm tắt"].iter_rows(values_only=True) for v in row if v)


def test_long_and_odd_names_and_sub_folders_are_all_processed(bucket, wh, warehouse_dsn, tmp_path, caplog):
    assert 235 <= len(LONG.encode()) <= 255
    names = [LONG, "a..b.xlsx", "x\\y.xlsx", "dòng\nmới.xlsx", ".ẩn.xlsx", "thang 10/tuần 2/đợt 1.xlsx"]
    for i, name in enumerate(names):
        drop(bucket, name, template_file(tmp_path / f"{i}.xlsx", births(3, seed=60 + i)[0]).read_bytes())
    caplog.set_level(logging.INFO)
    res = run(bucket, warehouse_dsn)
    assert sorted(r["status"] for r in res) == ["done"] * len(names)
    assert files(bucket, "inbox") == [] and files(bucket, "processing") == []
    assert len(files(bucket, "results")) == len(names) and len(files(bucket, "processed")) == len(names)
    for area in ("results", "processed"):
        for key in files(bucket, area):
            assert len(Path(key).name.encode()) <= 120, key
    stored = {n for (n,) in wh.execute("SELECT file_name FROM wh.excel_file")}
    assert stored == set(names)  # the name as dropped is kept (the clerk sees it in the result)
    for r in res:
        key = wh.execute(
            "SELECT result_key, file_name FROM wh.excel_file WHERE file_id = %s", (r["file_id"],)
        ).fetchone()
        assert key[1] in _summary_text(bucket, key[0])
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for name in names:
        assert Path(name).stem not in logs
    assert "Nguyễn" not in logs and "Hường" not in logs


def test_unknown_folder_is_quarantined_with_a_result_and_an_alert(bucket, wh, warehouse_dsn, tmp_path, caplog):
    from certpipe.core.schema import message

    data = template_file(tmp_path / "a.xlsx", births(4, seed=70)[0]).read_bytes()
    drop(bucket, "a.xlsx", data, facility="99999")
    drop(bucket, "c.xlsx", template_file(tmp_path / "c.xlsx", births(2, seed=69)[0]).read_bytes(), facility="99999")
    drop(bucket, "b.xlsx", data, facility="")  # directly under inbox/
    caplog.set_level(logging.WARNING)
    res = {r["file_id"]: r for r in run(bucket, warehouse_dsn)}
    assert len(res) == 3
    assert {r["status"] for r in res.values()} == {"quarantined"}
    assert {r["reason"] for r in res.values()} == {"FILE_UNKNOWN_FACILITY"}
    assert wh.execute("SELECT count(*) FROM wh.certificate").fetchone()[0] == 0
    keys = [k for k in files(bucket, "results") if k.startswith("99999/")]
    assert len(keys) == 2
    assert all(message("FILE_UNKNOWN_FACILITY") in _summary_text(bucket, f"results/{k}") for k in keys)
    assert files(bucket, "processing") == [] and files(bucket, "inbox") == []
    alerts = [r.getMessage() for r in caplog.records if "excel_unknown_facility" in r.getMessage()]
    assert [a for a in alerts if '"source_ref": "99999"' in a and '"received": 2' in a]  # one alert per folder
    assert len([a for a in alerts if '"source_ref": "99999"' in a]) == 1
    # moved to the right folder, the same content is processed (not a duplicate of the quarantined drop)
    drop(bucket, "a.xlsx", data)
    [again] = run(bucket, warehouse_dsn)
    assert (again["status"], again["facility"]) == ("done", FACILITY) and again["stored"] == 4


def test_known_facilities_come_from_configuration(monkeypatch):
    monkeypatch.setenv("CERTPIPE_INBOX_FACILITIES", '["01020", "79034", "bad"]')
    monkeypatch.setenv("AIRFLOW_VAR_HIS_HOSPITALS", '[{"facility": "96025"}]')
    assert storage.known_facilities() == {"01020", "79034", "96025"}


def test_a_file_that_keeps_killing_its_worker_is_quarantined(bucket, wh, warehouse_dsn, tmp_path, monkeypatch):
    drop(bucket, "nang.xlsx", template_file(tmp_path / "a.xlsx", births(5, seed=71)[0]).read_bytes())
    drop(bucket, "ok.xlsx", template_file(tmp_path / "b.xlsx", births(5, seed=72)[0]).read_bytes())
    real = excel._land

    def dies_on_one_file(conn, f, *a, **kw):
        if f["file_name"] == "nang.xlsx":
            raise MemoryError  # what the worker's death looks like from the ledger: the attempt never ends
        return real(conn, f, *a, **kw)

    monkeypatch.setattr(excel, "_land", dies_on_one_file)
    outcomes = []
    for _ in range(excel.max_attempts() + 1):  # one scheduled run after another
        for fid in excel.scan(bucket, warehouse_dsn, min_age=0, facilities=KNOWN)["file_ids"]:
            try:
                outcomes.append(excel.process(bucket, warehouse_dsn, fid))
            except MemoryError:
                outcomes.append("died")
    assert outcomes.count("died") == excel.max_attempts()
    final = dict(wh.execute("SELECT file_name, status || ':' || coalesce(reason_code, '') FROM wh.excel_file"))
    assert final == {"nang.xlsx": "quarantined:FILE_WORKER_LOST", "ok.xlsx": "done:"}
    assert files(bucket, "processing") == []
    key = wh.execute("SELECT result_key FROM wh.excel_file WHERE file_name = 'nang.xlsx'").fetchone()[0]
    text = _summary_text(bucket, key)
    assert "nhiều lần" in text and f"Số lần đã thử: {excel.max_attempts()}" in text


def test_twin_dropped_in_the_same_scan_is_answered_with_the_original(bucket, wh, warehouse_dsn, tmp_path):
    data = template_file(tmp_path / "a.xlsx", births(6, seed=73)[0]).read_bytes()
    drop(bucket, "a.xlsx", data)
    drop(bucket, "a - Copy.xlsx", data)
    [res] = run(bucket, warehouse_dsn)
    assert res["status"] == "done"
    assert files(bucket, "processing") == [] and len(files(bucket, "results")) == 2
    assert wh.execute("SELECT count(*) FROM wh.excel_pending").fetchone()[0] == 0


def test_stale_partial_download_is_answered_a_fresh_one_waits(bucket, wh, warehouse_dsn, tmp_path):
    import os
    import time

    data = template_file(tmp_path / "a.xlsx", births(6, seed=74)[0]).read_bytes()
    old = drop(bucket, "cu.xlsx.crdownload", data[: len(data) // 2])
    drop(bucket, "moi.xlsx.part", data[: len(data) // 3])
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    [res] = run(bucket, warehouse_dsn)
    assert (res["status"], res["reason"]) == ("quarantined", "FILE_INCOMPLETE")
    assert files(bucket, "inbox") == [f"{FACILITY}/moi.xlsx.part"]


@pytest.mark.parametrize(
    "name", [LONG, "..", "a" * 255, "\\\\server\\share.xlsx", "thang 10/" + "ư" * 120 + ".xlsx", "", ".xlsx"]
)
def test_derived_names_are_bounded(name):
    for key in (
        storage.processing_key(FACILITY, name),
        storage.final_key("processed", FACILITY, 123456789, name),
        storage.result_key(FACILITY, 123456789, name, 987654321),
    ):
        last = key.rsplit("/", 1)[-1]
        assert 0 < len(last.encode()) <= 120 and ".." not in last and "\\" not in last and "\n" not in last
        assert key.count("/") == 2


def test_result_workbook_opens_for_every_name(bucket, warehouse_dsn, tmp_path):
    drop(bucket, LONG, template_file(tmp_path / "a.xlsx", births(2, seed=75)[0]).read_bytes())
    [res] = run(bucket, warehouse_dsn)
    [key] = files(bucket, "results")
    assert openpyxl.load_workbook(Path(bucket.path) / "results" / key)["Tóm tắt"]
    assert res["status"] == "done"


def test_bad_entries_never_stop_the_scan(bucket, wh, warehouse_dsn, tmp_path):
    """A symlink loop, a dangling link, a FIFO and a name that is not UTF-8 next to a normal file."""
    import os

    folder = Path(bucket.path) / "inbox" / FACILITY
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vong").symlink_to(folder / "vong")
    (folder / "treo.xlsx").symlink_to(folder / "khong-co.xlsx")
    os.mkfifo(folder / "ong.xlsx")
    data = template_file(tmp_path / "a.xlsx", births(3, seed=76)[0]).read_bytes()
    with open(os.path.join(os.fsencode(folder), b"gi\xe1y-cp1258.xlsx"), "wb") as f:  # noqa: PTH118, PTH123 - a bytes name
        f.write(data)
    drop(bucket, "binh-thuong.xlsx", template_file(tmp_path / "b.xlsx", births(3, seed=77)[0]).read_bytes())
    res = run(bucket, warehouse_dsn)
    assert sorted(r["status"] for r in res) == ["done", "done"]
    names = {n for (n,) in wh.execute("SELECT file_name FROM wh.excel_file")}
    assert names == {"binh-thuong.xlsx", "gi\ufffdy-cp1258.xlsx"}
    assert files(bucket, "processing") == [] and len(files(bucket, "results")) == 2


def test_a_worker_killed_for_real_is_retried_then_quarantined(bucket, wh, warehouse_dsn, tmp_path):
    """The worker process dies (SIGKILL, as the kernel's OOM killer does) while reading: its lock goes with it,
    the attempt stays counted, and after the last attempt the file is answered."""
    import signal
    import subprocess
    import sys
    import textwrap

    drop(bucket, "giet.xlsx", template_file(tmp_path / "a.xlsx", births(3, seed=78)[0]).read_bytes())
    [fid] = excel.scan(bucket, warehouse_dsn, min_age=0, facilities=KNOWN)["file_ids"]
    child = textwrap.dedent(
        f"""
        import os, signal
        from airflow.sdk import ObjectStoragePath
        from certpipe.sources.excel import inbox
        inbox._land = lambda *a, **kw: os.kill(os.getpid(), signal.SIGKILL)
        inbox.process(ObjectStoragePath({bucket.path!r}), {warehouse_dsn!r}, {fid})
        """
    )
    for _ in range(excel.max_attempts()):
        done = subprocess.run([sys.executable, "-c", child], capture_output=True, timeout=120)
        assert done.returncode == -signal.SIGKILL
    assert wh.execute("SELECT status, attempts FROM wh.excel_file").fetchone() == ("claimed", excel.max_attempts())
    res = excel.process(bucket, warehouse_dsn, fid)
    assert (res["status"], res["reason"]) == ("quarantined", "FILE_WORKER_LOST")
    assert files(bucket, "processing") == [] and len(files(bucket, "results")) == 1


def test_a_result_that_keeps_failing_is_answered_with_the_summary(bucket, wh, warehouse_dsn, tmp_path, monkeypatch):
    from certpipe.sources.excel import result

    gcs = births(5, seed=79, bad_ratio=0)[0]
    drop(bucket, "a.xlsx", template_file(tmp_path / "a.xlsx", gcs).read_bytes())
    [fid] = excel.scan(bucket, warehouse_dsn, min_age=0, facilities=KNOWN)["file_ids"]
    real = result._data_sheet

    def broken(*a, **kw):
        raise RuntimeError("the detailed result cannot be written")

    monkeypatch.setattr(result, "_data_sheet", broken)
    for _ in range(excel.max_attempts()):
        with pytest.raises(RuntimeError):
            excel.process(bucket, warehouse_dsn, fid)
    res = excel.process(bucket, warehouse_dsn, fid)
    monkeypatch.setattr(result, "_data_sheet", real)
    assert res["status"] == "done" and res["received"] == len(gcs)
    assert files(bucket, "processing") == []
    [key] = files(bucket, "results")
    book = result_book(bucket, f"results/{key}")
    assert book.sheetnames == ["Tóm tắt"]
    assert excel.BRIEF_NOTE in _summary_text(bucket, f"results/{key}")
