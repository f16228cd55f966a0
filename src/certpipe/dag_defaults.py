"""What every DAG of the pipeline shares: owner, retries, failure alert, schedule zone, map-index labels.

Imported at the top of DAG files, so it stays light (stdlib, pendulum, the stdlib-only alerts module).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from certpipe.alerts import on_task_failure

TIMEZONE = "Asia/Ho_Chi_Minh"
OWNER = "data-engineering"

# Mapped task instances are labelled in the UI by what they stand for, not 0, 1, 2. The first argument of each
# mapped task is the hospital / province, or the batch it produced (which carries its facility / province).
FACILITY_LABEL = "{{ task.op_args[0]['facility'] if task.op_args and task.op_args[0] is mapping else '' }}"
PROVINCE_LABEL = (
    "{{ (task.op_args[0] if task.op_args[0] is string else task.op_args[0]['province']) if task.op_args else '' }}"
)


def default_args(retry_delay: dt.timedelta, retries: int = 2, **extra: Any) -> dict[str, Any]:
    """Task defaults: the team owns it, `retries` retries after `retry_delay` (what a retry can fix: a source that
    is down; terminal errors raise AirflowFailException and are not retried), an alert on failure."""
    return {
        "owner": OWNER,
        "retries": retries,
        "retry_delay": retry_delay,
        "on_failure_callback": on_task_failure,
        **extra,
    }


def tags(*extra: str) -> list[str]:
    return ["certpipe", *extra]
