"""DHIS2 mortality (solutions 4.1, 4.2): A6 events into the warehouse, matched to death notices; death
registrations pushed to DHIS2; causes of death pulled back per source. Docs: docs/dhis2.md.

Functions return counts only (they go to XCom); personal values stay in the warehouse.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import unicodedata
from collections.abc import Iterable
from functools import cache
from zoneinfo import ZoneInfo

from psycopg.types.json import Jsonb

from certpipe import clock, config, warehouse
from certpipe.core.schema import schemas_dir

log = logging.getLogger(__name__)

SOURCE = "dhis2"
UID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@cache
def mapping() -> dict:
    return json.loads((schemas_dir() / "dhis2" / "a6_mapping.json").read_text(encoding="utf-8"))


def settings_from(raw: str | dict | None) -> dict:
    """The Variable `dhis2_mortality`, validated (certpipe.config.Dhis2Mortality), as a dict."""
    return config.dhis2_mortality(raw).model_dump()


def hook(settings: dict):
    from certpipe.sources.dhis2.hook import Dhis2Hook

    return Dhis2Hook(settings["conn_id"], **{k: v for k, v in settings["client"].items() if v is not None})


# ---------------------------------------------------------------- normalisation


def name_key(name: str | None) -> str | None:
    """NFC, upper case, no diacritics (Đ → D), single spaces: 'Nguyễn  văn Đạt' -> 'NGUYEN VAN DAT'."""
    if not name:
        return None
    text = unicodedata.normalize("NFC", str(name)).upper().replace("Đ", "D")
    text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return " ".join(text.split()) or None


def id_key(value: str | None) -> str | None:
    text = "".join(ch for ch in str(value or "") if ch.isalnum()).upper()
    return text or None


def to_date(value: str | None) -> dt.date | None:
    """DHIS2 'YYYY-MM-DD[THH:MM…]' or the official compact 'yyyymmdd[HHMM[SS]]'."""
    text = str(value or "").strip()
    try:
        if len(text) >= 10 and text[4] == "-":
            return dt.date.fromisoformat(text[:10])
        if len(text) >= 8 and text[:8].isdigit():
            return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None
    return None


def to_moment(value: str | None, tz: ZoneInfo) -> dt.datetime | None:
    """DHIS2 timestamps carry no offset: they are in the server's time zone."""
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def server_time(moment: dt.datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).replace(tzinfo=None).isoformat(timespec="seconds")


def event_uid(cert_key: str) -> str:
    """Deterministic DHIS2 UID for a death registration: 11 chars, a letter first (E1048), from the cert number."""
    n = int.from_bytes(hashlib.sha256(f"certpipe:GBT:{cert_key}".encode()).digest(), "big")
    first, n = UID_ALPHABET[10 + n % 52], n // 52
    rest = []
    for _ in range(10):
        n, r = divmod(n, 62)
        rest.append(UID_ALPHABET[r])
    return first + "".join(rest)


# ---------------------------------------------------------------- 4.1: daily A6 pull


def event_row(ev: dict, communes: dict[str, str], tz: ZoneInfo) -> dict:
    m = mapping()
    by_uid = {uid: name for name, uid in m["dataElements"].items()}
    values = {
        by_uid[d["dataElement"]]: d.get("value") for d in ev.get("dataValues") or [] if d.get("dataElement") in by_uid
    }
    recorded = to_date(values.get("recorded_on"))
    return {
        "event_uid": ev["event"],
        "org_unit": ev.get("orgUnit"),
        "commune_code": communes.get(ev.get("orgUnit")),
        "event_status": ev.get("status"),
        "date_of_death": to_date(values.get("date_of_death")) or to_date(ev.get("occurredAt")),
        "date_of_birth": to_date(values.get("date_of_birth")),
        "recorded_at": (
            dt.datetime.combine(recorded, dt.time(), tz) if recorded else to_moment(ev.get("createdAt"), tz)
        ),
        "dhis2_updated_at": to_moment(ev.get("updatedAt"), tz),
        "deleted": bool(ev.get("deleted")),
        "data_values": Jsonb(values),
        "id_number": id_key(values.get("id_number")),
        "name_key": name_key(values.get("full_name")),
    }


