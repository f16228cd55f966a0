"""Airflow plugin registrations of the certificate pipeline (and nothing else: Airflow imports every file here in
every process). The code lives in the installed `certpipe` package.

- macro `{{ macros.certpipe.vn_today() }}`
- the "Data quality" page (certpipe.quality.app) mounted in the api-server under /data-quality, in the navigation,
  and as a tab of every DAG run and task instance (that run's / task's batches and refusals). The FastAPI app is
  built on its first request, so other Airflow processes importing this file do not pay for it.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/data-quality"  # certpipe.quality.URL_PREFIX (not imported here: keep this file light)


def vn_today() -> str:
    """Template macro `{{ macros.certpipe.vn_today() }}`: today in Vietnam (ISO date), whatever the server's zone."""
    from certpipe import clock

    return clock.vn_today().isoformat()


class LazyApp:
    """An ASGI app that builds `certpipe.quality.app.create_app()` on its first request."""

    def __init__(self) -> None:
        self.app = None

    async def __call__(self, scope, receive, send) -> None:
        if self.app is None:
            from certpipe.quality.app import create_app

            self.app = create_app()
        await self.app(scope, receive, send)


class CertpipePlugin(AirflowPlugin):
    name = "certpipe"
    macros = [vn_today]  # noqa: RUF012 - AirflowPlugin's own attributes
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "certpipe data quality"}]  # noqa: RUF012
    external_views = [  # noqa: RUF012
        {
            "name": "Data quality",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "data-quality",
            "nav_top_level": True,
        },
        {
            "name": "Data quality",
            "href": f"{URL_PREFIX}/run?dag_id={{DAG_ID}}&run_id={{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "data-quality-run",
        },
        {
            "name": "Data quality",
            "href": f"{URL_PREFIX}/run?dag_id={{DAG_ID}}&run_id={{RUN_ID}}&task_id={{TASK_ID}}&map_index={{MAP_INDEX}}",
            "destination": "task_instance",
            "url_route": "data-quality-ti",
        },
    ]
