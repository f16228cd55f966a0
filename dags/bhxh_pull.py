"""BHXH pull (solution 2): certificates issued or changed in the BHXH database, hourly, one window per run.

Each run owns its data interval [start, end) (catch-up runs every missed hour in order, one at a time). For every
pilot province (Variable `bhxh_provinces`, e.g. `["01", "79", "96"]`; connection `bhxh_default`) and each kind:
extract (the window, from the watermark if an earlier window failed, minus 10 minutes overlap; landed raw) →
ingest (validate + warehouse rules, source `bhxh`; then the watermark moves to the window's end).
A failed run leaves the watermark where it was; re-running a window changes nothing. Disagreements with
another source (e.g. HIS) are in `wh.source_disagreement`. XCom carries batch ids and counts, never records.
"""

import datetime as dt

import pendulum
from airflow.sdk import Variable, dag, task, task_group
from airflow.sdk.definitions.timetables.interval import CronDataIntervalTimetable

from certpipe import lineage
from certpipe.dag_defaults import PROVINCE_LABEL, TIMEZONE, default_args, tags

KINDS = ("GCS", "GBT")


@dag(
    dag_id="bhxh_pull",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 11, 1, tz=TIMEZONE),
    catchup=True,
    max_active_runs=1,
    default_args=default_args(retry_delay=dt.timedelta(minutes=2)),
    tags=tags("certificates", "bhxh", "solution-2"),
    doc_md=__doc__,
)
def bhxh_pull():
    @task
    def provinces() -> list[str]:
        from certpipe import config

        return config.provinces(Variable.get("bhxh_provinces", default="[]"))

    @task_group
    def province(province: str):
        for kind in KINDS:

            @task(task_id=f"extract_{kind.lower()}", map_index_template=PROVINCE_LABEL, inlets=[lineage.BHXH])
            def extract(province: str, kind: str = kind, **context) -> dict:
                from certpipe import warehouse
                from certpipe.sources.bhxh.pull import pull_window

                client = Variable.get("bhxh_client", default={}, deserialize_json=True)
                return pull_window(
                    province,
                    kind,
                    context["data_interval_start"],
                    context["data_interval_end"],
                    warehouse.warehouse_dsn(),
                    run_id=context["run_id"],
                    client=client,
                )

            @task(
                task_id=f"ingest_{kind.lower()}",
                map_index_template=PROVINCE_LABEL,
                inlets=[lineage.BHXH],
                outlets=lineage.certificates(kind),
            )
            def ingest(batch: dict, **context) -> dict:
                from certpipe import warehouse
                from certpipe.sources.bhxh.pull import ingest_window

                dsn = warehouse.warehouse_dsn()
                out = ingest_window(batch, dsn)
                lineage.emit(context, dsn, [out["batch_id"]])  # counts in the asset event
                return out

            ingest(extract(province))

    province.expand(province=provinces())


bhxh_pull()
