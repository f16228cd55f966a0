"""Freezing the clock for date-sensitive tests, in Python (time-machine) and in SQL (`certpipe.clock_offset`).

The instants are the edges of Vietnam's day in UTC: 16:59 (still day D in Vietnam at 23:59), 17:00 (day D+1 has
just begun in Vietnam, UTC is still on day D) and 23:59 UTC. A test taking the `vn_clock` fixture runs once at
each; CI also runs these tests under TZ=Asia/Ho_Chi_Minh (`pytest -m clock`).
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import time_machine

INSTANTS = ("16:59", "17:00", "23:59")  # UTC, on today's UTC date


def instant(hhmm: str, day: dt.date | None = None) -> dt.datetime:
    day = day or dt.datetime.now(dt.UTC).date()
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm), dt.UTC)


@dataclass(frozen=True)
class FrozenClock:
    at: dt.datetime  # aware, UTC

    @property
    def vn_today(self) -> dt.date:
        from certpipe import clock

        return clock.vn_date(dt.datetime.now(dt.UTC))


def set_database_clock(admin_url: str, database: str, at: dt.datetime) -> None:
    """New sessions of `database` see wh.clock() start at `at` and tick. The offset is taken from the server's own
    now(), not Python's: the two clocks may differ (a faked process clock, a remote server)."""
    with psycopg.connect(admin_url, autocommit=True) as c:
        server_now = c.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        offset = (at - server_now).total_seconds()
        c.execute(f"ALTER DATABASE \"{database}\" SET certpipe.clock_offset = '{offset:.6f} seconds'")


@contextmanager
def frozen(at: dt.datetime, *, admin_url: str | None = None, database: str | None = None):
    """Python's clock starts at `at` and ticks; with a database, its wh.clock() is moved by the same offset
    (open connections keep the old setting: open them inside this block)."""
    if admin_url and database:
        set_database_clock(admin_url, database, at)
    with time_machine.travel(at, tick=True):
        yield FrozenClock(at)
