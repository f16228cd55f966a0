"""Airflow plugin registrations of the certificate pipeline (and nothing else: Airflow imports every file here in
every process). The code lives in the installed `certpipe` package."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


def vn_today() -> str:
    """Template macro `{{ macros.certpipe.vn_today() }}`: today in Vietnam (ISO date), whatever the server's zone."""
    from certpipe import clock

    return clock.vn_today().isoformat()


class CertpipePlugin(AirflowPlugin):
    name = "certpipe"
    macros = [vn_today]  # noqa: RUF012 - AirflowPlugin's own attribute
