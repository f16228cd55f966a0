"""DHIS2 mortality (solution 4.2), weekly: causes of death commune stations entered, pulled back per source.

The cause is the A6 cause element's option code (ICD-10 / Mã VN); its text is the free-text element when the
deployment has one (`cause_text`), else the option's name from the server's option set.
"""

from __future__ import annotations

import datetime as dt
import logging

from certpipe import warehouse
from certpipe.sources.dhis2.metadata import a6_events, start

log = logging.getLogger(__name__)

STORE_DHIS2 = """
INSERT INTO wh.cause_of_death (cert_id, source, text, icd10, updated_at, event_uid)
VALUES (%s, 'dhis2', %s, %s, %s, %s) ON CONFLICT (cert_id, source) DO UPDATE SET
    text = EXCLUDED.text, icd10 = EXCLUDED.icd10, updated_at = EXCLUDED.updated_at,
    event_uid = EXCLUDED.event_uid, stored_at = now()
WHERE (wh.cause_of_death.text, wh.cause_of_death.icd10) IS DISTINCT FROM (EXCLUDED.text, EXCLUDED.icd10)
  AND EXCLUDED.updated_at >= COALESCE(wh.cause_of_death.updated_at, '-infinity')
"""
STORE_HOSPITAL = """
INSERT INTO wh.cause_of_death (cert_id, source, text, icd10, updated_at)
SELECT cert_id, 'hospital', record->>'NGUYENNHAN_TV', NULLIF(record->>'BENH_ICD10_ID', ''), updated_at
FROM wh.certificate WHERE cert_id = %s ON CONFLICT (cert_id, source) DO UPDATE SET
    text = EXCLUDED.text, icd10 = EXCLUDED.icd10, updated_at = EXCLUDED.updated_at
WHERE (wh.cause_of_death.text, wh.cause_of_death.icd10) IS DISTINCT FROM (EXCLUDED.text, EXCLUDED.icd10)
"""


def pull_causes(start_at: dt.datetime, end: dt.datetime, dsn: str, *, run_id: str | None, settings: dict) -> dict:
    """Causes of death on A6 events updated in [start − overlap, end] that belong to a known death (an event we
    wrote or one matching linked) → wh.cause_of_death source 'dhis2'; the hospital's version is kept next to it as
    source 'hospital' (the certificate record is not touched)."""
    hook, server, a6 = start(settings)
    code_uid, text_uid = a6.uid("cause_icd10"), a6.uid("cause_text")
    since = start_at - dt.timedelta(minutes=int(settings["overlap_minutes"]))
    found = []
    for root in settings["org_units"]:
        for page in a6_events(hook, a6, root, since, end, settings, include_deleted=False):
            for ev in page:
                values = {d["dataElement"]: d.get("value") for d in ev.get("dataValues") or []}
                code = (values.get(code_uid) or "").strip().upper() or None
                text = (values.get(text_uid) if text_uid else None) or a6.option_name("cause_icd10", code)
                if ev.get("event") and (text or code):
                    found.append((ev["event"], text, code, server.moment(ev.get("updatedAt"))))
    counts = {"events_with_cause": len(found), "stored": 0, "unknown_event": 0, **a6.report()}
    with warehouse.connect(dsn) as conn:
        owners: dict[str, int] = dict(
            conn.execute(
                "SELECT event_uid, cert_id FROM wh.dhis2_death_event WHERE cert_id IS NOT NULL "
                "AND match_method <> 'ambiguous' UNION ALL SELECT event_uid, cert_id FROM wh.dhis2_push "
                "WHERE outcome IN ('created', 'updated', 'refused')"
            ).fetchall()
        )
        for uid, text, code, updated in found:
            cert_id = owners.get(uid)
            if cert_id is None:
                counts["unknown_event"] += 1
                continue
            counts["stored"] += conn.execute(STORE_DHIS2, (cert_id, text, code, updated, uid)).rowcount
            conn.execute(STORE_HOSPITAL, (cert_id,))
    log.info("DHIS2 causes of death: %s", {k: v for k, v in counts.items() if k != "skipped_elements"})
    return counts
