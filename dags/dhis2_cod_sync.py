"""DHIS2 cause-of-death back-sync (solution 4.2), weekly (Monday 02:00 Asia/Ho_Chi_Minh, for the past week).

push: the week's death registrations (death notices marked used) and earlier failures → the A6 register, one event
per death: the station's own event when matching linked one (updated, its status kept), else an event of ours
(deterministic UID per certificate number, so a re-run creates nothing); deleted events are recorded once and left
alone; every death's outcome in `wh.dhis2_push`. Then pull: causes of death (ICD-10 code, text) commune stations
updated that week → `wh.cause_of_death` (source `dhis2`, next to `hospital`). Both check the server and the A6
mapping first. Variable `dhis2_mortality`, connection `dhis2_default` (docs/dhis2.md). XCom: counts only.
"""

import datetime as dt

import pendulum
from airflow.sdk import Variable, dag, task
from airflow.sdk.definitions.timetables.interval import CronDataIntervalTimetable

from certpipe import lineage
from certpipe.dag_defaults import TIMEZONE, default_args, tags


@dag(
    dag_id="dhis2_cod_sync",
    schedule=CronDataIntervalTimetable("0 2 * * 1", timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 11, 2, 2, tz=TIMEZONE),
    catchup=True,
    max_active_runs=1,
    default_args=default_args(retry_delay=dt.timedelta(minutes=10)),
    tags=tags("certificates", "dhis2", "solution-4"),
    doc_md=__doc__,
)
def dhis2_cod_sync():
    @task(inlets=[lineage.CERTIFICATES["GBT"]], outlets=[lineage.DHIS2_A6])
    def push(**context) -> dict:
        from certpipe import warehouse
        from certpipe.sources.dhis2.metadata import settings_from
        from certpipe.sources.dhis2.push import push_registrations

        settings = settings_from(Variable.get("dhis2_mortality", default="{}"))
        out = push_registrations(
            context["data_interval_start"],
            context["data_interval_end"],
            warehouse.warehouse_dsn(),
            run_id=context["run_id"],
            settings=settings,
        )
        context["outlet_events"][lineage.DHIS2_A6].extra = lineage.counts_extra(out)
        return out

    @task(inlets=[lineage.DHIS2_A6], outlets=[lineage.CAUSES_OF_DEATH])
    def pull_causes(pushed: dict, **context) -> dict:
        from certpipe import warehouse
        from certpipe.sources.dhis2.causes import pull_causes
        from certpipe.sources.dhis2.metadata import settings_from

        settings = settings_from(Variable.get("dhis2_mortality", default="{}"))
        out = pull_causes(
            context["data_interval_start"],
            context["data_interval_end"],
            warehouse.warehouse_dsn(),
            run_id=context["run_id"],
            settings=settings,
        )
        context["outlet_events"][lineage.CAUSES_OF_DEATH].extra = lineage.counts_extra(out)
        return out

    pull_causes(push())


dhis2_cod_sync()
