"""Solution 3: hospitals drop HIS-exported .xlsx files into a watched bucket; every file is processed once.

The bucket (Airflow ObjectStoragePath: a local folder by default, S3/MinIO by configuration alone; names are
derived by `certpipe.sources.excel.storage`: a short hash and a shortened stem, any legal name works):

    inbox/<facility>/[<sub-folders>/]<file>   hospitals drop files here
    processing/<facility>/<stamp>-<name>      taken out of the inbox at the first scan (no overwrite mid-way)
    processed/<facility>/<id>-<name>          after processing (also later drops of the same content)
    quarantine/<facility>/<id>-<name>         files that cannot be read, or dropped in an unknown folder
    results/<facility>/<id>-<name>-ket-qua.xlsx   the result workbook, for every file
    template/<template file>                  the template hospitals download

Exactly once: `scan` records the name as dropped (wh.excel_pending), moves the file to processing/, hashes it
(SHA-256 of its bytes) and claims it in wh.excel_file before anything is read; a content already claimed
(another name, or the same file dropped again) is not processed again: it is answered as a duplicate as soon
as the original is done. `process` is resumable at every step (claimed → landed → ingested → done /
quarantined), and bounded: a file whose attempts keep dying (worker killed, timed out) is quarantined after
`max_attempts()` attempts, so nothing stays in processing/. An advisory lock keeps two attempts off one file.

Task functions return file ids and counts only: file names (they may name a patient) and records never
reach logs or XCom (logs show `storage.name_hash(name)` when they must point at a name).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from certpipe import warehouse
from certpipe.alerts import notify
from certpipe.sources.excel import feedback, storage
from certpipe.sources.excel.answers import _answer_twins, _duplicate, _file, _quarantine, _summary
from certpipe.sources.excel.landing import ingest_file as _ingest
from certpipe.sources.excel.landing import land as _land
from certpipe.sources.excel.reader import Limits, Unreadable, check_file
from certpipe.sources.excel.storage import (  # noqa: F401 - the module's public names since the split
    child,
    ensure_template,
    final_key,
    inbox_root,
    move,
    name_hash,
    prepare,
    result_key,
    upload,
)

log = logging.getLogger(__name__)
SOURCE = "excel"
CHUNK_ROWS = 25_000  # rows per ingestion batch (bounds the memory of one ingest)
MIN_AGE_S = 15.0  # a file younger than this may still be being written (local folder)
STALE_PARTIAL_S = 3600.0  # a partial download (.part, .crdownload ...) untouched this long is taken and answered
MAX_ATTEMPTS = 3
FINAL = ("done", "quarantined")
BRIEF_NOTE = (
    "Các dòng đã được xử lý và lưu như tóm tắt dưới đây, nhưng không tạo được bảng kết quả từng dòng sau nhiều lần "
    "thử. Nếu cần kết quả từng dòng, hãy liên hệ bộ phận hỗ trợ kèm mã file."
)
_LOCK_NS = 7_263


def max_attempts() -> int:
    """Attempts at reading a file before it is quarantined (env CERTPIPE_EXCEL_MAX_ATTEMPTS)."""
    return int(os.environ.get("CERTPIPE_EXCEL_MAX_ATTEMPTS") or MAX_ATTEMPTS)


# ---------------------------------------------------------------- ledger


def scan(
    root,
    dsn: str,
    *,
    run_id: str | None = None,
    min_age: float = MIN_AGE_S,
    limits: Limits | None = None,
    facilities=None,
    stale_partial: float = STALE_PARTIAL_S,
) -> dict:
    """Take new files out of the inbox, claim each distinct content once, handle repeated drops.
    `facilities`: the known facility codes (default `storage.known_facilities()`); a file in another folder is
    claimed to be quarantined with a result saying so. Returns {"file_ids": [...], counts}: the files (new or
    unfinished) to process."""
    limits = limits or Limits.from_env()
    known = frozenset(facilities) if facilities is not None else storage.known_facilities()
    storage.refresh(root)
    now = time.time()
    moved = young = skipped = 0
    listing = storage.Listing()
    with warehouse.connect(dsn) as conn:
        for folder, name, path in list(listing.files(root, "inbox")):
            base = name.rsplit("/", 1)[-1]
            if storage.is_junk(base):
                continue
            key = None
            try:
                mtime = storage.mtime(path.stat())
                age = now - mtime if mtime else None
                if (min_age and age is not None and age < min_age) or (
                    storage.is_partial(base) and (age is None or age < stale_partial)
                ):
                    young += 1
                    continue
                key = storage.processing_key(folder, name)
                conn.execute(
                    "INSERT INTO wh.excel_pending (object_key, folder, file_name) VALUES (%s, %s, %s)",
                    (key, storage.readable(folder), storage.readable(name)),
                )
                conn.commit()
                move(path, child(root, key))
                moved += 1
            except (OSError, ValueError, psycopg.DataError) as e:
                conn.rollback()
                if key:
                    conn.execute("DELETE FROM wh.excel_pending WHERE object_key = %s", (key,))
                    conn.commit()
                skipped += 1
                log.warning("Excel inbox: file %s left in the inbox: %s", name_hash(name), type(e).__name__)
        if moved:
            storage.refresh(root)

        claimed = dups = waiting = 0
        todo: set[int] = set()
        unknown: Counter = Counter()  # folder -> files claimed there this scan
        for dirname, key_name, path in list(listing.files(root, "processing", depth=1)):
            key = f"processing/{dirname or '_'}/{key_name}" if dirname else f"processing/{key_name}"
            try:
                outcome, file_id = _claim(root, conn, key, dirname, key_name, path, known, limits, run_id)
            except (OSError, ValueError, psycopg.DataError) as e:
                conn.rollback()
                skipped += 1
                log.warning("Excel inbox: object %s not claimed: %s", name_hash(key), type(e).__name__)
                continue
            if outcome == "claimed":
                claimed += 1
                if file_id is not None and (folder := unknown_folder(conn, file_id)) is not None:
                    unknown[folder] += 1
            elif outcome == "duplicate":
                dups += 1
            elif outcome == "waiting":
                waiting += 1
            if file_id is not None and outcome in ("claimed", "resume"):
                todo.add(file_id)
        todo.update(
            r[0] for r in conn.execute("SELECT file_id FROM wh.excel_file WHERE status NOT IN ('done', 'quarantined')")
        )
        for folder, n in sorted(unknown.items()):  # one alert per folder and scan, naming it
            notify(
                {
                    "event": "excel_unknown_facility",
                    "severity": "warning",
                    "source": SOURCE,
                    "source_ref": folder[:80],
                    "received": n,
                }
            )
        busy = _in_progress(conn, todo)  # held by a task of an earlier run (a long file): not this run's work
        todo -= busy
    out = {
        "file_ids": sorted(todo),
        "taken": moved,
        "claimed": claimed,
        "duplicates": dups,
        "waiting": waiting,
        "too_recent": young,
        "skipped": skipped + listing.errors,
        "in_progress": len(busy),
    }
    log.info("Excel inbox scan: %s", out)
    return out


def unknown_folder(conn, file_id: int) -> str | None:
    """The folder of a file claimed in a folder that is no known facility, else None."""
    row = conn.execute(
        "SELECT facility_code FROM wh.excel_file WHERE file_id = %s AND reason_code = 'FILE_UNKNOWN_FACILITY' "
        "AND status = 'claimed'",
        (file_id,),
    ).fetchone()
    return row[0] if row else None


def _in_progress(conn, file_ids: set[int]) -> set[int]:
    """Files whose advisory lock another session holds: being processed right now."""
    if not file_ids:
        return set()
    rows = conn.execute(
        "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s "
        "AND objsubid = 2 AND objid::bigint = ANY(%s)",
        (_LOCK_NS, sorted(file_ids)),
    )
    return {r[0] for r in rows}


def _claim(root, conn, key: str, dirname: str, key_name: str, path, known, limits: Limits, run_id):
    """Claim one object of processing/: (outcome, file_id) with outcome claimed | resume | waiting | duplicate."""
    pend = conn.execute("SELECT folder, file_name FROM wh.excel_pending WHERE object_key = %s", (key,)).fetchone()
    if pend:
        folder, name = pend
    else:  # taken by an earlier version of the scan: the name is in the key
        folder = "" if dirname == "_" else dirname
        name = key_name.split("-", 1)[1] if "-" in key_name else key_name
    size = path.stat()["size"]
    unknown = None if folder in known else "FILE_UNKNOWN_FACILITY"
    if size > limits.max_bytes or unknown:
        # not read: claimed under its own key and quarantined; the same content dropped again in the right
        # folder (or split) is a new file, not a duplicate of this one
        digest = hashlib.sha256(b"not-read\0" + key.encode("utf-8", "surrogateescape")).digest()
    else:
        digest, size = storage.sha256_of(path)
    row = conn.execute(
        "INSERT INTO wh.excel_file (content_hash, facility_code, file_name, inbox_key, size_bytes, "
        "claimed_run, attempts, reason_code) VALUES (%s, %s, %s, %s, %s, %s, 0, %s) "
        "ON CONFLICT (content_hash) DO NOTHING RETURNING file_id",
        (digest, folder, name, key, size, run_id, unknown),
    ).fetchone()
    if row:
        conn.execute(
            "INSERT INTO wh.excel_drop (file_id, object_key, outcome) VALUES (%s, %s, 'claimed')", (row[0], key)
        )
        conn.execute("DELETE FROM wh.excel_pending WHERE object_key = %s", (key,))
        conn.commit()
        return "claimed", row[0]
    file_id, status, claimed_key = conn.execute(
        "SELECT file_id, status, inbox_key FROM wh.excel_file WHERE content_hash = %s", (digest,)
    ).fetchone()
    if claimed_key == key:
        return ("resume" if status not in FINAL else "final"), file_id
    if status not in FINAL:  # same content as a file in progress: answered as soon as that one is done
        conn.execute(
            "INSERT INTO wh.excel_pending (object_key, folder, file_name, twin_of) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (object_key) DO UPDATE SET twin_of = EXCLUDED.twin_of",
            (key, folder, name, file_id),
        )
        conn.commit()
        return "waiting", file_id
    _duplicate(root, conn, file_id, folder, name, key, path)
    return "duplicate", file_id


# ---------------------------------------------------------------- processing one file


def process(
    root,
    dsn: str,
    file_id: int,
    *,
    run_id: str | None = None,
    limits: Limits | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> dict:
    """Process one claimed file to the end (resumes where an earlier attempt stopped). Counts only."""
    limits = limits or Limits.from_env()
    with psycopg.connect(dsn, autocommit=True, application_name="certpipe-lock") as lock:
        if not lock.execute("SELECT pg_try_advisory_lock(%s, %s)", (_LOCK_NS, file_id)).fetchone()[0]:
            raise RuntimeError(f"Excel file {file_id} is being processed by another task; retry later")
        try:
            with warehouse.connect(dsn) as conn, tempfile.TemporaryDirectory(prefix="certpipe-xl-") as tmp:
                out = _process(root, conn, file_id, Path(tmp), run_id, limits, chunk_rows)
                try:
                    _answer_twins(root, conn, file_id)
                except (OSError, ValueError, psycopg.DataError) as e:  # the next scan answers them
                    conn.rollback()
                    log.warning("Excel file %d: later drops not answered yet: %s", file_id, type(e).__name__)
                return out
        finally:
            # released now, not when the server gets round to ending the closed session: a retry right after a
            # failure (disk full, say) would otherwise find the file "being processed by another task"
            with contextlib.suppress(psycopg.Error):
                lock.execute("SELECT pg_advisory_unlock(%s, %s)", (_LOCK_NS, file_id))


def _locate(root, f: dict):
    for key in (
        f["inbox_key"],
        final_key("processed", f["facility_code"], f["file_id"], f["file_name"]),
        final_key("quarantine", f["facility_code"], f["file_id"], f["file_name"]),
    ):
        p = child(root, key)
        if p.exists():
            return key, p
    return None, None


def _process(root, conn: psycopg.Connection, file_id: int, tmp: Path, run_id, limits: Limits, chunk_rows: int) -> dict:
    f = _file(conn, file_id)
    if f["status"] in FINAL:
        return _summary(f)
    attempts = conn.execute(
        "UPDATE wh.excel_file SET attempts = attempts + 1, updated_at = now() WHERE file_id = %s RETURNING attempts",
        (file_id,),
    ).fetchone()[0]
    conn.commit()
    key, path = _locate(root, f)
    if path is None:
        raise FileNotFoundError(
            f"Excel file {file_id}: the claimed object is missing from processing/, processed/ and quarantine/"
        )
    if f["status"] == "claimed" and f["reason_code"] == "FILE_UNKNOWN_FACILITY":
        return _quarantine(root, conn, f, key, "FILE_UNKNOWN_FACILITY", tmp)
    if f["status"] == "claimed" and attempts > max_attempts():  # earlier attempts died reading it
        return _quarantine(
            root,
            conn,
            f,
            key,
            "FILE_WORKER_LOST",
            tmp,
            detail=f"Số lần đã thử: {attempts - 1}.",
        )
    if f["size_bytes"] > limits.max_bytes:
        return _quarantine(root, conn, f, key, "FILE_TOO_LARGE", tmp)
    local = tmp / "source.xlsx"
    digest, _ = storage.download(path, local)
    if digest != bytes(f["content_hash"]):
        raise RuntimeError(f"Excel file {file_id}: the stored object does not match the claimed content")

    if f["status"] == "claimed":
        try:
            check_file(local, limits)
            _land(conn, f, local, run_id, chunk_rows, limits)
        except Unreadable as e:
            conn.rollback()
            return _quarantine(root, conn, f, key, e.code, tmp, detail=e.detail)
        f = _file(conn, file_id)
    if f["status"] == "landed":
        _ingest(conn, f)
        f = _file(conn, file_id)
    # ingested: feedback, then move out of processing/
    rkey = result_key(f["facility_code"], file_id, f["file_name"])
    per_sheet, rules = feedback.sheet_counts(conn, file_id, f["sheets"])
    notes = feedback.notes(f["sheets"])
    finished = dt.datetime.now(dt.UTC)
    out = tmp / "result.xlsx"
    from certpipe.sources.excel import result

    info = {
        "file_name": f["file_name"],
        "facility": f["facility_code"],
        "file_id": file_id,
        "received_at": f["claimed_at"],
        "finished_at": finished,
        "status": "done",
    }
    # earlier attempts died after the rows were stored (writing the detailed result): answer with the summary
    brief = attempts > max_attempts()
    with conn.transaction():
        result.write(
            out,
            {**info, "extra": [BRIEF_NOTE]} if brief else info,
            source=None if brief else local,
            outcomes=None if brief else (lambda kind: feedback.outcomes(conn, file_id, kind)),
            per_sheet=per_sheet,
            rules=rules,
            notes=notes,
        )
    conn.commit()
    upload(out, child(root, rkey))
    fkey = final_key("processed", f["facility_code"], file_id, f["file_name"])
    move(path, child(root, fkey))
    counts = feedback.counts(conn, file_id)
    for (batch_id,) in conn.execute("SELECT batch_id FROM wh.excel_file_batch WHERE file_id = %s", (file_id,)):
        warehouse.mark_batch(conn, batch_id, "acknowledged", {"result_key": rkey})
    conn.execute(
        "UPDATE wh.excel_file SET status = 'done', finished_at = %s, updated_at = now(), final_key = %s, "
        "result_key = %s, counts = %s WHERE file_id = %s",
        (finished, fkey, rkey, Jsonb(counts), file_id),
    )
    conn.execute(
        "UPDATE wh.excel_drop SET final_key = %s, result_key = %s WHERE file_id = %s AND outcome = 'claimed'",
        (fkey, rkey, file_id),
    )
    conn.commit()
    f = _file(conn, file_id)
    log.info("Excel file %d: %s", file_id, _summary(f))
    return _summary(f)


def setting_min_age() -> str:
    """Seconds a file must have been in the inbox before it is taken (env CERTPIPE_INBOX_MIN_AGE)."""
    return storage.setting("certpipe_inbox_min_age", "CERTPIPE_INBOX_MIN_AGE", str(MIN_AGE_S))
