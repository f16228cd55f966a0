"""DHIS2 mortality (solution 4.1): the commune A6 death register, every day after 18:00.

Each run owns its data interval (the day up to 18:30 Asia/Ho_Chi_Minh; catch-up runs every missed day in order).
For every configured org unit (Variable `dhis2_mortality`; connection `dhis2_default`): check the server (version,
time zone) and the A6 mapping against its program stage (a mismatch fails the run, nothing read or written), then
pull the A6 events updated in the interval (from the watermark if an earlier run failed, minus the overlap;
deletions included) into `wh.dhis2_death_event`; then match every death to a death notice / registration.
Registrars read `wh.dhis2_unregistered_deaths`. XCom carries counts only. Docs: docs/dhis2.md.
"""

import datetime as dt

import pendulum
from airflow.sdk import Variable, dag, task
from airflow.sdk.definitions.timetables.interval import CronDataIntervalTimetable

from certpipe import lineage
from certpipe.dag_defaults import TIMEZONE, default_args, tags


@dag(
    dag_id="dhis2_mortality_daily",
    schedule=CronDataIntervalTimetable("30 18 * * *", timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 11, 1, 18, 30, tz=TIMEZONE),
    catchup=True,
    max_active_runs=1,
    default_args=default_args(retry_delay=dt.timedelta(minutes=5)),
    tags=tags("certificates", "dhis2", "solution-4"),
    doc_md=__doc__,
)
def dhis2_mortality_daily():
    @task
    def org_units() -> list[str]:
        from certpipe.sources.dhis2.metadata import settings_from

        return settings_from(Variable.get("dhis2_mortality", default="{}"))["org_units"]

    @task(map_index_template="{{ task.op_kwargs['root'] }}", inlets=[lineage.DHIS2_A6], outlets=[lineage.DHIS2_DEATHS])
    def pull(root: str, **context) -> dict:
        from certpipe import warehouse
        from certpipe.sources.dhis2.daily import pull_window
        from certpipe.sources.dhis2.metadata import settings_from

        settings = settings_from(Variable.get("dhis2_mortality", default="{}"))
        out = pull_window(
            root,
            context["data_interval_start"],
            context["data_interval_end"],
            warehouse.warehouse_dsn(),
            run_id=context["run_id"],
            settings=settings,
        )
        context["outlet_events"][lineage.DHIS2_DEATHS].extra = lineage.counts_extra(out)
        return out

    @task(inlets=[lineage.DHIS2_DEATHS, lineage.CERTIFICATES["GBT"]])
    def match(pulled: list[dict], **context) -> dict:
        from certpipe import warehouse
        from certpipe.sources.dhis2.daily import match_events

        return match_events(warehouse.warehouse_dsn(), run_id=context["run_id"])

    match(pull.expand(root=org_units()))


dhis2_mortality_daily()
