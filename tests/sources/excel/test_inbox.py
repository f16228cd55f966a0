"""The inbox on a real PostgreSQL and a real local bucket folder: exactly once, resumable, feedback per file."""

from __future__ import annotations

import threading
from pathlib import Path

import openpyxl
import pytest

from certpipe.sources.excel import inbox as excel
from certpipe.sources.excel import landing
from tests.sources.excel.conftest import FACILITY, KNOWN, births, deaths, his_export, template_file, xls_file


def drop(bucket, name: str, data: bytes, facility: str = FACILITY) -> Path:
    p = Path(bucket.path) / "inbox" / facility / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def run(bucket, dsn, **kw) -> list[dict]:
    ids = excel.scan(bucket, dsn, min_age=0, facilities=KNOWN)["file_ids"]
    return [excel.process(bucket, dsn, i, **kw) for i in ids]


def files(bucket, area: str) -> list[str]:
    base = Path(bucket.path) / area
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()) if base.exists() else []


def result_book(bucket, key: str):
    return openpyxl.load_workbook(Path(bucket.path) / key)


def test_file_is_loaded_fed_back_and_moved(bucket, wh, warehouse_dsn, tmp_path):
    gcs, gcs_bad = births(80)
    gbt, gbt_bad = deaths(30)
    src = tmp_path / "src.xlsx"
    where = his_export(src, [("Sinh", "GCS", gcs), ("Tử vong", "GBT", gbt)])
    drop(bucket, "thang-10.xlsx", src.read_bytes())

    [res] = run(bucket, warehouse_dsn)
    assert res["status"] == "done"
    assert res["received"] == len(gcs) + len(gbt)
    fid = res["file_id"]
    # what the warehouse decided for every row of the hospital's file
    decided = {
        rid: (outcome, reasons)
        for rid, outcome, reasons in wh.execute(
            "SELECT r.source_record_id, r.outcome, r.reasons FROM wh.batch_record r "
            "JOIN wh.excel_file_batch b USING (batch_id) WHERE b.file_id = %s",
            (fid,),
        )
    }
    assert len(decided) == len(gcs) + len(gbt)
    for sheet, bad in ((2, gcs_bad), (3, gbt_bad)):
        for i, rule in bad.items():  # every deliberately bad record is refused for its rule
            outcome, reasons = decided[f"{sheet}!{where[(sheet, i)]}"]
            assert outcome == "refused" and rule in {r["code"] for r in reasons}, (sheet, i, rule, reasons)
    refused = sum(1 for o, _ in decided.values() if o == "refused")
    assert res["refused"] == refused and res["stored"] + res["unchanged"] == res["received"] - refused
    stored = wh.execute("SELECT count(*) FROM wh.certificate WHERE last_source = 'excel'").fetchone()[0]
    assert stored == res["stored"] > 0

    assert files(bucket, "inbox") == [] and files(bucket, "processing") == []
    assert files(bucket, "processed") == [f"{FACILITY}/{fid}-thang-10.xlsx"]
    assert (Path(bucket.path) / "processed" / FACILITY / f"{fid}-thang-10.xlsx").read_bytes() == src.read_bytes()
    assert files(bucket, "results") == [f"{FACILITY}/{fid}-thang-10-ket-qua.xlsx"]

    from certpipe.sources.excel.result import OUTCOME_TEXT

    book = result_book(bucket, f"results/{FACILITY}/{fid}-thang-10-ket-qua.xlsx")
    assert book.sheetnames == ["Tóm tắt", "Sinh", "Tử vong"]
    summary = [[c for c in row if c is not None] for row in book["Tóm tắt"].iter_rows(values_only=True)]
    assert ["Tổng cộng", res["received"], res["stored"], 0, res["unchanged"], res["refused"]] in summary
    for sheet, name, recs in ((2, "Sinh", gcs), (3, "Tử vong", gbt)):
        ws = book[name]
        assert [c.value for c in ws[1]][:3] == ["Dòng trong file gốc", "Kết quả", "Lý do"]
        rows = list(ws.iter_rows(min_row=2))
        assert len(rows) == len(recs)
        for i, row in enumerate(rows):
            assert row[0].value == where[(sheet, i)]  # the row number in the hospital's file
            outcome, reasons = decided[f"{sheet}!{where[(sheet, i)]}"]
            assert row[1].value == OUTCOME_TEXT[outcome]
            commented = [c for c in row if c.comment]
            if outcome == "refused":
                assert row[2].value and commented, f"sheet {sheet} row {i}: no reason"
                for why in reasons:  # each reason sits on its cell (or on the result cell)
                    assert any(why["message"] in c.comment.text for c in commented), why["code"]
                highlighted = [c for c in row[3:] if c.fill.fgColor.rgb == "FFFFC7CE"]
                assert highlighted or row[1].comment
            else:
                assert not commented