UPSERT_EVENT = """
INSERT INTO wh.dhis2_death_event (event_uid, org_unit, commune_code, event_status, date_of_death, date_of_birth,
    recorded_at, dhis2_updated_at, deleted, data_values, id_number, name_key, run_id)
VALUES (%(event_uid)s, %(org_unit)s, %(commune_code)s, %(event_status)s, %(date_of_death)s, %(date_of_birth)s,
    %(recorded_at)s, %(dhis2_updated_at)s, %(deleted)s, %(data_values)s, %(id_number)s, %(name_key)s, %(run_id)s)
ON CONFLICT (event_uid) DO UPDATE SET org_unit = EXCLUDED.org_unit, commune_code = EXCLUDED.commune_code,
    event_status = EXCLUDED.event_status, date_of_death = EXCLUDED.date_of_death,
    date_of_birth = EXCLUDED.date_of_birth, recorded_at = EXCLUDED.recorded_at,
    dhis2_updated_at = EXCLUDED.dhis2_updated_at, deleted = EXCLUDED.deleted, data_values = EXCLUDED.data_values,
    id_number = EXCLUDED.id_number, name_key = EXCLUDED.name_key, run_id = EXCLUDED.run_id, last_seen_at = now(),
    matched_at = CASE WHEN wh.dhis2_death_event.data_values IS DISTINCT FROM EXCLUDED.data_values
                      OR wh.dhis2_death_event.commune_code IS DISTINCT FROM EXCLUDED.commune_code
                      THEN NULL ELSE wh.dhis2_death_event.matched_at END
WHERE wh.dhis2_death_event.dhis2_updated_at IS NULL OR EXCLUDED.dhis2_updated_at IS NULL
   OR EXCLUDED.dhis2_updated_at >= wh.dhis2_death_event.dhis2_updated_at
RETURNING (xmax = 0) AS inserted
"""


def pull_window(
    root: str, start: dt.datetime, end: dt.datetime, dsn: str, *, run_id: str | None, settings: dict
) -> dict:
    """A6 events under `root` updated in [start − overlap, end) (from the watermark if an earlier window failed),
    deletions included, upserted by event UID; the watermark moves to `end` after the commit."""
    tz = ZoneInfo(settings["server_timezone"])
    m = mapping()
    client = hook(settings)
    with warehouse.connect(dsn) as conn:
        mark = warehouse.get_watermark(conn, SOURCE, root, "GBT")
    since = min(start, mark) if mark else start
    since -= dt.timedelta(minutes=int(settings["overlap_minutes"]))
    communes = {u["id"]: u.get("code") for u in client.org_units(root)}
    counts = {
        "org_unit": root,
        "version": client.version,
        "received": 0,
        "inserted": 0,
        "updated": 0,
        "deleted": 0,
        "pages": 0,
    }
    rows = []
    for page in client.event_pages(
        program=m["program"],
        program_stage=m["programStage"],
        org_unit=root,
        updated_after=server_time(since, tz),
        updated_before=server_time(end, tz),
        page_size=int(settings["page_size"]),
    ):
        counts["pages"] += 1
        rows.extend(event_row(ev, communes, tz) for ev in page if ev.get("event"))
    counts["received"] += len(rows)
    counts["deleted"] += sum(bool(r["deleted"]) for r in rows)
    with warehouse.connect(dsn) as conn:
        if rows:  # batched (pipelined) upsert, not one round trip per event
            with conn.cursor() as cur:
                cur.executemany(UPSERT_EVENT, [{**row, "run_id": run_id} for row in rows], returning=True)
                while True:
                    res = cur.fetchone()
                    if res is not None:
                        counts["inserted" if res[0] else "updated"] += 1
                    if not cur.nextset():
                        break
        warehouse.set_watermark(conn, SOURCE, root, "GBT", end, None)
    log.info(
        "DHIS2 %s (v%s): %d events in %d pages, %d new, %d updated, %d deleted",
        root,
        counts["version"],
        counts["received"],
        counts["pages"],
        counts["inserted"],
        counts["updated"],
        counts["deleted"],
    )
    return counts


