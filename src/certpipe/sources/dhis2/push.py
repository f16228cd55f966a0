"""DHIS2 mortality (solution 4.2), weekly: death registrations written to the A6 register, one event per death.

A death the daily matching linked to a station's A6 event updates that event (the justice-system fields only);
an event is created (deterministic UID from the certificate number) only for deaths not in A6. Once written, a
death keeps its event. An existing event keeps the status the server has: a completed event stays completed
(updating it without reopening needs no F_UNCOMPLETE_EVENT: dhis2-core SecurityOwnershipValidator, E1083 only
when the status changes). An event the station deleted is recorded once (`deleted`) and left alone; a change the
server does not allow (E1083, E1043) is recorded as `refused` and not retried; other failures are retried next
week. Counts only go to XCom; DHIS2 messages (they may quote values) are stored, never logged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from typing import Any

from psycopg.types.json import Jsonb

from certpipe import clock, warehouse
from certpipe.sources.dhis2.keys import age_at_death, event_uid, to_date
from certpipe.sources.dhis2.metadata import A6, mapping, start

log = logging.getLogger(__name__)

LINKED_FIELDS = (  # what we write on a station's own event: the justice system's side only
    "death_notice_issued",
    "justice_registered",
    "justice_registration_date",
    "justice_registration_number",
    "justice_cause_text",
    "justice_cause_icd10",
)
NOT_SENT_BACK = ("dataValues", "notes", "relationships", "deleted")  # an update carries the event's other fields
REFUSED = {"E1083", "E1043"}  # not authorised to modify a completed event; completeness date expired
OUTCOMES = ("created", "updated", "unchanged", "skipped", "deleted", "refused", "error")

SELECT = """
SELECT c.cert_id, c.cert_key, c.record, c.registration, c.used_at,
       p.event_uid AS prev_uid, p.outcome AS prev_outcome, p.linked AS prev_linked, p.payload_hash,
       ARRAY(SELECT e.event_uid FROM wh.dhis2_death_event e
              WHERE e.cert_id = c.cert_id AND NOT e.deleted AND e.match_method IS DISTINCT FROM 'ambiguous'
              ORDER BY e.match_confidence DESC NULLS LAST, e.dhis2_updated_at DESC NULLS LAST) AS station_uids
FROM wh.certificate c LEFT JOIN wh.dhis2_push p USING (cert_id)
WHERE c.kind = 'GBT' AND c.status = 'used'
  AND ((c.used_at >= %(start)s AND c.used_at < %(end)s) OR p.outcome IN ('error', 'skipped'))
  AND p.outcome IS DISTINCT FROM 'deleted' AND p.outcome IS DISTINCT FROM 'refused'
ORDER BY c.cert_id
"""

STORE = """
INSERT INTO wh.dhis2_push (cert_id, event_uid, org_unit, payload_hash, outcome, error_codes, errors, run_id, linked,
    event_status)
VALUES (%(cert_id)s, %(event_uid)s, %(org_unit)s, %(hash)s, %(outcome)s, %(codes)s, %(messages)s, %(run_id)s,
    %(linked)s, %(event_status)s)
ON CONFLICT (cert_id) DO UPDATE SET event_uid = EXCLUDED.event_uid, org_unit = EXCLUDED.org_unit,
    payload_hash = EXCLUDED.payload_hash, outcome = EXCLUDED.outcome, error_codes = EXCLUDED.error_codes,
    errors = EXCLUDED.errors, run_id = EXCLUDED.run_id, linked = EXCLUDED.linked,
    event_status = EXCLUDED.event_status, attempts = wh.dhis2_push.attempts + 1, pushed_at = now()
