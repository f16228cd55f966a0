"""Solution 2: the BHXH certificate database: windowed bulk pull per pilot province, and registrar look-ups.

Both land the raw records as a batch and run them through the ingestion core (source "bhxh"). Task functions
return batch ids and counts only (XCom, UI); a look-up's personal ID appears only masked (last 3 digits).
"""

from __future__ import annotations

import datetime as dt
import logging
import re

from certpipe import clock, config, warehouse
from certpipe.alerts import check_refusal_rate
from certpipe.sources import ingest_batch, land_batch
from certpipe.sources.bhxh.hook import CRITERIA, BhxhHook

log = logging.getLogger(__name__)
SOURCE = "bhxh"
LOOKUP_REF = "lookup"
DEFAULT_OVERLAP = dt.timedelta(minutes=10)


def _hook(opts: dict | None = None) -> BhxhHook:
    """The BHXH client: connection and client settings from the Variable `bhxh_client` (`opts`)."""
    client = config.bhxh_client(opts)
    return BhxhHook(client.conn_id, **client.given())


def disagreements(conn, batch_id: int) -> int:
    return conn.execute("SELECT count(*) FROM wh.source_disagreement WHERE batch_id = %s", (batch_id,)).fetchone()[0]


# ---------------------------------------------------------------- scheduled pull


def pull_window(
    province: str,
    kind: str,
    start: dt.datetime,
    end: dt.datetime,
    dsn: str,
    *,
    run_id: str | None = None,
    overlap: dt.timedelta = DEFAULT_OVERLAP,
    page_size: int = 500,
    client: dict | None = None,
) -> dict:
    """Land everything of `province` issued or changed in the run's window as one batch.

    The window starts at the data interval's start, or earlier at the watermark when earlier runs failed (so a
    lost window is covered by the next success), minus a small overlap for late-committed changes."""
    with warehouse.connect(dsn) as conn:
        mark = warehouse.get_watermark(conn, SOURCE, province, kind)
        since = min(start, mark) if mark else start
        since -= overlap
        envelopes = [env for page in _hook(client).pages(kind, province, since, end, page_size) for env in page]
        meta = {"window_start": start.isoformat(), "window_end": end.isoformat(), "pulled_from": since.isoformat()}
        batch_id, _ = land_batch(
            conn, envelopes, source=SOURCE, source_ref=province, kind=kind, run_id=run_id, meta=meta
        )
    log.info(
        "BHXH province %s %s: landed %d record(s) as batch %d (changes in [%s, %s))",
        province,
        kind,
        len(envelopes),
        batch_id,
        since.isoformat(),
        end.isoformat(),
    )
    return {
        "batch_id": batch_id,
        "province": province,
        "kind": kind,
        "received": len(envelopes),
        "window_end": end.isoformat(),
    }


def ingest_window(batch: dict, dsn: str) -> dict:
    """Ingest a landed window, then move the (province, kind) watermark to the window's end. A window refused
    above the threshold raises an alert (Variable `alerting`)."""
    with warehouse.connect(dsn) as conn:
        result = ingest_batch(conn, batch["batch_id"], kind=batch["kind"], source=SOURCE, source_ref=batch["province"])
        n_dis = disagreements(conn, batch["batch_id"])
        warehouse.mark_batch(conn, batch["batch_id"], "ingested", {"disagreements": n_dis})
        warehouse.set_watermark(
            conn,
            SOURCE,
            batch["province"],
            batch["kind"],
            dt.datetime.fromisoformat(batch["window_end"]),
            batch["batch_id"],
        )
    out = {**batch, **result.summary(), "disagreements": n_dis}
    check_refusal_rate({**out, "source_ref": batch["province"]}, source=SOURCE)
    return out


# ---------------------------------------------------------------- registrar look-up

REQUEST_TYPES = {
    # request type -> (kind, criteria fields, Vietnamese label)
    "GCS_MOTHER_ID": ("GCS", ("SO_CCCD_NND",), "Giấy chứng sinh theo số định danh cá nhân của người mẹ"),
    "GCS_NUMBER": ("GCS", ("MA_GCS",), "Giấy chứng sinh theo số giấy chứng sinh"),
    "GCS_BOOK": ("GCS", ("SO", "NGAY_CT", "MA_CSKCB"), "Giấy chứng sinh theo số, ngày cấp và cơ sở cấp"),
    "GBT_DECEASED_ID": ("GBT", ("SO_GIAYTO",), "Giấy báo tử theo số định danh cá nhân của người chết"),
    "GBT_NUMBER": ("GBT", ("MA_GBT",), "Giấy báo tử theo số giấy báo tử"),
    "GBT_BOOK": ("GBT", ("SO_BAOTU", "NGAY_CAPGIAYBT", "MACSKCB"), "Giấy báo tử theo số, ngày cấp và cơ sở cấp"),
}
if not all(tuple(f) in CRITERIA[k] for k, f, _ in REQUEST_TYPES.values()):  # the form and the client agree
    raise ImportError("REQUEST_TYPES names criteria the BHXH client does not know")