def _candidates(conn, events: list[dict]) -> list[dict]:
    ids = sorted({e["id_number"] for e in events if e["id_number"]})
    communes = sorted({e["commune_code"] for e in events if e["commune_code"]})
    cur = conn.execute(
        "SELECT cert_id, status, person_id, record->>'SO_GIAYTO', record->>'HO_TEN', record->>'NGAY_SINH', "
        "record->>'NGAY_TV', record->>'MAXA_THUONGTRU', record->>'MAXA_HIENTAI', updated_at FROM wh.certificate "
        "WHERE kind = 'GBT' AND (person_id = ANY(%(ids)s) OR record->>'SO_GIAYTO' = ANY(%(ids)s) "
        "OR record->>'MAXA_THUONGTRU' = ANY(%(c)s) OR record->>'MAXA_HIENTAI' = ANY(%(c)s))",
        {"ids": ids, "c": communes},
    )
    return [
        {
            "cert_id": r[0],
            "used": r[1] == "used",
            "ids": {id_key(r[2]), id_key(r[3])} - {None},
            "name": name_key(r[4]),
            "dob": to_date(r[5]),
            "dod": to_date(r[6]),
            "communes": {r[7], r[8]} - {None},
            "updated_at": r[9],
        }
        for r in cur
    ]


def _best(cands: list[dict]) -> dict:
    return sorted(cands, key=lambda c: (c["used"], c["updated_at"]), reverse=True)[0]


def match_event(ev: dict, cands: list[dict], pushed: dict[str, int]) -> tuple[int | None, str | None, float | None]:
    """(cert_id, method, confidence). ID number first; else normalised name + date of birth + date of death +
    commune (0.9); else name + date of birth + commune with the date of death one day off (0.7)."""
    if ev["event_uid"] in pushed:
        return pushed[ev["event_uid"]], "pushed", 1.0
    if ev["id_number"]:
        hits = [c for c in cands if ev["id_number"] in c["ids"]]
        if hits:
            return _best(hits)["cert_id"], "id_number", 1.0
    if not (ev["name_key"] and ev["date_of_birth"] and ev["commune_code"]):
        return None, None, None
    same = [
        c
        for c in cands
        if c["name"] == ev["name_key"]
        and c["dob"] == ev["date_of_birth"]
        and ev["commune_code"] in c["communes"]
        and c["dod"]
    ]
    if ev["id_number"]:  # a certificate with a different ID number is another person
        same = [c for c in same if not c["ids"]]
    for method, conf, keep in (
        ("name_dob_dod_commune", 0.9, lambda c: c["dod"] == ev["date_of_death"]),
        (
            "name_dob_commune_dod_near",
            0.7,
            lambda c: ev["date_of_death"] is not None and abs((c["dod"] - ev["date_of_death"]).days) <= 1,
        ),
    ):
        hits = [c for c in same if keep(c)]
        if len(hits) == 1:
            return hits[0]["cert_id"], method, conf
        if len(hits) > 1:
            return None, "ambiguous", None
    return None, None, None


def match_events(dsn: str, *, run_id: str | None = None) -> dict:
    """Match every live A6 event not matched since it last changed (and every unmatched one: a death notice
    may have arrived since) to a death notice / registration."""
    counts = {"examined": 0, "matched": 0, "ambiguous": 0, "unmatched": 0}
    with warehouse.connect(dsn) as conn:
        cur = conn.execute(
            "SELECT event_uid, id_number, name_key, date_of_birth, date_of_death, commune_code "
            "FROM wh.dhis2_death_event WHERE NOT deleted AND (matched_at IS NULL OR cert_id IS NULL)"
        )
        names = [d.name for d in cur.description]
        events = [dict(zip(names, r, strict=True)) for r in cur]
        if not events:
            return counts
        cands = _candidates(conn, events)
        pushed = dict(conn.execute("SELECT event_uid, cert_id FROM wh.dhis2_push WHERE outcome <> 'error'").fetchall())
        for ev in events:
            cert_id, method, conf = match_event(ev, cands, pushed)
            counts["examined"] += 1
            counts["matched" if cert_id else ("ambiguous" if method == "ambiguous" else "unmatched")] += 1
            conn.execute(
                "UPDATE wh.dhis2_death_event SET cert_id = %s, match_method = %s, match_confidence = %s, "
                "matched_at = now() WHERE event_uid = %s",
                (cert_id, method, conf, ev["event_uid"]),
            )
    log.info("DHIS2 matching: %s", counts)
    return counts


# ---------------------------------------------------------------- 4.2: weekly back-sync


