"""Excel inbox fixtures: real workbooks written here, a local bucket folder, a real S3 server on loopback."""

from __future__ import annotations

import datetime as dt
import io
import json
import random
import unicodedata
import zipfile
from pathlib import Path

import pytest

from tests.conftest import airflow_conn

FACILITY = "01020"
KNOWN = (FACILITY, "79034", "96025")  # the facilities allowed to drop files in these tests


@pytest.fixture(autouse=True)
def _known_facilities(monkeypatch):
    monkeypatch.setenv("CERTPIPE_INBOX_FACILITIES", ",".join(KNOWN))


NOW = dt.datetime.now(dt.timezone(dt.timedelta(hours=7)))


# ---------------------------------------------------------------- records


def births(n: int, seed: int = 3, facility: str = FACILITY, bad_ratio: float = 0.1):
    """(records, expected {index: rule}) from the sandbox generator; no in-file duplicates or resubmissions."""
    from sandbox.generate import generate_births

    batch = generate_births(
        n, facility=facility, seed=seed, bad_ratio=bad_ratio, dup_ratio=0, resubmit_ratio=0, messy_ratio=0.1
    )
    recs = [e["record"] for e in batch]
    ids = [e["id"] for e in batch]
    return recs, {i: batch.expected[rid] for i, rid in enumerate(ids) if rid in batch.expected}


def deaths(n: int, seed: int = 3, facility: str = FACILITY, bad_ratio: float = 0.1):
    from sandbox.generate import generate_deaths

    batch = generate_deaths(
        n, facility=facility, seed=seed, bad_ratio=bad_ratio, dup_ratio=0, resubmit_ratio=0, messy_ratio=0.1
    )
    recs = [e["record"] for e in batch]
    ids = [e["id"] for e in batch]
    return recs, {i: batch.expected[rid] for i, rid in enumerate(ids) if rid in batch.expected}


def canonical(records, kind):
    from certpipe.core.normalize import normalise
    from certpipe.core.schema import kind_spec

    rows, reasons = normalise(records, kind_spec(kind))
    return [(r, sorted(x["code"] for x in why)) for r, why in zip(rows, reasons, strict=True)]


# ---------------------------------------------------------------- workbooks as hospitals make them


def template_file(path: Path, gcs=(), gbt=()) -> Path:
    from certpipe.sources.excel import template

    return template.build(path, {"GCS": gcs, "GBT": gbt})


def _as_his(value, ftype: str, field: str, rng: random.Random):
    """How a HIS export holds a value: dates as dd/mm/yyyy text, Excel dates or compact numbers; IDs and
    codes typed as numbers (leading zeros lost); names decomposed (NFD)."""
    if value in (None, ""):
        return None
    if ftype == "date" and value.isdigit() and len(value) == 8:
        pick = rng.randrange(3)
        if pick == 0:
            return f"{value[6:8]}/{value[4:6]}/{value[:4]}"
        if pick == 1:
            try:
                return dt.datetime.strptime(value, "%Y%m%d")
            except ValueError:
                return f"{value[6:8]}/{value[4:6]}/{value[:4]}"
        return int(value)
    if ftype == "datetime" and value.isdigit() and len(value) == 12:
        pick = rng.randrange(3)
        if pick == 0:
            return f"{value[6:8]}/{value[4:6]}/{value[:4]} {value[8:10]}:{value[10:12]}"
        if pick == 1:
            return dt.datetime.strptime(value, "%Y%m%d%H%M")
        return int(value)
    if ftype in ("id", "digits") and value.isdigit() and len(value) in (10, 12) and value[1] != "0":
        return int(value)  # Excel turned the ID into a number
    if ftype == "code" and value.isdigit() and field.startswith(("MA_DANTOC", "MATINH")):
        return int(value)
    if ftype == "int" and value.isdigit():
        return int(value)
    if ftype == "text" and field in ("HOTEN_NND", "TEN_CON", "HO_TEN", "NGUOI_THANTHICH"):
        return unicodedata.normalize("NFD", value)
    return value


