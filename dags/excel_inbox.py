"""Excel inbox (solution 3): hospitals drop HIS-exported .xlsx files into a watched bucket.

Every 3 minutes (a file is picked up within 5 minutes of arriving): `scan` lists `inbox/<facility>/` of the
bucket (Variable `certpipe_inbox_url`: a local folder by default, `s3://...` for MinIO/S3), takes new files out
of the inbox and claims each distinct content once in the warehouse ledger; `process` (one mapped task per
file) reads it, lands the rows, runs them through the ingestion core, writes the result workbook to
`results/<facility>/` and moves the file to `processed/` (or `quarantine/` when it cannot be read).
A file is processed exactly once, and an interrupted one is resumed by the next attempt or run.
XCom carries file ids and counts, never file names or records.
"""

import datetime as dt

import pendulum
from airflow.sdk import dag, task

from certpipe import lineage
from certpipe.dag_defaults import TIMEZONE, default_args, tags

LABEL = "{{ 'file ' ~ task.op_kwargs['file_id'] if task.op_kwargs.get('file_id') else '' }}"


@dag(
    dag_id="excel_inbox",
    schedule="*/3 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    # a long file (up to its execution_timeout) must not hold back the files dropped after it: a new run
    # starts meanwhile; its scan leaves files another run is processing (advisory lock) alone
    max_active_runs=3,
    default_args=default_args(retry_delay=dt.timedelta(seconds=30)),
    tags=tags("certificates", "excel", "solution-3"),
    doc_md=__doc__,
)
def excel_inbox():
    @task
    def scan(**context) -> list[int]:
        from certpipe import warehouse
        from certpipe.sources.excel import inbox as excel

        root = excel.inbox_root()
        excel.ensure_template(root)
        return excel.scan(
            root, warehouse.warehouse_dsn(), run_id=context["run_id"], min_age=float(excel.setting_min_age())
        )["file_ids"]

    @task(
        map_index_template=LABEL,
        max_active_tis_per_dagrun=2,
        # a file that hangs its worker is stopped, retried, and quarantined after its attempts (wh.excel_file)
        execution_timeout=dt.timedelta(minutes=20),
        inlets=[lineage.EXCEL_INBOX],
        outlets=lineage.certificates("GCS", "GBT"),
    )
    def process(file_id: int, **context) -> dict:
        from certpipe import warehouse
        from certpipe.sources.excel import inbox as excel

        dsn = warehouse.warehouse_dsn()
        out = excel.process(excel.inbox_root(), dsn, file_id, run_id=context["run_id"])
        lineage.emit(context, dsn, lineage.excel_file_batches(dsn, file_id))  # counts per kind in the asset events
        return out

    process.expand(file_id=scan())


excel_inbox()
