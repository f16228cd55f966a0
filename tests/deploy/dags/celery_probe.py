"""Deployment test DAG: two tasks run by a real Celery worker (tests/deploy/test_celery.py)."""

import os

import pendulum
from airflow.sdk import dag, task

from certpipe.alerts import on_task_failure


@dag(
    dag_id="deploy_celery_probe",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Ho_Chi_Minh"),
    catchup=False,
    # Own Celery queue per test run (set by the test), so a shared Redis never mixes runs.
    default_args={
        "owner": "data-engineering",
        "retries": 0,
        "on_failure_callback": on_task_failure,
        "queue": os.environ.get("CERTPIPE_TEST_CELERY_QUEUE", "default"),
    },
    tags=["deploy-test"],
    doc_md=__doc__,
)
def deploy_celery_probe():
    @task
    def where() -> dict:
        return {"pid": os.getpid()}

    @task
    def schema_count() -> int:
        """Touches the project package from the worker: the certpipe plugins are importable there."""
        from certpipe.core.keys import KEYS

        return len(KEYS)

    @task
    def check(info: dict, kinds: int) -> str:
        assert kinds == 2 and info["pid"] > 0
        return "ok"

    check(where(), schema_count())


deploy_celery_probe()
