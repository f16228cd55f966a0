"""HIS pull (solution 1): every pilot hospital's birth certificates and death notices, every 15 minutes.

For each hospital (Variable `his_hospitals`, one Airflow connection each) and each kind:
extract (changes since the watermark, landed raw) → ingest (validate + warehouse rules) → acknowledge
(every record accepted or refused with reasons, back to the HIS). Hospitals are mapped: one hospital's
outage fails only its own tasks. XCom carries batch ids and counts, never records.
"""

import datetime as dt

import pendulum
from airflow.sdk import Variable, dag, task, task_group

from certpipe import lineage
from certpipe.dag_defaults import FACILITY_LABEL, TIMEZONE, default_args, tags

KINDS = ("GCS", "GBT")


@dag(
    dag_id="his_pull",
    schedule="*/15 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(retry_delay=dt.timedelta(minutes=1)),
    tags=tags("certificates", "his", "solution-1"),
    doc_md=__doc__,
)
def his_pull():
    @task
    def hospitals() -> list[dict]:
        from certpipe import config

        return config.hospitals(Variable.get("his_hospitals", default="[]"))

    @task_group
    def hospital(hospital: dict):
        for kind in KINDS:

            @task(task_id=f"extract_{kind.lower()}", map_index_template=FACILITY_LABEL, inlets=[lineage.HIS])
            def extract(hospital: dict, kind: str = kind, **context) -> dict:
                from certpipe import warehouse
                from certpipe.sources.his.pull import extract

                return extract(hospital, kind, warehouse.warehouse_dsn(), run_id=context["run_id"])

            @task(
                task_id=f"ingest_{kind.lower()}",
                map_index_template=FACILITY_LABEL,
                inlets=[lineage.HIS],
                outlets=lineage.certificates(kind),
            )
            def ingest(batch: dict, **context) -> dict:
                from certpipe import warehouse
                from certpipe.sources.his.pull import ingest_landed

                dsn = warehouse.warehouse_dsn()
                out = ingest_landed(batch, dsn)
                lineage.emit(context, dsn, [out["batch_id"]])  # counts in the asset event
                return out

            @task(task_id=f"acknowledge_{kind.lower()}", map_index_template=FACILITY_LABEL)
            def acknowledge(hospital: dict, batch: dict) -> dict:
                from certpipe import warehouse
                from certpipe.sources.his.pull import acknowledge

                return acknowledge(hospital, batch, warehouse.warehouse_dsn())

            acknowledge(hospital, ingest(extract(hospital)))

    hospital.expand(hospital=hospitals())


his_pull()
