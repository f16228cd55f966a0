"""The BHXH look-up form takes Vietnam's today as the latest issue date, at every hour of the UTC day."""

import datetime as dt

import pytest

from certpipe.sources.bhxh.pull import InvalidRequest, parse_request


def form(day: dt.date) -> dict:
    return {"request_type": "GCS_BOOK", "number": "12", "issued_on": day.strftime("%d/%m/%Y"), "facility": "01020"}


def test_issued_today_in_vietnam_is_accepted_tomorrow_refused(vn_clock):
    today = vn_clock.vn_today
    assert parse_request(form(today))[1]["NGAY_CT"] == today.strftime("%Y%m%d")
    with pytest.raises(InvalidRequest):
        parse_request(form(today + dt.timedelta(days=1)))
