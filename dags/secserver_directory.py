"""Security-server directory (national portal guide, section V.1): daily refresh of MACOQUAN → DSTCODE.

Calls `LayDanhMucSSTaiTep` on our security server (connection `secserver_default`) and makes the answer the
current directory (`wh.secserver_directory`), recording what appeared, changed and disappeared
(`wh.secserver_directory_history`) and every attempt (`wh.secserver_directory_refresh`). The directory resolves
the DSTCODE of VDXP download links (V.3).

An empty, non-JSON or malformed answer, or one that drops more than `max_shrink` (default 20 %) of the current
agencies, never replaces the directory: the run fails with the reason (a rules.json `SS_DIR_*` code) and the
previous directory stays. If a large drop is real, trigger the DAG with `{"max_shrink": 1}`.
Also run on demand when the national portal announces a change.
"""

import datetime as dt

import pendulum
from airflow.sdk import Param, dag, task

from certpipe import lineage
from certpipe.dag_defaults import TIMEZONE, default_args, tags

CONN_ID = "secserver_default"


@dag(
    dag_id="secserver_directory",
    schedule="0 5 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(retry_delay=dt.timedelta(minutes=10)),
    params={
        "max_shrink": Param(
            0.2,
            type="number",
            minimum=0,
            maximum=1,
            description="Largest share of current agencies an answer may drop (0-1).",
        )
    },
    tags=tags("secserver", "directory", "national-portal"),
    doc_md=__doc__,
)
def secserver_directory():
    @task(inlets=[lineage.SECSERVER], outlets=[lineage.SECSERVER_DIRECTORY])
    def refresh(**context) -> dict:
        from certpipe import warehouse
        from certpipe.sources.secserver.directory import refresh_directory

        out = refresh_directory(
            CONN_ID,
            warehouse.warehouse_dsn(),
            max_shrink=float(context["params"]["max_shrink"]),
            run_id=f"secserver_directory/{context['run_id']}",
        )
        context["outlet_events"][lineage.SECSERVER_DIRECTORY].extra = lineage.counts_extra(out)
        return out

    refresh()


secserver_directory()