def his_export(
    path: Path,
    sheets: list[tuple[str, str, list[dict]]],
    *,
    seed: int = 1,
    extra_sheet: bool = True,
    use_codes: bool = False,
) -> dict:
    """A HIS export: per sheet a title block, the header on row 5 (Vietnamese labels, or official codes), the
    columns shuffled plus a column we do not know, blank and formatting-only rows between the data. Returns
    {(sheet number, index of the record): Excel row} for the tests."""
    import openpyxl
    from openpyxl.styles import PatternFill

    from certpipe.core.schema import kind_spec

    rng = random.Random(seed)
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    where = {}
    number = 0
    if extra_sheet:
        ws = wb.create_sheet("Thông tin")
        ws["A1"] = "Báo cáo xuất từ phần mềm HIS"
        ws["A2"] = "Người xuất"
        ws["B2"] = "Phòng Kế hoạch tổng hợp"
        number += 1
    for title, kind, records in sheets:
        number += 1
        spec = kind_spec(kind)
        fields = list(spec.fields)
        rng.shuffle(fields)
        ws = wb.create_sheet(title)
        ws["A1"] = "SỞ Y TẾ"
        ws["C2"] = "DANH SÁCH " + spec.title.upper()
        ws["C3"] = f"Từ ngày 01/10/2026 đến ngày {NOW:%d/%m/%Y}"
        header = 5
        ws.cell(header, 1, "STT")
        for c, f in enumerate(fields, start=2):
            label = f.name if use_codes else f.label.split(" (")[0]
            ws.cell(header, c, unicodedata.normalize("NFD", label) if c % 3 == 0 else label)
        ws.cell(header, len(fields) + 2, "Ghi chú nội bộ")
        r = header
        for i, rec in enumerate(records):
            r += 1
            if i % 7 == 3:
                r += 1  # a blank row
            if i % 11 == 5:
                ws.cell(r, 3).fill = PatternFill("solid", fgColor="FFFF00")  # formatting only
                r += 1
            ws.cell(r, 1, i + 1)
            for c, f in enumerate(fields, start=2):
                v = _as_his(rec.get(f.name), f.type, f.name, rng)
                if v is not None:
                    ws.cell(r, c, v)
            where[(number, i)] = r
        ws.cell(r + 2, 3).fill = PatternFill("solid", fgColor="FFFF00")
    wb.save(path)
    return where


def xls_file(path: Path) -> Path:
    import xlwt

    wb = xlwt.Workbook()
    ws = wb.add_sheet("GCS")
    ws.write(0, 0, "MA_GCS")
    wb.save(str(path))
    return path


def encrypted_file(path: Path, source: Path) -> Path:
    import msoffcrypto

    with Path(source).open("rb") as f, Path(path).open("wb") as out:
        office = msoffcrypto.OfficeFile(f)
        office.encrypt("mat-khau", out)
    return path


def bomb_file(path: Path) -> Path:
    """A zip that looks like a workbook whose sheet inflates to 300 MB of spaces."""
    src = io.BytesIO()
    with zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
        with z.open("xl/worksheets/sheet1.xml", "w") as f:
            block = b" " * (1 << 20)
            for _ in range(300):
                f.write(block)
    path.write_bytes(src.getvalue())
    return path


# ---------------------------------------------------------------- buckets


@pytest.fixture
def bucket(tmp_path):
    from airflow.sdk import ObjectStoragePath

    root = tmp_path / "bucket"
    (root / "inbox" / FACILITY).mkdir(parents=True)
    return ObjectStoragePath(root.as_uri() + "/")


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server (moto) on loopback."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, monkeypatch, request):
    import boto3

    name = f"inbox-{abs(hash(request.node.name)) % 10**8}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_INBOX_S3",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "test-key",
                "password": "test-secret",
                "extra": {"endpoint_url": s3_server, "region_name": "us-east-1"},
            }
        ),
    )
    client = boto3.client(
        "s3",
        endpoint_url=s3_server,
        aws_access_key_id="test-key",
        aws_secret_access_key="test-secret",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=name)
    return {"url": f"s3://{name}/pilot", "conn_id": "inbox_s3", "client": client, "bucket": name}


@pytest.fixture
def excel_env(warehouse_dsn, monkeypatch, airflow_db):
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DB", airflow_conn(warehouse_dsn))
    monkeypatch.setenv("CERTPIPE_INBOX_MIN_AGE", "0")
    return warehouse_dsn


def rewrite_part(path: Path, part: str, edit) -> Path:
    """Rewrite one XML part of a workbook in place (raw zip surgery for malformed cases): edit(bytes) -> bytes."""
    with zipfile.ZipFile(path) as z:
        parts = [(i, z.read(i.filename)) for i in z.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for info, data in parts:
            z.writestr(info.filename, edit(data) if info.filename == part else data)
    return path


def sheet_part(path: Path, title: str) -> str:
    """The zip part of the sheet called `title`."""
    import re

    with zipfile.ZipFile(path) as z:
        wb = z.read("xl/workbook.xml").decode()
        rels = z.read("xl/_rels/workbook.xml.rels").decode()
    rid = re.search(rf'<sheet [^>]*name="{re.escape(title)}"[^>]*r:id="(rId\d+)"', wb).group(1)
    target = re.search(rf'<Relationship [^>]*Id="{rid}"[^>]*Target="([^"]+)"', rels) or re.search(
        rf'<Relationship [^>]*Target="([^"]+)"[^>]*Id="{rid}"', rels
    )
    t = target.group(1).lstrip("/")
    return t if t.startswith("xl/") else f"xl/{t}"
