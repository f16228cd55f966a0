"""Errors of the certificate pipeline, and how Airflow should treat them.

- `SourceUnavailable`: transient (5xx, 429, timeout, connection reset, a truncated answer): retried with backoff,
  then the task fails and Airflow's own retries apply.
- `SourceRejected`: the source refused our request (4xx other than 429): retrying cannot fix it.
- `ConfigError`: a connection, Variable or mapping is wrong: retrying cannot fix it.
Both terminal kinds subclass `AirflowFailException` when Airflow is importable, so a task fails at once with a
message naming the system, the connection and what to fix. Messages never carry a payload or a personal value.
"""

from __future__ import annotations

try:  # tasks and hooks: Airflow's "do not retry" exception
    from airflow.sdk.exceptions import AirflowFailException as Terminal
except ImportError:  # the registrar service and scripts run without Airflow
    Terminal = Exception  # type: ignore[assignment,misc]


class CertpipeError(Exception):
    """Base of the project's errors."""


class SourceError(CertpipeError):
    """A source answered with an error. The message names the source and the status, never a payload."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class SourceUnavailable(SourceError):
    """5xx, 429, timeout, connection failure or an unreadable answer: worth retrying."""


class SourceRejected(SourceError, Terminal):
    """4xx (not 429): our request or credentials are wrong; retrying will not help."""


class ConfigError(CertpipeError, Terminal):
    """A connection, Variable or mapping is missing or malformed; the message names it and the field."""