def test_same_file_twice_under_another_name_is_processed_once(bucket, wh, warehouse_dsn, tmp_path):
    data = template_file(tmp_path / "a.xlsx", births(20)[0]).read_bytes()
    drop(bucket, "a.xlsx", data)
    drop(bucket, "a (1).xlsx", data)  # dropped twice at once
    first = run(bucket, warehouse_dsn)
    assert len(first) == 1 and first[0]["status"] == "done"
    batches = wh.execute("SELECT count(*) FROM wh.ingest_batch WHERE source = 'excel'").fetchone()[0]
    # the twin waited in processing/; the next scan sees the original done and sets it aside
    assert run(bucket, warehouse_dsn) == []
    drop(bucket, "a-gui-lai.xlsx", data)  # and again later
    assert run(bucket, warehouse_dsn) == []
    assert wh.execute("SELECT count(*) FROM wh.ingest_batch WHERE source = 'excel'").fetchone()[0] == batches
    assert wh.execute("SELECT count(*) FROM wh.excel_file").fetchone()[0] == 1
    outcomes = sorted(o for (o,) in wh.execute("SELECT outcome FROM wh.excel_drop"))
    assert outcomes == ["claimed", "duplicate", "duplicate"]
    fid = first[0]["file_id"]
    assert files(bucket, "inbox") == [] and files(bucket, "processing") == []
    assert len(files(bucket, "processed")) == 3 and len(files(bucket, "results")) == 3
    dup = next(k for k in files(bucket, "results") if "trung" in k)
    text = " ".join(
        str(v) for row in result_book(bucket, f"results/{dup}")["Tóm tắt"].iter_rows(values_only=True) for v in row if v
    )
    assert "Trùng với file đã nộp" in text and f"mã {fid}" in text


