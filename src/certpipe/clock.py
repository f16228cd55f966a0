"""One definition of "now" and "today in Vietnam" (Asia/Ho_Chi_Minh), whatever the machine's time zone.

The SQL twin is `wh.vn_today()` / `wh.vn_date(ts)` / `wh.clock()` (migration 0010): every date computed from the
clock, in Python or in SQL, goes through one of these. Tests freeze Python's clock with time-machine and the
database's with the `certpipe.clock_offset` setting (see tests/clock.py); production never sets it.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def vn_now() -> dt.datetime:
    """Now, aware, in Vietnam's zone."""
    return dt.datetime.now(VN)


def vn_local_now() -> dt.datetime:
    """Now as Vietnam's wall clock, naive (the form certificate timestamps take)."""
    return vn_now().replace(tzinfo=None)


def vn_today() -> dt.date:
    return vn_now().date()


def vn_date(moment: dt.datetime) -> dt.date:
    """The Vietnam-local day of an aware moment (a naive one is taken as Vietnam's wall clock)."""
    return (moment.astimezone(VN) if moment.tzinfo else moment).date()


def as_vn(moment: dt.datetime) -> dt.datetime:
    """An aware moment; a naive one is read as Vietnam's wall clock."""
    return moment if moment.tzinfo else moment.replace(tzinfo=VN)