MESSAGES = {
    "type": "Loại yêu cầu tra cứu không hợp lệ; chọn một loại trong danh sách.",
    "person_id": "Số định danh cá nhân phải gồm đúng 12 chữ số.",
    "person_id_missing": "Chưa nhập số định danh cá nhân.",
    "cert_number": "Số giấy sai định dạng; đúng mẫu XXXXX.GCS.<mã cơ sở>.YY (giấy chứng sinh) hoặc "
    "XXXXX.GBT.<mã cơ sở>.YY (giấy báo tử).",
    "number": "Số (số thứ tự trên giấy) phải là số nguyên dương.",
    "date": "Ngày cấp không có thật, sai định dạng (đúng: dd/mm/yyyy hoặc yyyymmdd) hoặc ở tương lai.",
    "facility": "Mã cơ sở khám, chữa bệnh phải gồm 5 chữ số.",
}


class InvalidRequest(ValueError):
    """A malformed look-up request. The message is Vietnamese and never echoes the values."""


def _date(text: str) -> str:
    text = text.strip()
    for fmt in ("%Y%m%d", "%d/%m/%Y", "%Y-%m-%d"):
        try:
            d = dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        if d > clock.vn_today():
            break
        return d.strftime("%Y%m%d")
    raise InvalidRequest(MESSAGES["date"])


def parse_request(params: dict) -> tuple[str, dict[str, str]]:
    """(kind, criteria) from the look-up form; raises InvalidRequest with a Vietnamese message."""
    rtype = str(params.get("request_type") or "").strip().upper()
    if rtype not in REQUEST_TYPES:
        raise InvalidRequest(MESSAGES["type"])
    kind, fields, _ = REQUEST_TYPES[rtype]

    def text(name: str) -> str:
        v = params.get(name)
        return "" if v is None else str(v).strip()

    if rtype in ("GCS_MOTHER_ID", "GBT_DECEASED_ID"):
        pid = re.sub(r"[\s.-]", "", text("mother_id" if kind == "GCS" else "deceased_id"))
        if not pid:
            raise InvalidRequest(MESSAGES["person_id_missing"])
        if not re.fullmatch(r"\d{12}", pid):
            raise InvalidRequest(MESSAGES["person_id"])
        return kind, {fields[0]: pid}
    if rtype in ("GCS_NUMBER", "GBT_NUMBER"):
        number = text("certificate_number").upper()
        if not re.fullmatch(rf"\d{{5}}\.{kind}\.\d{{5}}\.\d{{2}}", number):
            raise InvalidRequest(MESSAGES["cert_number"])
        return kind, {fields[0]: number}
    number, facility = text("number"), text("facility")
    if not re.fullmatch(r"0*[1-9]\d{0,6}", number):
        raise InvalidRequest(MESSAGES["number"])
    issued = _date(text("issued_on"))
    if not re.fullmatch(r"\d{5}", facility):
        raise InvalidRequest(MESSAGES["facility"])
    return kind, dict(zip(fields, (str(int(number)), issued, facility), strict=True))


def mask(criteria: dict[str, str]) -> dict[str, str]:
    """Criteria safe for logs, XCom and the batch record: personal IDs keep their last 3 digits only."""
    return {k: ("*" * 9 + v[-3:] if k in ("SO_CCCD_NND", "SO_GIAYTO") else v) for k, v in criteria.items()}


def lookup(params: dict, dsn: str, *, run_id: str | None = None, client: dict | None = None) -> dict:
    """Fetch from BHXH, land, validate and upsert through the core; the batch records the (masked) request.

    No refusal-rate alert here (unlike the pull): a look-up fetches the handful of certificates one registrar
    asked for (usually 0 to 2), so one refused record is already "100 %" and says nothing about the source's
    quality, and the registrar sees every outcome in the answer. The source's quality is watched by the
    windowed pull (per pilot province), which alerts."""
    kind, criteria = parse_request(params)
    rtype = str(params["request_type"]).strip().upper()
    items = _hook(client).lookup(kind, criteria)
    masked = mask(criteria)
    with warehouse.connect(dsn) as conn:
        meta = {"request_type": rtype, "criteria": masked, "found": len(items)}
        batch_id, _ = land_batch(conn, items, source=SOURCE, source_ref=LOOKUP_REF, kind=kind, run_id=run_id, meta=meta)
        result = ingest_batch(conn, batch_id, kind=kind, source=SOURCE, source_ref=LOOKUP_REF)
        n_dis = disagreements(conn, batch_id)
        warehouse.mark_batch(conn, batch_id, "ingested", {"disagreements": n_dis})
        certs = sorted(
            {key for _, _, key, outcome, _ in warehouse.outcomes(conn, batch_id) if key and outcome != "refused"}
        )
    log.info("BHXH look-up %s %s: %d certificate(s) found, batch %d", rtype, masked, len(items), batch_id)
    return {
        **result.summary(),
        "request_type": rtype,
        "found": len(items),
        "certificates": certs,
        "disagreements": n_dis,
    }
