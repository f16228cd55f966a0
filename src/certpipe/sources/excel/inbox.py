"""Solution 3: hospitals drop HIS-exported .xlsx files into a watched bucket; every file is processed once.

The bucket (Airflow ObjectStoragePath: a local folder by default, S3/MinIO by configuration alone):

    inbox/<facility>/<file>          hospitals drop files here
    processing/<facility>/<stamp>-<file>   taken out of the inbox at the first scan (no overwrite mid-way)
    processed/<facility>/<id>-<file>       after processing (also later drops of the same content)
    quarantine/<facility>/<id>-<file>      files that cannot be read
    results/<facility>/<id>-<name>-ket-qua.xlsx   the result workbook, for every file
    template/<template file>               the template hospitals download

Exactly once: `scan` hashes each new file (SHA-256 of its bytes) and claims it in wh.excel_file before anything
is read; a content already claimed (another name, or the same file dropped again) is not processed again.
`process` is resumable at every step (claimed → landed → ingested → done / quarantined): landing happens in
one transaction, each batch is ingested (by the ingestion core, the only path into the warehouse) in its own,
writing the result and moving the file are idempotent, and a file is only ever moved (copy, then delete the
source once the copy is there), never deleted. An advisory lock keeps two attempts off the same file.

Task functions return file ids and counts only: file names (they may name a patient) and records never
reach logs or XCom.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import hashlib
import logging
import os
import re
import secrets
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from certpipe import warehouse
from certpipe.alerts import check_refusal_rate
from certpipe.core.ingest import KEYS, ingest
from certpipe.core.normalize import norm_code
from certpipe.core.schema import kind_spec, reason, schemas_dir
from certpipe.sources.excel import config
from certpipe.sources.excel.reader import Limits, Unreadable, Workbook, check_file

log = logging.getLogger(__name__)
SOURCE = "excel"
FACILITY_DIR = re.compile(r"^[0-9A-Z]{5}$")
IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".download")
CHUNK_ROWS = 25_000  # rows per ingestion batch (bounds the memory of one ingest)
MIN_AGE_S = 15.0  # a file younger than this may still be being written (local folder)
FINAL = ("done", "quarantined")
_LOCK_NS = 7_263


# ---------------------------------------------------------------- configuration


def _setting(variable: str, env: str, default: str | None) -> str | None:
    try:
        from airflow.sdk import Variable

        value = Variable.get(variable, default=None)
    except Exception:
        value = None
    return value or os.environ.get(env) or default


def default_url() -> str:
    state = Path(os.environ.get("CERTPIPE_STATE_DIR") or schemas_dir().parents[1] / ".state")
    return (state / "bucket").resolve().as_uri()


def inbox_root(url: str | None = None, conn_id: str | None = None):
    """The watched bucket: Variable `certpipe_inbox_url` or env CERTPIPE_INBOX_URL (`file:///...` or
    `s3://bucket/prefix`, the connection id in the URL `s3://conn@bucket/` or in `certpipe_inbox_conn_id` /
    CERTPIPE_INBOX_CONN_ID); default: `.state/bucket` of the embedded bring-up."""
    from airflow.sdk import ObjectStoragePath

    url = url or _setting("certpipe_inbox_url", "CERTPIPE_INBOX_URL", default_url())
    conn_id = conn_id or _setting("certpipe_inbox_conn_id", "CERTPIPE_INBOX_CONN_ID", None)
    url = url.rstrip("/") + "/"
    return ObjectStoragePath(url, conn_id=conn_id) if conn_id else ObjectStoragePath(url)


def _child(root, key: str):
    p = root
    for part in key.split("/"):
        p = p / part
    return p


def _refresh(root) -> None:
    # s3fs caches listings: a long-lived worker would not see new files; a local folder has no cache
    with contextlib.suppress(AttributeError, NotImplementedError):
        root.fs.invalidate_cache()


def _mtime(st: dict) -> float | None:
    t = st.get("LastModified") or st.get("mtime") or st.get("last_modified")
    if isinstance(t, dt.datetime):
        return t.timestamp()
    return float(t) if t else None


def _ignored(name: str) -> bool:
    return name.startswith((".", "~$")) or name.lower().endswith(IGNORED_SUFFIXES)


def _files(root, area: str) -> Iterator[tuple[str, str, object]]:
    """(facility, name, path) of every file directly under <area>/<facility>/."""
    base = root / area
    if not base.exists():
        return
    for d in base.iterdir():
        if not d.is_dir() or not FACILITY_DIR.match(d.name):
            continue
        for p in d.iterdir():
            if p.is_file() and not _ignored(p.name):
                yield d.name, p.name, p


def _hash(path) -> tuple[bytes, int]:
    h, n = hashlib.sha256(), 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            n += len(block)
    return h.digest(), n


def _download(path, dest: Path) -> tuple[bytes, int]:
    h, n = hashlib.sha256(), 0
    with path.open("rb") as src, dest.open("wb") as out:
        while block := src.read(1 << 20):
            h.update(block)
            out.write(block)
            n += len(block)
    return h.digest(), n


def _upload(local: Path, dest) -> None:
    """Write a local file to the bucket: to a hidden temporary name first, then moved (atomic on a folder;
    an object appears whole on S3 anyway)."""
    tmp = dest.parent / f".{dest.name}.{secrets.token_hex(4)}.part"
    if dest.protocol == "file":
        folder = Path(dest.path).parent
        folder.mkdir(parents=True, exist_ok=True)
        # a part left by an attempt killed mid-write (SIGKILL: no cleanup ran); the file's lock keeps others away
        for stale in folder.glob(f".{glob.escape(dest.name)}.*.part"):
            stale.unlink(missing_ok=True)
    try:
        with local.open("rb") as src, tmp.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    except BaseException:  # e.g. the bucket's disk full: no half-written part left behind; the task retries
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _move(tmp, dest)


def _move(src, dest) -> None:
    """Move without ever losing the file: copy, check the copy is there, then delete the source."""
    if str(src) == str(dest):
        return
    if not src.exists():
        if dest.exists():
            return  # already moved (a resumed attempt)
        raise FileNotFoundError("neither the source nor the destination of a move exists")
    if src.protocol == "file" and dest.protocol == "file":
        Path(dest.path).parent.mkdir(parents=True, exist_ok=True)
        Path(src.path).replace(dest.path)
        return
    size = src.stat()["size"]
    src.copy(dest)
    if dest.stat()["size"] != size:
        raise OSError("copy incomplete; the source was kept")
    src.unlink()


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name[1:] else name


def final_key(area: str, facility: str, file_id: int, name: str) -> str:
    return f"{area}/{facility}/{file_id}-{name}"


def result_key(facility: str, file_id: int, name: str, drop_id: int | None = None) -> str:
    dup = f"-trung-{drop_id}" if drop_id else ""
    return f"results/{facility}/{file_id}{dup}-{_stem(name)}-ket-qua.xlsx"


def ensure_template(root) -> str:
    """Put the template where hospitals get it (template/<file name>), if it is not there yet."""
    from certpipe.sources.excel import template

    key = f"template/{config()['file_name']}"
    dest = _child(root, key)
    if not dest.exists():
        with tempfile.TemporaryDirectory(prefix="certpipe-tpl-") as tmp:
            local = template.build(Path(tmp) / "template.xlsx")
            _upload(local, dest)
    return key


def prepare(root, facilities: list[str]) -> None:
    """Bring-up: the template and one inbox folder per facility (a `.keep` marker on object storage)."""
    ensure_template(root)
    for f in facilities:
        d = root / "inbox" / f
        if d.protocol == "file":
            Path(d.path).mkdir(parents=True, exist_ok=True)
        else:
            (d / ".keep").write_bytes(b"")


# ---------------------------------------------------------------- ledger


def _file(conn: psycopg.Connection, file_id: int) -> dict:
    cur = conn.execute("SELECT * FROM wh.excel_file WHERE file_id = %s", (file_id,))
    row = cur.fetchone()
    if row is None:
        raise LookupError(f"Excel file {file_id} is not in the ledger")
    return dict(zip([d.name for d in cur.description], row, strict=True))


def scan(
    root, dsn: str, *, run_id: str | None = None, min_age: float = MIN_AGE_S, limits: Limits | None = None
) -> dict:
    """Take new files out of the inbox, claim each distinct content once, handle repeated drops.
    Returns {"file_ids": [...], counts}: the files (new or unfinished) to process."""
    limits = limits or Limits.from_env()
    _refresh(root)
    now = time.time()
    moved = young = 0
    for facility, name, path in list(_files(root, "inbox")):
        st = path.stat()
        mtime = _mtime(st)
        if min_age and mtime and now - mtime < min_age:
            young += 1
            continue
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S") + secrets.token_hex(2)
        _move(path, _child(root, f"processing/{facility}/{stamp}-{name}"))
        moved += 1
    if moved:
        _refresh(root)

    claimed = dups = waiting = 0
    todo: set[int] = set()
    with warehouse.connect(dsn) as conn:
        for facility, key_name, path in list(_files(root, "processing")):
            key = f"processing/{facility}/{key_name}"
            name = key_name.split("-", 1)[1] if "-" in key_name else key_name
            size = path.stat()["size"]
            if size > limits.max_bytes:  # not worth reading: claimed under its own key, quarantined
                digest = hashlib.sha256(b"oversized\0" + key.encode()).digest()
            else:
                digest, size = _hash(path)
            row = conn.execute(
                "INSERT INTO wh.excel_file (content_hash, facility_code, file_name, inbox_key, size_bytes, "
                "claimed_run, attempts) VALUES (%s, %s, %s, %s, %s, %s, 0) ON CONFLICT (content_hash) DO NOTHING "
                "RETURNING file_id",
                (digest, facility, name, key, size, run_id),
            ).fetchone()
            if row:
                conn.execute(
                    "INSERT INTO wh.excel_drop (file_id, object_key, outcome) VALUES (%s, %s, 'claimed')", (row[0], key)
                )
                conn.commit()
                todo.add(row[0])
                claimed += 1
                continue
            f = conn.execute(
                "SELECT file_id, status, inbox_key FROM wh.excel_file WHERE content_hash = %s", (digest,)
            ).fetchone()
            file_id, status, claimed_key = f
            if claimed_key == key:
                if status not in FINAL:
                    todo.add(file_id)  # claimed by an attempt that did not finish: resume it
                continue
            if status not in FINAL:
                waiting += 1  # same content as a file still in progress: decided once that one is done
                continue
            _duplicate(root, conn, file_id, facility, name, key, path)
            dups += 1
        todo.update(
            r[0] for r in conn.execute("SELECT file_id FROM wh.excel_file WHERE status NOT IN ('done', 'quarantined')")
        )
    out = {
        "file_ids": sorted(todo),
        "taken": moved,
        "claimed": claimed,
        "duplicates": dups,
        "waiting": waiting,
        "too_recent": young,
    }
    log.info("Excel inbox scan: %s", out)
    return out


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
    fkey = f"processed/{facility}/{file_id}-trung-{drop_id}-{name}"
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
        _upload(local, _child(root, rkey))
    _move(path, _child(root, fkey))
    conn.execute("UPDATE wh.excel_drop SET final_key = %s, result_key = %s WHERE drop_id = %s", (fkey, rkey, drop_id))
    conn.commit()
    log.info("Excel file %d (facility %s): dropped again; moved aside as a duplicate", file_id, facility)


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
        with warehouse.connect(dsn) as conn, tempfile.TemporaryDirectory(prefix="certpipe-xl-") as tmp:
            return _process(root, conn, file_id, Path(tmp), run_id, limits, chunk_rows)


def _locate(root, f: dict):
    for key in (
        f["inbox_key"],
        final_key("processed", f["facility_code"], f["file_id"], f["file_name"]),
        final_key("quarantine", f["facility_code"], f["file_id"], f["file_name"]),
    ):
        p = _child(root, key)
        if p.exists():
            return key, p
    return None, None


def _process(root, conn: psycopg.Connection, file_id: int, tmp: Path, run_id, limits: Limits, chunk_rows: int) -> dict:
    f = _file(conn, file_id)
    if f["status"] in FINAL:
        return _summary(f)
    conn.execute("UPDATE wh.excel_file SET attempts = attempts + 1, updated_at = now() WHERE file_id = %s", (file_id,))
    conn.commit()
    key, path = _locate(root, f)
    if path is None:
        raise FileNotFoundError(
            f"Excel file {file_id}: the claimed object is missing from processing/, processed/ and quarantine/"
        )
    if f["size_bytes"] > limits.max_bytes:
        return _quarantine(root, conn, f, key, "FILE_TOO_LARGE", tmp)
    local = tmp / "source.xlsx"
    digest, _ = _download(path, local)
    if digest != bytes(f["content_hash"]):
        raise RuntimeError(f"Excel file {file_id}: the stored object does not match the claimed content")

    if f["status"] == "claimed":
        try:
            check_file(local, limits)
            _land(conn, f, local, run_id, chunk_rows)
        except Unreadable as e:
            conn.rollback()
            return _quarantine(root, conn, f, key, e.code, tmp)
        f = _file(conn, file_id)
    if f["status"] == "landed":
        _ingest(conn, f)
        f = _file(conn, file_id)
    # ingested: feedback, then move out of processing/
    rkey = result_key(f["facility_code"], file_id, f["file_name"])
    per_sheet, rules = _sheet_counts(conn, file_id, f["sheets"])
    notes = _notes(f["sheets"])
    finished = dt.datetime.now(dt.UTC)
    out = tmp / "result.xlsx"
    from certpipe.sources.excel import result

    with conn.transaction():
        result.write(
            out,
            {
                "file_name": f["file_name"],
                "facility": f["facility_code"],
                "file_id": file_id,
                "received_at": f["claimed_at"],
                "finished_at": finished,
                "status": "done",
            },
            source=local,
            outcomes=lambda kind: _outcomes(conn, file_id, kind),
            per_sheet=per_sheet,
            rules=rules,
            notes=notes,
        )
    conn.commit()
    _upload(out, _child(root, rkey))
    fkey = final_key("processed", f["facility_code"], file_id, f["file_name"])
    _move(path, _child(root, fkey))
    counts = _counts(conn, file_id)
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
    log.info("Excel file %d (facility %s): %s", file_id, f["facility_code"], _summary(f))
    return _summary(f)


def _summary(f: dict) -> dict:
    """Safe for logs and XCom: ids, codes and counts, no file name."""
    return {
        "file_id": f["file_id"],
        "facility": f["facility_code"],
        "status": f["status"],
        "reason": f["reason_code"],
        **dict((f["counts"] or {}).items()),
    }


def _land(conn: psycopg.Connection, f: dict, local: Path, run_id, chunk_rows: int) -> None:
    """Read every data sheet and land its rows raw, in one transaction (all or nothing)."""
    file_id, facility = f["file_id"], f["facility_code"]
    buffers: dict[str, list[dict]] = {}
    chunks: Counter = Counter()
    sheets = []

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

    with conn.transaction(), Workbook(local) as wb:
        for sheet in wb.sheets():
            lay = sheet.layout
            note = {
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


def _ingest(conn: psycopg.Connection, f: dict) -> None:
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


def _outcomes(conn: psycopg.Connection, file_id: int, kind: str) -> Iterator[tuple[str, str, list | None]]:
    with conn.cursor(name=f"xl_out_{file_id}_{kind.lower()}") as cur:
        cur.itersize = 5000
        cur.execute(
            "SELECT r.source_record_id, r.outcome, r.reasons FROM wh.excel_file_batch b "
            "JOIN wh.batch_record r USING (batch_id) WHERE b.file_id = %s AND b.kind = %s "
            "ORDER BY b.chunk, r.row_no",
            (file_id, kind),
        )
        yield from cur


def _sheet_counts(conn: psycopg.Connection, file_id: int, sheets: list[dict]) -> tuple[list[dict], dict]:
    rows = conn.execute(
        "SELECT split_part(r.source_record_id, '!', 1)::int, r.outcome, count(*) FROM wh.excel_file_batch b "
        "JOIN wh.batch_record r USING (batch_id) WHERE b.file_id = %s GROUP BY 1, 2",
        (file_id,),
    ).fetchall()
    by_sheet: dict[int, Counter] = {}
    for number, outcome, n in rows:
        by_sheet.setdefault(number, Counter())[outcome] += n
    per_sheet = []
    for s in sheets:
        if s.get("kind"):
            c = by_sheet.get(s["number"], Counter())
            per_sheet.append({"sheet": s["name"], "kind": s["kind"], "received": sum(c.values()), **c})
    rules = dict(
        conn.execute(
            "SELECT code, count(*) FROM (SELECT DISTINCT r.batch_id, r.row_no, e->>'code' AS code "
            "FROM wh.excel_file_batch b JOIN wh.batch_record r USING (batch_id), jsonb_array_elements(r.reasons) e "
            "WHERE b.file_id = %s AND r.outcome = 'refused') t GROUP BY code",
            (file_id,),
        ).fetchall()
    )
    return per_sheet, rules


def _notes(sheets: list[dict]) -> list[str]:
    notes = []
    for s in sheets:
        if not s.get("kind"):
            notes.append(f'Trang "{s["name"]}": không có dòng tên cột của giấy chứng sinh/giấy báo tử, không đọc.')
        elif s.get("ignored"):
            cols = ", ".join(f'"{c}"' for c in s["ignored"][:20])
            notes.append(
                f'Trang "{s["name"]}" (dòng tên cột {s["header_row"]}): các cột không nhận ra hoặc bị '
                f"trùng nên không đọc: {cols}."
            )
    return notes


def _counts(conn: psycopg.Connection, file_id: int) -> dict:
    rows = conn.execute(
        "SELECT i.kind, i.received, i.stored, i.updated, i.unchanged, i.refused, i.refusals_by_rule "
        "FROM wh.excel_file_batch b JOIN wh.ingest_batch i USING (batch_id) WHERE b.file_id = %s",
        (file_id,),
    ).fetchall()
    total = Counter()
    rules: Counter = Counter()
    for kind, received, stored, updated, unchanged, refused, by_rule in rows:
        total.update(
            {
                "received": received,
                "stored": stored,
                "updated": updated,
                "unchanged": unchanged,
                "refused": refused,
                f"received_{kind.lower()}": received,
            }
        )
        rules.update(by_rule or {})
    return {
        **{k: total[k] for k in ("received", "stored", "updated", "unchanged", "refused")},
        "refusals_by_rule": dict(sorted(rules.items())),
        "batches": len(rows),
    }


def _quarantine(root, conn: psycopg.Connection, f: dict, key: str, code: str, tmp: Path) -> dict:
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
        },
    )
    _upload(out, _child(root, rkey))
    _move(_child(root, key), _child(root, fkey))
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
    log.info("Excel file %d (facility %s): quarantined (%s)", file_id, facility, code)
    return _summary(_file(conn, file_id))


def setting_min_age() -> str:
    """Seconds a file must have been in the inbox before it is taken (env CERTPIPE_INBOX_MIN_AGE)."""
    return _setting("certpipe_inbox_min_age", "CERTPIPE_INBOX_MIN_AGE", str(MIN_AGE_S))