def registration_event(cert: dict, org_unit: str) -> dict:
    m = mapping()
    de, rec, reg = m["dataElements"], cert["record"], cert["registration"] or {}
    dod = to_date(rec.get("NGAY_TV"))
    reg_date = to_date(reg.get("date")) or (clock.vn_date(cert["used_at"]) if cert["used_at"] else None)
    values = {
        "full_name": rec.get("HO_TEN"),
        "sex": m["optionSets"]["sex"]["values"].get(str(rec.get("GIOI_TINH"))),
        "date_of_birth": to_date(rec.get("NGAY_SINH")),
        "id_number": rec.get("SO_GIAYTO"),
        "date_of_death": dod,
        "death_notice_issued": "true",
        "justice_registered": "true",
        "justice_registration_date": reg_date,
        "justice_registration_number": reg.get("number"),
        "justice_cause_text": rec.get("NGUYENNHAN_TV"),
        "justice_cause_icd10": rec.get("BENH_ICD10_ID"),
        "from_justice": "true",
    }
    return {
        "event": event_uid(cert["cert_key"]),
        "program": m["program"],
        "programStage": m["programStage"],
        "orgUnit": org_unit,
        "status": m["push"]["status"],
        "occurredAt": dod.isoformat() if dod else None,
        "dataValues": [
            {"dataElement": de[k], "value": v if isinstance(v, str) else v.isoformat()}
            for k, v in values.items()
            if v not in (None, "")
        ],
    }


def _chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def push_registrations(start: dt.datetime, end: dt.datetime, dsn: str, *, run_id: str | None, settings: dict) -> dict:
    """Death registrations of [start, end) (death notices marked used) and earlier failed pushes → DHIS2.
    An unchanged payload already accepted is not sent again; each record's outcome is stored."""
    client = hook(settings)
    org_of = {}
    for root in settings["org_units"]:
        org_of.update({u["code"]: u["id"] for u in client.org_units(root) if u.get("code")})
    counts = {"selected": 0, "created": 0, "updated": 0, "unchanged": 0, "error": 0}
    with warehouse.connect(dsn) as conn:
        cur = conn.execute(
            "SELECT c.cert_id, c.cert_key, c.record, c.registration, c.used_at, p.payload_hash, p.outcome "
            "FROM wh.certificate c LEFT JOIN wh.dhis2_push p USING (cert_id) "
            "WHERE c.kind = 'GBT' AND c.status = 'used' AND ((c.used_at >= %s AND c.used_at < %s) "
            "OR p.outcome = 'error') ORDER BY c.cert_id",
            (start, end),
        )
        names = [d.name for d in cur.description]
        certs = [dict(zip(names, r, strict=True)) for r in cur]
    counts["selected"] = len(certs)
    todo, results = [], []
    for cert in certs:
        reg = cert["registration"] or {}
        commune = reg.get("commune_code") or cert["record"].get("MAXA_THUONGTRU")
        org = org_of.get(commune)
        if org is None:
            results.append(
                (
                    cert,
                    None,
                    None,
                    "error",
                    ["NO_ORG_UNIT"],
                    ["Không tìm thấy trạm y tế (org unit DHIS2) của xã nơi cư trú"],
                )
            )
            continue
        ev = registration_event(cert, org)
        digest = hashlib.sha256(json.dumps(ev, sort_keys=True, ensure_ascii=False).encode()).digest()
        if cert["payload_hash"] == digest and cert["outcome"] in ("created", "updated"):
            counts["unchanged"] += 1
            continue
        todo.append((cert, ev, digest))
    for chunk in _chunks(todo, int(settings["push_batch"])):
        report = client.import_events([ev for _, ev, _ in chunk])
        from certpipe.sources.dhis2.hook import object_outcomes

        outcome = object_outcomes(report, [ev["event"] for _, ev, _ in chunk])
        for cert, ev, digest in chunk:
            o = outcome[ev["event"]]
            status = ("updated" if cert["outcome"] in ("created", "updated") else "created") if o["ok"] else "error"
            results.append((cert, ev, digest, status, o["codes"], o["messages"]))
    for *_, status, _, _ in results:
        counts[status] += 1
    with warehouse.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO wh.dhis2_push (cert_id, event_uid, org_unit, payload_hash, outcome, error_codes, "
            "errors, run_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (cert_id) DO UPDATE SET "
            "org_unit = EXCLUDED.org_unit, payload_hash = EXCLUDED.payload_hash, outcome = EXCLUDED.outcome, "
            "error_codes = EXCLUDED.error_codes, errors = EXCLUDED.errors, run_id = EXCLUDED.run_id, "
            "attempts = wh.dhis2_push.attempts + 1, pushed_at = now()",
            [
                (
                    cert["cert_id"],
                    event_uid(cert["cert_key"]),
                    ev["orgUnit"] if ev else None,
                    digest if status != "error" else None,
                    status,
                    codes,
                    Jsonb(messages) if messages else None,
                    run_id,
                )
                for cert, ev, digest, status, codes, messages in results
            ],
        )
    log.info("DHIS2 push: %s", counts)
    return counts


