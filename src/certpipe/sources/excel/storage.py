"""The inbox bucket: configuration, bounded object names, listing that survives bad entries, safe moves.

Any legal file name works: the names this package derives (processing/, processed/, quarantine/, results/ and
temporary uploads) are a short hash of the name as dropped plus its stem shortened to `STEM_BYTES` of UTF-8,
with path separators, `..` and control characters replaced, so every derived name stays far below the 255-byte
limit of a file name. The name as dropped lives only in the ledger (wh.excel_pending, wh.excel_file) and in
the hospital's own result workbook; logs show `name_hash(name)`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from certpipe.core.schema import schemas_dir

log = logging.getLogger(__name__)
STEM_BYTES = 60  # bytes of UTF-8 kept of a dropped name's stem in derived names
MAX_DEPTH = 4  # sub-folder levels searched under inbox/<facility>/
JUNK = frozenset({".ds_store", "thumbs.db", "desktop.ini", ".keep", ".gitkeep"})
PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".download")
FACILITY = re.compile(r"^[0-9A-Z]{5}$")
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+|\.{2,}')


# ---------------------------------------------------------------- configuration


def setting(variable: str, env: str, default: str | None) -> str | None:
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

    url = url or setting("certpipe_inbox_url", "CERTPIPE_INBOX_URL", default_url())
    conn_id = conn_id or setting("certpipe_inbox_conn_id", "CERTPIPE_INBOX_CONN_ID", None)
    url = url.rstrip("/") + "/"
    return ObjectStoragePath(url, conn_id=conn_id) if conn_id else ObjectStoragePath(url)


def known_facilities() -> frozenset[str]:
    """Facilities allowed to drop files: Variable `certpipe_inbox_facilities` / env CERTPIPE_INBOX_FACILITIES
    (JSON list or comma-separated codes) and the hospitals of Variable `his_hospitals`."""
    out: set[str] = set()
    raw = setting("certpipe_inbox_facilities", "CERTPIPE_INBOX_FACILITIES", None)
    if raw:
        try:
            items = json.loads(raw)
        except ValueError:
            items = raw.split(",")
        out.update(str(i).strip() for i in items if str(i).strip())
    hospitals = setting("his_hospitals", "AIRFLOW_VAR_HIS_HOSPITALS", None)
    if hospitals:
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            out.update(str(h.get("facility", "")).strip() for h in json.loads(hospitals) if isinstance(h, dict))
    return frozenset(f for f in out if FACILITY.match(f))


# ---------------------------------------------------------------- names


def name_hash(name: str) -> str:
    """What logs show instead of a file name (which may name a patient)."""
    return hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:10]


def readable(name: str) -> str:
    """A name as the ledger can hold it: bytes that are not UTF-8 (a name written by an old Windows tool in
    another code page) shown as U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _clip(text: str, max_bytes: int) -> str:
    b = text.encode("utf-8", "surrogateescape")
    if len(b) <= max_bytes:
        return text
    return b[:max_bytes].decode("utf-8", "ignore")


def split_name(name: str) -> tuple[str, str]:
    """(stem, extension with its dot, lower case; '' if none or odd) of the last part of a dropped name."""
    last = name.rsplit("/", 1)[-1]
    stem, dot, ext = last.rpartition(".")
    if not dot or not stem or not re.fullmatch(r"[A-Za-z0-9]{1,8}", ext):
        return last, ""
    return stem, "." + ext.lower()


def safe_stem(name: str) -> str:
    """A short, harmless stem for derived names: separators, `..` and control characters replaced, at most
    STEM_BYTES of UTF-8, and a hash of the full name when anything was changed or cut."""
    stem, _ = split_name(name)
    clean = unicodedata.normalize("NFC", readable(stem))
    clean = _UNSAFE.sub("_", clean).strip(" ._-")
    short = _clip(clean, STEM_BYTES).rstrip(" ._-")
    if short != stem or "/" in name:
        short = f"{short}-{name_hash(name)[:8]}" if short else name_hash(name)[:8]
    return short


def safe_name(name: str) -> str:
    return safe_stem(name) + split_name(name)[1]


def area_key(area: str, folder: str, name: str) -> str:
    """<area>/<folder>/<name>; files dropped directly under inbox/ have the folder '_'."""
    return f"{area}/{_clip(folder, 200) or '_'}/{name}"


