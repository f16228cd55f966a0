"""Registrar dates follow Vietnam's day at every hour: a registration dated today (in Vietnam) is accepted,
tomorrow is refused, also between 17:00 and 24:00 UTC when UTC is still on the previous day."""

import datetime as dt


def test_registration_dated_today_in_vietnam_is_accepted_and_tomorrow_refused(vn_clock, api, wh):
    today = vn_clock.vn_today
    a, b = api.cert_id(wh, "00001.GCS.01020.25"), api.cert_id(wh, "00002.GCS.01020.25")
    with api.client(api.token()) as c:
        next_day = (today + dt.timedelta(days=1)).isoformat()
        tomorrow = c.post(
            f"/api/v1/certificates/{a}/registration", json={"registration_no": "1/2026", "registered_on": next_day}
        )
        ok = c.post(
            f"/api/v1/certificates/{b}/registration",
            json={"registration_no": "2/2026", "registered_on": today.isoformat()},
        )
    assert tomorrow.status_code == 422
    assert ok.status_code == 200, ok.text
