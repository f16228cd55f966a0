"""One notion of "today": Vietnam's day, at the edges of the UTC day, in Python and in SQL alike."""

import datetime as dt

import pytest

from certpipe import clock
from tests.clock import INSTANTS, frozen, instant


@pytest.mark.clock
@pytest.mark.parametrize("hhmm", INSTANTS)
def test_python_and_sql_agree_on_vietnams_day(hhmm, pg_server, warehouse_dsn):
    import psycopg

    at = instant(hhmm)
    expected = (at + dt.timedelta(hours=7)).date()  # Vietnam is UTC+7 all year
    with frozen(at, admin_url=pg_server.admin_url, database=warehouse_dsn.rsplit("/", 1)[1]):
        assert clock.vn_today() == expected
        with psycopg.connect(warehouse_dsn) as c:
            c.execute("SET TIME ZONE 'UTC'")  # the session's zone must not matter
            sql_today, sql_date = c.execute("SELECT wh.vn_today(), wh.vn_date(%s)", (at,)).fetchone()
            assert c.execute("SELECT current_date").fetchone()[0] == at.date()  # the trap: UTC's day
    assert sql_today == sql_date == expected


@pytest.mark.clock
def test_the_day_changes_at_17_utc():
    with frozen(instant("16:59")):
        before = clock.vn_today()
    with frozen(instant("17:00")):
        after = clock.vn_today()
    assert after - before == dt.timedelta(days=1)


def test_vn_date_reads_naive_moments_as_vietnams_wall_clock():
    assert clock.vn_date(dt.datetime(2026, 12, 3, 23, 30)) == dt.date(2026, 12, 3)
    assert clock.vn_date(dt.datetime(2026, 12, 3, 17, 30, tzinfo=dt.UTC)) == dt.date(2026, 12, 4)
