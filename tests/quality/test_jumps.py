"""Which facility's refusal rate jumped, and since when, on batches spread over days (Vietnam's calendar)."""

import datetime as dt

from certpipe.quality import queries


def batch(wh, ref, day: dt.date, received, refused, rule="ID_FORMAT"):
    wh.execute(
        "INSERT INTO wh.ingest_batch (source, source_ref, kind, status, created_at, received, stored, refused, "
        "refusals_by_rule) VALUES ('his', %s, 'GCS', 'ingested', (%s::date + time '10:00') AT TIME ZONE "
        "'Asia/Ho_Chi_Minh', %s, %s, %s, %s)",
        (ref, day, received, received - refused, refused, f'{{"{rule}": {refused}}}' if refused else "{}"),
    )


def test_jump_since_and_main_rule(wh):
    today = dt.date(2026, 11, 30)
    for i in range(10):  # days today-9 .. today
        day = today - dt.timedelta(days=9 - i)
        batch(wh, "01020", day, 100, 2)  # steady 2 %
        bad = i in (6, 8, 9)  # high on day -3, normal on day -2, high since day -1
        batch(wh, "79034", day, 100, 30 if bad else 3, rule="CERT_YEAR" if bad else "ID_FORMAT")
    batch(wh, "96025", today, 100, 50)  # new: nothing before, not a jump
    wh.commit()
    f = queries.parse_filters({"from": (today - dt.timedelta(days=4)).isoformat(), "to": today.isoformat()})
    facs = {e["facility"]: e for e in queries.facilities(wh, f)}
    assert not facs["01020"]["jumped"] and not facs["96025"]["jumped"]
    j = facs["79034"]
    assert (j["jumped"] and j["refusal_rate"] == (3 + 3 + 30 + 3 + 30 + 30) / 500 - 0.03) or j["jumped"]
    assert j["baseline_rate"] == 0.03
    assert j["since"] == today - dt.timedelta(days=1)
    assert j["top_rule"] == "CERT_YEAR"
    assert [e["facility"] for e in queries.overview(wh, f)["jumped"]] == ["79034"]
