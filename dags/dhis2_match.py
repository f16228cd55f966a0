"""DHIS2 matching on new death notices (solution 4.1): scheduled on the warehouse's death-notice asset.

Whenever a task stores death notices (HIS, BHXH, Excel inbox: asset `warehouse_death_notices`), match the DHIS2 A6
deaths not yet matched to them, so the registrars' list of deaths not yet registered (`wh.dhis2_unregistered_deaths`)
is current within minutes instead of at the next daily run of `dhis2_mortality_daily` (which pulls A6 and matches
too). Reads and writes the warehouse only; no call to DHIS2. XCom carries counts only.
"""

import datetime as dt

import pendulum
from airflow.sdk import dag, task

from certpipe import lineage
from certpipe.dag_defaults import TIMEZONE, default_args, tags


@dag(
    dag_id="dhis2_match",
    schedule=[lineage.CERTIFICATES["GBT"]],
    start_date=pendulum.datetime(2026, 11, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(retry_delay=dt.timedelta(minutes=1)),
    tags=tags("certificates", "dhis2", "solution-4"),
    doc_md=__doc__,
)
def dhis2_match():
    @task(inlets=[lineage.DHIS2_DEATHS, lineage.CERTIFICATES["GBT"]])
    def match(**context) -> dict:
        from certpipe import warehouse
        from certpipe.sources.dhis2.daily import match_events

        return match_events(warehouse.warehouse_dsn(), run_id=context["run_id"])

    match()


dhis2_match()
