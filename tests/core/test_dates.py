"""A certificate issued today in Vietnam is not "in the future" at any hour of the UTC day; one dated after
Vietnam's now is."""

import datetime as dt

from certpipe import clock
from tests.core.records import birth
from tests.core.test_ingest import outcomes, run


def born_at(moment: dt.datetime, n: int) -> dict:
    return birth(
        n,
        MA_GCS=f"{n:05d}.GCS.01020.{moment.year % 100:02d}",
        NGAY_CT=moment.strftime("%Y%m%d"),
        NGAY_SINH_CON=moment.strftime("%Y%m%d%H%M"),
    )


def test_born_and_issued_today_in_vietnam_is_accepted_at_every_hour(vn_clock, wh):
    now = clock.vn_local_now()
    r = run(wh, [born_at(now - dt.timedelta(minutes=2), 1), born_at(now + dt.timedelta(hours=3), 2)])
    (first, none), (second, codes) = outcomes(wh, r.batch_id)
    assert (first, none) == ("stored", [])
    assert second == "refused" and set(codes) == {"DATE_FUTURE"}  # the birth three hours ahead of Vietnam
