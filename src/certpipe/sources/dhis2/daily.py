"""DHIS2 mortality (solution 4.1), daily: A6 events into the warehouse, then matched to death notices /
registrations. Docs: docs/dhis2.md. Functions return counts only (they go to XCom); personal values stay in the
warehouse.
"""

from __future__ import annotations

import datetime as dt
import logging

from psycopg.types.json import Jsonb

from certpipe import clock, warehouse
from certpipe.sources.dhis2.hook import Server
from certpipe.sources.dhis2.keys import id_key, name_key, to_date
from certpipe.sources.dhis2.metadata import A6, a6_events, start

log = logging.getLogger(__name__)

SOURCE = "dhis2"


def event_row(ev: dict, a6: A6, communes: dict[str, str], server: Server) -> dict:
    """One A6 event as a warehouse row. Timestamps (createdAt, updatedAt) are the server's wall clock; the
    register date (Ngày ghi sổ) is a Vietnamese calendar date."""
    by_uid = a6.names
    values = {
        by_uid[d["dataElement"]]: d.get("value") for d in ev.get("dataValues") or [] if d.get("dataElement") in by_uid
    }
    recorded = to_date(values.get("recorded_on"))
    return {
        "event_uid": ev["event"],
        "org_unit": ev.get("orgUnit"),
        "commune_code": communes.get(ev.get("orgUnit", "")),
        "event_status": ev.get("status"),
        "date_of_death": to_date(values.get("date_of_death")) or to_date(ev.get("occurredAt")),
        "date_of_birth": to_date(values.get("date_of_birth")),
        "recorded_at": (
            dt.datetime.combine(recorded, dt.time(), clock.VN) if recorded else server.moment(ev.get("createdAt"))
        ),
        "dhis2_updated_at": server.moment(ev.get("updatedAt")),
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
    root: str, start_at: dt.datetime, end: dt.datetime, dsn: str, *, run_id: str | None, settings: dict
) -> dict:
    """A6 events under `root` updated in [start − overlap, end] (from the watermark if an earlier window failed),
    deletions included, upserted by event UID; the watermark moves to `end` (UTC, with the server's zone) after the
    commit. The server and the mapping are checked first: a mismatch fails before anything is read or written."""
    hook, server, a6 = start(settings)
    with warehouse.connect(dsn) as conn:
        mark = warehouse.get_watermark(conn, SOURCE, root, "GBT")
    since = (min(start_at, mark) if mark else start_at) - dt.timedelta(minutes=int(settings["overlap_minutes"]))
    communes: dict[str, str] = {u["id"]: u["code"] for u in hook.org_units(root) if u.get("code")}
    counts: dict = {
        "org_unit": root,
        "version": server.full_version,
        "server_zone": server.zone_id,
        "received": 0,
        "inserted": 0,
        "updated": 0,
        "deleted": 0,
        "pages": 0,
        **a6.report(),
    }
    rows: list[dict] = []
    for page in a6_events(hook, a6, root, since, end, settings):
        counts["pages"] += 1
        rows.extend(event_row(ev, a6, communes, server) for ev in page if ev.get("event"))
    rows.sort(key=lambda r: r["event_uid"])  # locks taken in event_uid order, as match_events does (stable sort)
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
        warehouse.set_watermark(conn, SOURCE, root, "GBT", end, None, zone=server.zone_id)
    log.info(
        "DHIS2 %s (%s, zone %s): %d events in %d pages, %d new, %d updated, %d deleted",
        root,
        server.full_version,
        server.zone_id,
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
            "FROM wh.dhis2_death_event WHERE NOT deleted AND (matched_at IS NULL OR cert_id IS NULL) "
            "ORDER BY event_uid"  # rows updated in one order (the pull's upsert too): no deadlock between them
        )
        names = [d.name for d in cur.description or []]
        events = [dict(zip(names, r, strict=True)) for r in cur]
        if not events:
            return counts
        cands = _candidates(conn, events)
        pushed: dict[str, int] = dict(
            conn.execute("SELECT event_uid, cert_id FROM wh.dhis2_push WHERE outcome <> 'error'").fetchall()
        )
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