def test_interrupted_file_is_resumed_without_double_counting(bucket, wh, warehouse_dsn, tmp_path, monkeypatch):
    gcs, _ = births(60, seed=11, bad_ratio=0)
    bad = set(range(0, len(gcs), 7))
    for i in bad:
        gcs[i]["GIOI_TINH_CON"] = "9"
    drop(bucket, "lon.xlsx", template_file(tmp_path / "x.xlsx", gcs).read_bytes())
    real = landing.ingest
    calls = []

    def crash_after_first_batch(*a, **kw):
        if calls:
            raise ConnectionError("worker lost")
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(landing, "ingest", crash_after_first_batch)
    ids = excel.scan(bucket, warehouse_dsn, min_age=0)["file_ids"]
    with pytest.raises(ConnectionError):
        excel.process(bucket, warehouse_dsn, ids[0], chunk_rows=25)
    assert wh.execute("SELECT status FROM wh.excel_file").fetchone()[0] == "landed"
    assert files(bucket, "processed") == [] and len(files(bucket, "processing")) == 1

    monkeypatch.setattr(landing, "ingest", real)
    [res] = run(bucket, warehouse_dsn, chunk_rows=25)  # the next run resumes the claim
    assert res["status"] == "done"
    valid = [r["MA_GCS"] for r in gcs if r["GIOI_TINH_CON"] != "9"]
    assert (res["received"], res["stored"], res["unchanged"], res["refused"]) == (
        len(gcs),
        len(set(valid)),
        len(valid) - len(set(valid)),
        len(gcs) - len(valid),
    )
    n_batches = -(-len(gcs) // 25)
    assert wh.execute("SELECT count(*), count(DISTINCT batch_id) FROM wh.batch_record").fetchone() == (
        len(gcs),
        n_batches,
    )
    assert wh.execute("SELECT attempts FROM wh.excel_file").fetchone()[0] == 2


def test_two_attempts_never_process_one_file_at_once(bucket, warehouse_dsn, tmp_path, monkeypatch):
    drop(bucket, "a.xlsx", template_file(tmp_path / "a.xlsx", births(10)[0]).read_bytes())
    [fid] = excel.scan(bucket, warehouse_dsn, min_age=0)["file_ids"]
    inside, release = threading.Event(), threading.Event()
    real = excel._land

    def slow_land(*a, **kw):
        inside.set()
        release.wait(30)
        return real(*a, **kw)

    monkeypatch.setattr(excel, "_land", slow_land)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", excel.process(bucket, warehouse_dsn, fid)))
    t.start()
    assert inside.wait(30)
    with pytest.raises(RuntimeError, match="being processed"):
        excel.process(bucket, warehouse_dsn, fid)
    # a scan meanwhile (the next scheduled run) leaves the file to the task processing it
    out_scan = excel.scan(bucket, warehouse_dsn, min_age=0, facilities=KNOWN)
    assert fid not in out_scan["file_ids"] and out_scan["in_progress"] == 1
    release.set()
    t.join(60)
    assert out["r"]["status"] == "done"


def test_unreadable_files_are_quarantined_and_the_rest_goes_on(bucket, wh, warehouse_dsn, tmp_path, monkeypatch):
    monkeypatch.setenv("CERTPIPE_EXCEL_MAX_BYTES", "200000")
    good = template_file(tmp_path / "ok.xlsx", births(15)[0]).read_bytes()
    drop(bucket, "ok.xlsx", good)
    drop(bucket, "cu.xls", xls_file(tmp_path / "cu.xls").read_bytes())
    drop(bucket, "ghi-chu.xlsx", b"khong phai file excel")
    drop(bucket, "rong.xlsx", _no_header(tmp_path / "rong.xlsx"))
    drop(bucket, "to.xlsx", good + b"\0" * 300_000)
    results = {r["reason"]: r for r in run(bucket, warehouse_dsn)}
    assert set(results) == {None, "FILE_LEGACY_XLS", "FILE_NOT_WORKBOOK", "FILE_NO_DATA", "FILE_TOO_LARGE"}
    assert results[None]["status"] == "done" and results[None]["stored"] > 0
    for code, r in results.items():
        if code:
            assert r["status"] == "quarantined"
    assert len(files(bucket, "quarantine")) == 4 and len(files(bucket, "processed")) == 1
    assert len(files(bucket, "results")) == 5
    from certpipe.core.schema import message

    q = results["FILE_LEGACY_XLS"]
    key = next(k for k in files(bucket, "results") if k.startswith(f"{FACILITY}/{q['file_id']}-"))
    text = [v for row in result_book(bucket, f"results/{key}")["Tóm tắt"].iter_rows(values_only=True) for v in row]
    assert message("FILE_LEGACY_XLS") in text


def _no_header(path):
    wb = openpyxl.Workbook()
    wb.active.append(["Số thứ tự", "Nội dung"])
    wb.active.append([1, "abc"])
    wb.save(path)
    return path.read_bytes()


def test_every_row_refused_still_gets_a_result(bucket, warehouse_dsn, tmp_path):
    gcs, _ = births(8, bad_ratio=0)
    for r in gcs:
        r["GIOI_TINH_CON"] = "9"
    drop(bucket, "sai.xlsx", template_file(tmp_path / "s.xlsx", gcs).read_bytes())
    [res] = run(bucket, warehouse_dsn)
    assert (res["status"], res["refused"], res["stored"]) == ("done", len(gcs), 0)
    ws = result_book(bucket, f"results/{FACILITY}/{res['file_id']}-sai-ket-qua.xlsx")["Giấy chứng sinh"]
    rows = list(ws.iter_rows(min_row=2))
    assert len(rows) == len(gcs) and all(r[1].value == "Không nhận" for r in rows)
    head = [c.value for c in ws[1]]
    sex = next(j for j, h in enumerate(head) if str(h).startswith("Giới tính của con"))
    assert all(r[sex].comment and "giới tính" in r[sex].comment.text for r in rows)
    assert all("Giá trị hợp lệ: 1 - Nam; 2 - Nữ" in r[sex].comment.text for r in rows)  # what is expected


def test_files_still_being_written_are_left_alone(bucket, warehouse_dsn, tmp_path):
    drop(bucket, "dang-chep.xlsx", template_file(tmp_path / "a.xlsx", births(3)[0]).read_bytes())
    out = excel.scan(bucket, warehouse_dsn, min_age=60)
    assert out["file_ids"] == [] and out["too_recent"] == 1
    assert files(bucket, "inbox") == [f"{FACILITY}/dang-chep.xlsx"]


def test_rows_of_another_facility_are_refused_and_fed_back(bucket, wh, warehouse_dsn, tmp_path):
    from certpipe.core.schema import message
    from certpipe.sources.excel.result import OUTCOME_TEXT

    gcs = list({r["MA_GCS"]: r for r in births(10, seed=13, bad_ratio=0)[0]}.values())  # one version each
    gbt = list({r["MA_GBT"]: r for r in deaths(6, seed=13, bad_ratio=0)[0]}.values())
    other_gcs = births(1, seed=14, facility="79034", bad_ratio=0)[0][0]
    other_gbt = deaths(1, seed=14, facility="96025", bad_ratio=0)[0][0]
    gcs.insert(4, other_gcs)
    gbt.insert(2, other_gbt)
    gcs[2]["MA_CSKCB"] = None  # no facility code: the folder's
    src = tmp_path / "src.xlsx"
    where = his_export(src, [("Sinh", "GCS", gcs), ("Tử vong", "GBT", gbt)], use_codes=True)
    # the folder's own code as Excel mangles it: a number (leading zero lost), padded with spaces
    book = openpyxl.load_workbook(src)
    for sheet, name, field, mangled in (
        (2, "Sinh", "MA_CSKCB", {0: 1020, 1: " 01020 "}),
        (3, "Tử vong", "MACSKCB", {0: 1020.0, 3: "01020 "}),
    ):
        ws = book[name]
        col = next(c.column for c in ws[5] if c.value == field)
        for i, v in mangled.items():
            ws.cell(where[(sheet, i)], col, v)
    book.save(src)
    drop(bucket, "thang-11.xlsx", src.read_bytes())

    [res] = run(bucket, warehouse_dsn)
    assert res["status"] == "done"
    assert (res["received"], res["refused"], res["stored"]) == (len(gcs) + len(gbt), 2, len(gcs) + len(gbt) - 2)
    assert res["refusals_by_rule"] == {"FACILITY_MISMATCH": 2}
    fid = res["file_id"]
    decided = {
        rid: (outcome, reasons, kept)
        for rid, outcome, reasons, kept in wh.execute(
            "SELECT r.source_record_id, r.outcome, r.reasons, x.payload IS NOT NULL FROM wh.batch_record r "
            "JOIN wh.excel_file_batch b USING (batch_id) LEFT JOIN wh.refused_record x USING (batch_id, row_no) "
            "WHERE b.file_id = %s",
            (fid,),
        )
    }
    refused = {rid: (reasons, kept) for rid, (outcome, reasons, kept) in decided.items() if outcome == "refused"}
    assert refused == {
        f"2!{where[(2, 4)]}": (
            [{"field": "MA_CSKCB", "code": "FACILITY_MISMATCH", "message": message("FACILITY_MISMATCH")}],
            True,
        ),
        f"3!{where[(3, 2)]}": (
            [{"field": "MACSKCB", "code": "FACILITY_MISMATCH", "message": message("FACILITY_MISMATCH")}],
            True,
        ),
    }
    facilities = {f for (f,) in wh.execute("SELECT DISTINCT facility_code FROM wh.certificate")}
    assert facilities == {FACILITY}
    keys = {k for (k,) in wh.execute("SELECT cert_key FROM wh.certificate")}
    assert other_gcs["MA_GCS"] not in keys and other_gbt["MA_GBT"] not in keys
    assert gcs[2]["MA_GCS"] in keys and gbt[0]["MA_GBT"] in keys

    result = result_book(bucket, f"results/{FACILITY}/{fid}-thang-11-ket-qua.xlsx")
    summary = [v for row in result["Tóm tắt"].iter_rows(values_only=True) for v in row]
    assert message("FACILITY_MISMATCH") in summary
    for name, sheet, i, field in (("Sinh", 2, 4, "MA_CSKCB"), ("Tử vong", 3, 2, "MACSKCB")):
        ws = result[name]
        head = [c.value for c in ws[1]]
        col = next(j for j, h in enumerate(head) if h == field or str(h).endswith(f"({field})"))
        rows = {r[0].value: r for r in ws.iter_rows(min_row=2)}
        row = rows[where[(sheet, i)]]
        assert row[1].value == OUTCOME_TEXT["refused"]
        assert row[col].comment and message("FACILITY_MISMATCH") in row[col].comment.text
        assert row[col].fill.fgColor.rgb == "FFFFC7CE"
        assert sum(1 for r in rows.values() if r[1].value == OUTCOME_TEXT["refused"]) == 1
