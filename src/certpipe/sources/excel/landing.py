"""Landing a file's rows (one transaction) and ingesting them batch by batch through the ingestion core,
with the refusals only the Excel adapter can find: rows of another facility, numbers Excel rounded, date-times
whose time is missing."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from certpipe import warehouse
from certpipe.alerts import check_refusal_rate
from certpipe.core.ingest import KEYS, ingest
from certpipe.core.normalize import norm_code
from certpipe.core.schema import kind_spec, reason
from certpipe.sources.excel import config
from certpipe.sources.excel.reader import Limits, Unreadable, Workbook
from certpipe.sources.excel.values import date_only, rounded

log = logging.getLogger(__name__)
SOURCE = "excel"


LIST_RULES = {"sex": "SEX_CODE", "flag": "FLAG_VALUE"}  # what a word in a numeric coded field is told


def value_refusals(kind: str, payloads: list) -> dict[int, list[dict]]:
    """Values Excel changed (NUMBER_ROUNDED), date-times without their time (TIME_MISSING) and words that are
    no official name in a numeric coded field (the rule whose message lists the codes), by row index."""
    spec = kind_spec(kind)
    lists = config()["field_lists"]
    out: dict[int, list[dict]] = {}
    for i, p in enumerate(payloads):
        if not isinstance(p, dict):
            continue
        for name, v in p.items():
            f = spec.by_name.get(name)
            if f is None or v is None:
                continue
            if rounded(v, f.type, name):
                out.setdefault(i, []).append(reason(name, "NUMBER_ROUNDED"))
            elif f.type == "datetime" and date_only(v):
                out.setdefault(i, []).append(reason(name, "TIME_MISSING"))
            elif (rule := LIST_RULES.get(lists.get(name, ""))) and isinstance(v, str) and not v.strip().isdigit():
                out.setdefault(i, []).append(reason(name, rule))
    return out


def land(conn: psycopg.Connection, f: dict, local: Path, run_id, chunk_rows: int, limits: Limits) -> None:
    """Read every data sheet and land its rows raw, in one transaction (all or nothing)."""
    file_id, facility = f["file_id"], f["facility_code"]
    buffers: dict[str, list[dict]] = {}
    chunks: Counter = Counter()
    sheets: list[dict[str, Any]] = []

    def flush(kind: str) -> None:
        buf = buffers.get(kind)
        if not buf:
            return
        batch_id = warehouse.create_batch(
            conn,
            source=SOURCE,
            source_ref=facility,
            kind=kind,
            run_id=run_id,
            meta={"file_id": file_id, "chunk": chunks[kind]},
        )
        warehouse.land(conn, batch_id, buf)
        conn.execute(
            "INSERT INTO wh.excel_file_batch (file_id, batch_id, kind, chunk) VALUES (%s, %s, %s, %s)",
            (file_id, batch_id, kind, chunks[kind]),
        )
        chunks[kind] += 1
        buf.clear()

    with conn.transaction(), Workbook(local, limits) as wb:
        for sheet in wb.sheets():
            lay = sheet.layout
            note: dict[str, Any] = {
                "number": lay.number,
                "name": lay.name,
                "kind": lay.kind,
                "header_row": lay.header_row,
                "ignored": lay.ignored,
                "engine": lay.engine,
                "rows": 0,
            }
            sheets.append(note)
            if not lay.kind:
                continue
            buf = buffers.setdefault(lay.kind, [])
            for row_no, _, rec in sheet.data_rows():
                buf.append({"id": f"{lay.number}!{row_no}", "record": rec})
                note["rows"] += 1
                if len(buf) >= chunk_rows:
                    flush(lay.kind)
            note.update(sheet.notes())
        for kind in list(buffers):
            flush(kind)
        if not any(s["kind"] for s in sheets):
            raise Unreadable("FILE_NO_DATA")
        conn.execute(
            "UPDATE wh.excel_file SET status = 'landed', sheets = %s, updated_at = now() WHERE file_id = %s",
            (Jsonb(sheets), file_id),
        )
    conn.commit()
    log.info(
        "Excel file %d (facility %s): landed %d row(s) from %d data sheet(s)",
        file_id,
        facility,
        sum(s["rows"] for s in sheets),
        sum(1 for s in sheets if s["kind"]),
    )


def _other_facility(kind: str, payloads: list, facility: str) -> dict[int, list[dict]]:
    """Rows that name another facility than the folder's: refused FACILITY_MISMATCH (by row index).
    Rows without a facility code get the folder's (in place). Codes are compared normalised, so a code that
    Excel turned into a number (lost leading zero) or typed with spaces still matches."""
    fac_field = KEYS[kind]["facility"]
    pad = kind_spec(kind).by_name[fac_field].pad
    own = norm_code(facility, pad)
    refusals: dict[int, list[dict]] = {}
    for i, p in enumerate(payloads):
        if not isinstance(p, dict):
            continue
        value = next((p[n] for n in (fac_field, "MA_CSKCB", "MACSKCB") if p.get(n)), None)
        if value is None:  # no facility code: the dropping hospital's own
            p[fac_field] = facility
        elif (code := norm_code(value, pad)) and code != own:  # blank (spaces only): left to validation
            refusals[i] = [reason(fac_field, "FACILITY_MISMATCH")]
    return refusals


def ingest_file(conn: psycopg.Connection, f: dict) -> None:
    """Every landed batch of the file through the ingestion core, one transaction each; a batch refused
    above the threshold raises an alert (Variable `alerting`)."""
    facility = f["facility_code"]
    batches = conn.execute(
        "SELECT b.batch_id, b.kind FROM wh.excel_file_batch b JOIN wh.ingest_batch i USING (batch_id) "
        "WHERE b.file_id = %s AND i.status = 'landed' ORDER BY b.kind, b.chunk",
        (f["file_id"],),
    ).fetchall()
    for batch_id, kind in batches:
        ids, payloads = warehouse.landed(conn, batch_id)
        refusals = _other_facility(kind, payloads, facility)
        for i, why in value_refusals(kind, payloads).items():
            refusals[i] = [*refusals.get(i, []), *why]
        result = ingest(
            conn,
            batch_id=batch_id,
            kind=kind,
            source=SOURCE,
            source_ref=facility,
            records=payloads,
            record_ids=ids,
            refusals=refusals,
        )
        conn.commit()
        check_refusal_rate({**result.summary(), "source_ref": facility}, source=SOURCE)
    conn.execute("UPDATE wh.excel_file SET status = 'ingested', updated_at = now() WHERE file_id = %s", (f["file_id"],))
    conn.commit()