def processing_key(folder: str, name: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S") + secrets.token_hex(3)
    return area_key("processing", folder, f"{stamp}-{safe_name(name)}")


def final_key(area: str, folder: str, file_id: int, name: str) -> str:
    return area_key(area, folder, f"{file_id}-{safe_name(name)}")


def result_key(folder: str, file_id: int, name: str, drop_id: int | None = None) -> str:
    dup = f"-trung-{drop_id}" if drop_id else ""
    return area_key("results", folder, f"{file_id}{dup}-{safe_stem(name)}-ket-qua.xlsx")


# ---------------------------------------------------------------- objects


def child(root, key: str):
    p = root
    for part in key.split("/"):
        p = p / part
    return p


def refresh(root) -> None:
    # s3fs caches listings: a long-lived worker would not see new files; a local folder has no cache
    with contextlib.suppress(AttributeError, NotImplementedError):
        root.fs.invalidate_cache()


def mtime(st: dict) -> float | None:
    t = st.get("LastModified") or st.get("mtime") or st.get("last_modified")
    if isinstance(t, dt.datetime):
        return t.timestamp()
    return float(t) if t else None


def is_junk(name: str) -> bool:
    """System files and Excel's lock files: never a hospital's file, left where they are."""
    return name.lower() in JUNK or name.startswith("~$")


def is_partial(name: str) -> bool:
    """A download or copy in progress (browsers, sync tools): taken only once it is stale."""
    return name.lower().endswith(PARTIAL_SUFFIXES)


class Listing:
    """Walk an area entry by entry; an entry that cannot be read is counted and skipped, never fatal."""

    def __init__(self) -> None:
        self.errors = 0

    def _entries(self, d) -> list:
        try:
            return list(d.iterdir())
        except (OSError, ValueError) as e:
            self.errors += 1
            log.warning("Excel inbox: folder %s not listed: %s", name_hash(str(d)), type(e).__name__)
            return []

    def _kind(self, p) -> str | None:
        try:
            return "dir" if p.is_dir() else "file" if p.is_file() else None
        except (OSError, ValueError) as e:
            self.errors += 1
            log.warning("Excel inbox: entry %s skipped: %s", name_hash(p.name), type(e).__name__)
            return None

    def files(self, root, area: str, depth: int = MAX_DEPTH) -> Iterator[tuple[str, str, Any]]:
        """(folder, name relative to the folder, path): files under <area>/<folder>/ (sub-folders included,
        their path in the name) and directly under <area>/ (folder '')."""
        base = root / area
        try:
            if not base.exists():
                return
        except (OSError, ValueError):
            self.errors += 1
            return
        for entry in self._entries(base):
            kind = self._kind(entry)
            if kind == "file":
                yield "", entry.name, entry
            elif kind == "dir":
                yield from self._walk(entry.name, entry, "", depth)

    def _walk(self, folder: str, d, prefix: str, depth: int) -> Iterator[tuple[str, str, Any]]:
        for entry in self._entries(d):
            kind = self._kind(entry)
            if kind == "file":
                yield folder, prefix + entry.name, entry
            elif kind == "dir" and depth > 1 and not entry.name.startswith("."):
                yield from self._walk(folder, entry, f"{prefix}{entry.name}/", depth - 1)


def sha256_of(path) -> tuple[bytes, int]:
    h, n = hashlib.sha256(), 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            n += len(block)
    return h.digest(), n


def download(path, dest: Path) -> tuple[bytes, int]:
    h, n = hashlib.sha256(), 0
    with path.open("rb") as src, dest.open("wb") as out:
        while block := src.read(1 << 20):
            h.update(block)
            out.write(block)
            n += len(block)
    return h.digest(), n


def upload(local: Path, dest) -> None:
    """Write a local file to the bucket: to a hidden temporary name first (bounded: derived names are), then
    moved (atomic on a folder; an object appears whole on S3 anyway)."""
    tag = hashlib.sha256(dest.name.encode()).hexdigest()[:12]  # the same for every attempt at this object
    tmp = dest.parent / f".{tag}.{secrets.token_hex(6)}.part"
    if dest.protocol == "file":
        folder = Path(dest.path).parent
        folder.mkdir(parents=True, exist_ok=True)
        # a part left by an attempt killed mid-write (SIGKILL: no cleanup ran); the file's lock keeps others away
        for stale in folder.glob(f".{tag}.*.part"):
            stale.unlink(missing_ok=True)
    try:
        with local.open("rb") as src, tmp.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    except BaseException:  # e.g. the bucket's disk full: no half-written part left behind; the task retries
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    move(tmp, dest)


def move(src, dest) -> None:
    """Move without ever losing the file: copy, check the copy is there, then delete the source. Errors name
    neither path (a file name may name a patient)."""
    if str(src) == str(dest):
        return
    try:
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
    except OSError as e:
        raise OSError(e.errno, f"move failed ({type(e).__name__})") from None


def ensure_template(root) -> str:
    """Put the template where hospitals get it (template/<file name>), if it is not there yet."""
    import tempfile

    from certpipe.sources.excel import config, template

    key = f"template/{config()['file_name']}"
    dest = child(root, key)
    if not dest.exists():
        with tempfile.TemporaryDirectory(prefix="certpipe-tpl-") as tmp:
            local = template.build(Path(tmp) / "template.xlsx")
            upload(local, dest)
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
