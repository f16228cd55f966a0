"""The retry policy of every source call: transient failures are retried with exponential backoff and jitter; a
`Retry-After` from the server (seconds or an HTTP date) is honoured, up to a ceiling."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

import tenacity

from certpipe.errors import SourceUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


def retry_after_seconds(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Retry-After as seconds from now (RFC 9110: delay-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


class RetryAfterTooLong(SourceUnavailable):
    """The server asked us to come back later than we are willing to wait inside one task."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff: float = 1.0
    max_backoff: float = 30.0
    max_retry_after: float = 300.0

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = getattr(exc, "retry_after", None)
        if asked is not None:
            return float(asked)
        return tenacity.wait_exponential_jitter(initial=self.backoff, max=self.max_backoff, jitter=self.backoff)(state)

    def run(self, call: Callable[[], T]) -> T:
        """Run `call`, retrying SourceUnavailable (not RetryAfterTooLong) up to `attempts` tries in all."""

        def guarded() -> T:
            try:
                return call()
            except SourceUnavailable as e:
                if e.retry_after is not None and e.retry_after > self.max_retry_after:
                    raise RetryAfterTooLong(
                        f"{e} (Retry-After {e.retry_after:.0f} s is beyond the {self.max_retry_after:.0f} s this "
                        "task waits; the task's own retry comes later)",
                        e.status,
                    ) from e
                raise

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(
                lambda e: isinstance(e, SourceUnavailable) and not isinstance(e, RetryAfterTooLong)
            ),
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=self._wait,
            before_sleep=lambda rs: log.warning(
                "%s (attempt %d/%d), retrying in %.1f s",
                rs.outcome.exception() if rs.outcome else "",
                rs.attempt_number,
                self.attempts,
                rs.upcoming_sleep,
            ),
            reraise=True,
        )
        return retrying(guarded)