"""


def registration_values(cert: dict, a6: A6, *, linked: bool) -> tuple[dict[str, str], list[str]]:
    """{element name: value} to write, restricted to the elements this server has, and the notes on values left
    out (a value outside the element's option set would fail the whole event with E1125)."""
    spec = mapping()["dataElements"]
    rec, reg = cert["record"], cert["registration"] or {}
    born, died = to_date(rec.get("NGAY_SINH")), to_date(rec.get("NGAY_TV"))
    reg_date = to_date(reg.get("date")) or (clock.vn_date(cert["used_at"]) if cert["used_at"] else None)
    values: dict[str, Any] = {
        "death_notice_issued": "true",
        "justice_registered": "true",
        "justice_registration_date": reg_date,
        "justice_registration_number": reg.get("number"),
        "justice_cause_text": rec.get("NGUYENNHAN_TV"),
        "justice_cause_icd10": rec.get("BENH_ICD10_ID"),
    }
    if not linked:
        values |= {
            "full_name": rec.get("HO_TEN"),
            "sex": (spec["sex"].get("options") or {}).get(str(rec.get("GIOI_TINH"))),
            "date_of_birth": born,
            "id_number": rec.get("SO_GIAYTO"),
            "date_of_death": died,
            "recorded_on": reg_date,
            "from_justice": "true",
            **age_at_death(born, died),
        }
    out: dict[str, str] = {}
    notes: list[str] = []
    for name, value in values.items():
        element = a6.elements.get(name)
        if element is None or value in (None, ""):
            continue
        text = value.isoformat() if isinstance(value, dt.date) else str(value)
        if element.options and text not in element.options:
            notes.append(f"NOT_AN_OPTION:{name}")
            continue
        out[name] = text
    return out, notes


def target(cert: dict, taken: dict[str, int]) -> tuple[str, bool]:
    """(event UID, linked): the event this death was written to before, else the station's event matching linked
    (not one another death was written to), else our own deterministic one (created)."""
    if cert["prev_outcome"] in ("created", "updated") and cert["prev_uid"]:
        return cert["prev_uid"], bool(cert["prev_linked"])
    own = event_uid(cert["cert_key"])
    for uid in cert["station_uids"] or []:
        if uid != own and taken.get(uid, cert["cert_id"]) == cert["cert_id"]:
            return uid, True
    return own, False


def _digest(uid: str, values: dict[str, str]) -> bytes:
    return hashlib.sha256(json.dumps([uid, values], sort_keys=True, ensure_ascii=False).encode()).digest()


def _result(cert: dict, uid: str, linked: bool, outcome: str, **extra: Any) -> dict:
    return {
        "cert_id": cert["cert_id"],
        "event_uid": uid,
        "linked": linked,
        "outcome": outcome,
        "org_unit": extra.get("org_unit"),
        "hash": extra.get("hash") if outcome in ("created", "updated") else None,
        "codes": extra.get("codes") or [],
        "messages": Jsonb(extra["messages"]) if extra.get("messages") else None,
        "event_status": extra.get("event_status"),
    }


def _event(cert: dict, uid: str, current: dict | None, values: dict, a6: A6, org: str | None) -> dict:
    data = [{"dataElement": a6.elements[k].uid, "value": v} for k, v in values.items()]
    if current:  # an update carries every field of the event (DHIS2 "Update" semantics), with its own status
        return {**{k: v for k, v in current.items() if k not in NOT_SENT_BACK}, "dataValues": data}
    died = to_date(cert["record"].get("NGAY_TV"))
    return {
        "event": uid,
        "program": a6.program,
        "programStage": a6.stage,
        "orgUnit": org,
        "status": mapping()["push"]["status"],
        "occurredAt": died.isoformat() if died else None,
        "dataValues": data,
    }


def push_registrations(
    start_at: dt.datetime, end: dt.datetime, dsn: str, *, run_id: str | None, settings: dict
) -> dict:
    """Death registrations of [start, end) (death notices marked used) and earlier failures → the A6 register.
    A payload already accepted and unchanged is not sent again; each death's outcome is stored."""
    hook, _, a6 = start(settings)
    org_of: dict[str, str] = {}
    for root in settings["org_units"]:
        org_of.update({u["code"]: u["id"] for u in hook.org_units(root) if u.get("code")})
    with warehouse.connect(dsn) as conn:
        cur = conn.execute(SELECT, {"start": start_at, "end": end})
        names = [d.name for d in cur.description or []]
        certs = [dict(zip(names, r, strict=True)) for r in cur]
        taken: dict[str, int] = dict(conn.execute("SELECT event_uid, cert_id FROM wh.dhis2_push").fetchall())
    counts: dict[str, Any] = dict.fromkeys(OUTCOMES, 0) | {"selected": len(certs), "linked": 0, **a6.report()}
    plans, results = [], []
    for cert in certs:
        uid, linked = target(cert, taken)
        taken[uid] = cert["cert_id"]
        values, notes = registration_values(cert, a6, linked=linked)
        digest = _digest(uid, values)
        if cert["payload_hash"] == digest and cert["prev_outcome"] in ("created", "updated"):
            counts["unchanged"] += 1
        elif linked and not (set(values) - {"death_notice_issued"}):
            results.append(_result(cert, uid, linked, "skipped", codes=["NOTHING_TO_SEND"]))
        else:
            plans.append((cert, uid, linked, values, notes, digest))
    # a death we tried to write to our own event before (the try may have created it) keeps that event if it exists
    own_first = {
        event_uid(p[0]["cert_key"]): i
        for i, p in enumerate(plans)
        if p[2] and p[0]["prev_uid"] == event_uid(p[0]["cert_key"])
    }
    current = hook.events_by_uid(a6.program, [p[1] for p in plans] + list(own_first)) if plans else {}
    for own, i in own_first.items():
        if own in current and not current[own].get("deleted"):
            cert = plans[i][0]
            values, notes = registration_values(cert, a6, linked=False)
            plans[i] = (cert, own, False, values, notes, _digest(own, values))
    todo = []
    for cert, uid, linked, values, notes, digest in plans:
        found = current.get(uid)
        commune = (cert["registration"] or {}).get("commune_code") or cert["record"].get("MAXA_THUONGTRU")
        org = found.get("orgUnit") if found else org_of.get(commune)
        if found and found.get("deleted"):
            results.append(_result(cert, uid, linked, "deleted", codes=["E1082"], org_unit=org))
        elif linked and not found:
            results.append(_result(cert, uid, linked, "error", codes=["LINKED_EVENT_NOT_FOUND"]))
        elif org is None:
            messages = ["Không tìm thấy trạm y tế (org unit DHIS2) của xã nơi cư trú"]
            results.append(_result(cert, uid, linked, "error", codes=["NO_ORG_UNIT"], messages=messages))
        else:
            event = _event(cert, uid, found, values, a6, org)
            todo.append((cert, uid, linked, event, notes, digest, found))
    _store(dsn, results, run_id)
    for i in range(0, len(todo), int(settings["push_batch"])):
        chunk = todo[i : i + int(settings["push_batch"])]
        outcome = hook.import_events([event for _, _, _, event, *_ in chunk])
        done = []
        for cert, uid, linked, event, notes, digest, found in chunk:
            o = outcome[uid]
            codes = set(o["codes"])
            kind = (
                ("updated" if found else "created")
                if o["ok"]
                else ("deleted" if "E1082" in codes else "refused" if codes & REFUSED else "error")
            )
            done.append(
                _result(
                    cert,
                    uid,
                    linked,
                    kind,
                    org_unit=event.get("orgUnit"),
                    hash=digest,
                    codes=sorted(codes | set(notes)),
                    messages=o["messages"],
                    event_status=event.get("status"),
                )
            )
        _store(dsn, done, run_id)  # per chunk: a later failure keeps what was already written
        results.extend(done)
    for r in results:
        counts[r["outcome"]] += 1
        counts["linked"] += bool(r["linked"] and r["outcome"] in ("created", "updated"))
    log.info("DHIS2 push: %s", {k: v for k, v in counts.items() if k != "skipped_elements"})
    return counts


def _store(dsn: str, results: list[dict], run_id: str | None) -> None:
    if not results:
        return
    with warehouse.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany(STORE, [{**r, "run_id": run_id} for r in results])
