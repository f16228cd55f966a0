"""Shared HTTP behaviour for source clients: retries with backoff on 5xx and timeouts, clear 4xx failures.

Responses are never logged: a source's answer may carry personal data.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook

from certpipe.errors import SourceRejected, SourceUnavailable

log = logging.getLogger(__name__)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, SourceUnavailable | requests.Timeout | requests.ConnectionError)


class RetryingHttpHook(HttpHook):
    """HttpHook with tenacity retries (exponential backoff with jitter) on 5xx, timeouts, connection errors."""

    source_label = "source"

    def __init__(
        self,
        conn_id: str,
        *,
        timeout: float = 30,
        attempts: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 30,
        **kwargs: Any,
    ):
        super().__init__(method="GET", http_conn_id=conn_id, **kwargs)
        self.timeout, self.attempts, self.backoff, self.max_backoff = timeout, attempts, backoff, max_backoff

    def _error_detail(self, resp: requests.Response) -> str:
        try:
            body = resp.json()
        except ValueError:
            return ""
        if isinstance(body, dict):  # only the error code/short message fields, never the whole body
            return " ".join(str(body[k])[:200] for k in ("error", "code", "message") if k in body)
        return ""

    def call(self, method: str, endpoint: str, *, params: dict | None = None, json: Any = None) -> Any:
        def once() -> Any:
            self.method = method
            kwargs = {"json": json} if json is not None else {}
            try:
                resp = self.run(
                    endpoint, data=params, extra_options={"check_response": False, "timeout": self.timeout}, **kwargs
                )
            except requests.Timeout as e:
                raise SourceUnavailable(f"{self.source_label} {self.http_conn_id}: timeout on {endpoint}") from e
            except requests.ConnectionError as e:
                raise SourceUnavailable(f"{self.source_label} {self.http_conn_id}: cannot connect") from e
            if resp.status_code >= 500 or resp.status_code == 429:
                raise SourceUnavailable(
                    f"{self.source_label} {self.http_conn_id}: HTTP {resp.status_code} on {endpoint}", resp.status_code
                )
            if resp.status_code >= 400:
                raise SourceRejected(
                    f"{self.source_label} {self.http_conn_id}: HTTP {resp.status_code} on "
                    f"{endpoint} {self._error_detail(resp)}".rstrip(),
                    resp.status_code,
                )
            try:
                return resp.json()
            except ValueError as e:
                raise SourceUnavailable(
                    f"{self.source_label} {self.http_conn_id}: answer on {endpoint} is not JSON"
                ) from e

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_retryable),
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=tenacity.wait_exponential_jitter(initial=self.backoff, max=self.max_backoff),
            before_sleep=lambda rs: log.warning(
                "%s (attempt %d/%d), retrying", rs.outcome.exception(), rs.attempt_number, self.attempts
            ),
            reraise=True,
        )
        return retrying(once)