def pull_causes(start: dt.datetime, end: dt.datetime, dsn: str, *, run_id: str | None, settings: dict) -> dict:
    """Causes of death (text and ICD-10) on A6 events updated in [start − overlap, end) that belong to a known
    death (pushed registration or matched event) → wh.cause_of_death source 'dhis2'; the hospital's version is
    kept next to it as source 'hospital' (the certificate record is not touched)."""
    tz = ZoneInfo(settings["server_timezone"])
    m = mapping()
    de = m["dataElements"]
    client = hook(settings)
    since = start - dt.timedelta(minutes=int(settings["overlap_minutes"]))
    found = []
    for root in settings["org_units"]:
        for page in client.event_pages(
            program=m["program"],
            program_stage=m["programStage"],
            org_unit=root,
            updated_after=server_time(since, tz),
            updated_before=server_time(end, tz),
            page_size=int(settings["page_size"]),
            include_deleted=False,
        ):
            for ev in page:
                values = {d["dataElement"]: d.get("value") for d in ev.get("dataValues") or []}
                text, icd = values.get(de["cause_text"]), values.get(de["cause_icd10"])
                if ev.get("event") and (text or icd):
                    found.append(
                        (ev["event"], text, (icd or "").strip().upper() or None, to_moment(ev.get("updatedAt"), tz))
                    )
    counts = {"events_with_cause": len(found), "stored": 0, "unknown_event": 0}
    with warehouse.connect(dsn) as conn:
        owners = dict(
            conn.execute(
                "SELECT event_uid, cert_id FROM wh.dhis2_push UNION ALL SELECT event_uid, cert_id "
                "FROM wh.dhis2_death_event WHERE cert_id IS NOT NULL AND match_method <> 'ambiguous'"
            ).fetchall()
        )
        for uid, text, icd, updated in found:
            cert_id = owners.get(uid)
            if cert_id is None:
                counts["unknown_event"] += 1
                continue
            res = conn.execute(
                "INSERT INTO wh.cause_of_death (cert_id, source, text, icd10, updated_at, event_uid) "
                "VALUES (%s, 'dhis2', %s, %s, %s, %s) ON CONFLICT (cert_id, source) DO UPDATE SET "
                "text = EXCLUDED.text, icd10 = EXCLUDED.icd10, updated_at = EXCLUDED.updated_at, "
                "event_uid = EXCLUDED.event_uid, stored_at = now() "
                "WHERE (wh.cause_of_death.text, wh.cause_of_death.icd10) IS DISTINCT FROM (EXCLUDED.text, "
                "EXCLUDED.icd10) AND EXCLUDED.updated_at >= COALESCE(wh.cause_of_death.updated_at, '-infinity')",
                (cert_id, text, icd, updated, uid),
            )
            counts["stored"] += res.rowcount
            conn.execute(
                "INSERT INTO wh.cause_of_death (cert_id, source, text, icd10, updated_at) "
                "SELECT cert_id, 'hospital', record->>'NGUYENNHAN_TV', NULLIF(record->>'BENH_ICD10_ID', ''), "
                "updated_at FROM wh.certificate WHERE cert_id = %s ON CONFLICT (cert_id, source) DO UPDATE SET "
                "text = EXCLUDED.text, icd10 = EXCLUDED.icd10, updated_at = EXCLUDED.updated_at "
                "WHERE (wh.cause_of_death.text, wh.cause_of_death.icd10) IS DISTINCT FROM (EXCLUDED.text, "
                "EXCLUDED.icd10)",
                (cert_id,),
            )
    log.info("DHIS2 causes of death: %s", counts)
    return counts
