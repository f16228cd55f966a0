"""What a file is told besides its processed rows: quarantine and duplicate results, and the ledger row and
summary every answer is built from (ids, codes and counts only: safe for logs and XCom)."""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from pathlib import Path

import psycopg

from certpipe.sources.excel import storage
from certpipe.sources.excel.storage import child, final_key, move, name_hash, result_key, upload

log = logging.getLogger("certpipe.sources.excel.inbox")
SOURCE = "excel"


def _folder_label(folder: str) -> str:
    """A folder as logs show it: a facility code as is, anything else hashed."""
    return folder if storage.FACILITY.match(folder) else f"#{name_hash(folder)}"


def _file(conn: psycopg.Connection, file_id: int) -> dict:
    cur = conn.execute("SELECT * FROM wh.excel_file WHERE file_id = %s", (file_id,))
    row = cur.fetchone()
    if row is None:
        raise LookupError(f"Excel file {file_id} is not in the ledger")
    return dict(zip([d.name for d in cur.description], row, strict=True))


def _duplicate(root, conn, file_id: int, facility: str, name: str, key: str, path) -> None:
    """A later drop of a content already processed: told so in its own result, moved to processed/."""
    from certpipe.sources.excel import result

    orig = _file(conn, file_id)
    drop_id = conn.execute(
        "INSERT INTO wh.excel_drop (file_id, object_key, outcome) VALUES (%s, %s, 'duplicate') RETURNING drop_id",
        (file_id, key),
    ).fetchone()[0]
    conn.commit()
    rkey = result_key(facility, file_id, name, drop_id)
    fkey = storage.area_key("processed", facility, f"{file_id}-trung-{drop_id}-{storage.safe_name(name)}")
    extra = [
        f"Nội dung trùng với file mã {file_id} nộp lúc {result._when(orig['claimed_at'])}"
        + (f"; kết quả của file đó: {orig['result_key']}" if orig.get("result_key") else "")
        + "."
    ]
    with tempfile.TemporaryDirectory(prefix="certpipe-xl-") as tmp:
        local = result.write(
            Path(tmp) / "result.xlsx",
            {
                "file_name": name,
                "facility": facility,
                "file_id": file_id,
                "status": "duplicate",
                "received_at": dt.datetime.now(dt.UTC),
                "finished_at": dt.datetime.now(dt.UTC),
                "reason_code": "FILE_DUPLICATE",
                "extra": extra,
            },
        )
        upload(local, child(root, rkey))
    move(path, child(root, fkey))
    conn.execute("UPDATE wh.excel_drop SET final_key = %s, result_key = %s WHERE drop_id = %s", (fkey, rkey, drop_id))
    conn.execute("DELETE FROM wh.excel_pending WHERE object_key = %s", (key,))
    conn.commit()
    log.info("Excel file %d (folder %s): dropped again; moved aside as a duplicate", file_id, _folder_label(facility))


def _answer_twins(root, conn, file_id: int) -> None:
    """Drops of the same content that waited for this file: answered now, not at the next scan."""
    twins = conn.execute(
        "SELECT object_key, folder, file_name FROM wh.excel_pending WHERE twin_of = %s", (file_id,)
    ).fetchall()
    for key, folder, name in twins:
        path = child(root, key)
        if not path.exists():
            conn.execute("DELETE FROM wh.excel_pending WHERE object_key = %s", (key,))
            conn.commit()
            continue
        _duplicate(root, conn, file_id, folder, name, key, path)


def _summary(f: dict) -> dict:
    """Safe for logs and XCom: ids, codes and counts, no file name."""
    return {
        "file_id": f["file_id"],
        "facility": _folder_label(f["facility_code"]),
        "status": f["status"],
        "reason": f["reason_code"],
        **dict((f["counts"] or {}).items()),
    }


def _quarantine(
    root, conn: psycopg.Connection, f: dict, key: str, code: str, tmp: Path, detail: str | None = None
) -> dict:
    from certpipe.sources.excel import result

    file_id, facility = f["file_id"], f["facility_code"]
    rkey = result_key(facility, file_id, f["file_name"])
    fkey = final_key("quarantine", facility, file_id, f["file_name"])
    finished = dt.datetime.now(dt.UTC)
    out = result.write(
        tmp / "result.xlsx",
        {
            "file_name": f["file_name"],
            "facility": facility,
            "file_id": file_id,
            "received_at": f["claimed_at"],
            "finished_at": finished,
            "status": "quarantined",
            "reason_code": code,
            "extra": [detail] if detail else [],
        },
    )
    upload(out, child(root, rkey))
    move(child(root, key), child(root, fkey))
    conn.execute(
        "UPDATE wh.excel_file SET status = 'quarantined', reason_code = %s, finished_at = %s, "
        "updated_at = now(), final_key = %s, result_key = %s WHERE file_id = %s",
        (code, finished, fkey, rkey, file_id),
    )
    conn.execute(
        "UPDATE wh.excel_drop SET final_key = %s, result_key = %s WHERE file_id = %s AND outcome = 'claimed'",
        (fkey, rkey, file_id),
    )
    conn.commit()
    log.info("Excel file %d (folder %s): quarantined (%s)", file_id, _folder_label(facility), code)
    return _summary(_file(conn, file_id))
