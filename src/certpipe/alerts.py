"""Alerts: a failed task, or a batch refused above a threshold, notifies the operators.

Configuration: the Variable `alerting` (JSON), every key optional:

    {"refusal_rate": 0.2,              # alert when refused / received exceeds this (per batch)
     "min_received": 1,                # ... and the batch received at least this many records
     "webhook_conn_id": "alerts_webhook",  # HTTP connection: host = the webhook URL; POSTs JSON
     "webhook_endpoint": "",           # path appended to the connection's host
     "email": ["ops@example.vn"],      # e-mail through the smtp provider (connection `smtp_conn_id`)
     "smtp_conn_id": "smtp_default", "email_from": null}

No channel configured → the alert is only logged. Alerts carry identifiers and counts only (dag_id, task_id,
run_id, map_index, try number, batch id, source, facility code, kind, counts, refusal rule codes, exception
class) and a link to the data-quality page of the Airflow UI (the batch's drill-down, or the task instance's
batches): never a record, a value, an exception message or a log line. Sending is best effort: a broken channel
is logged and never fails the task (nor hides the failure that caused the alert).

Import cost is stdlib only: DAG files import `on_task_failure` at top level.
"""

from __future__ import annotations

import json
import logging
import os

log = logging.getLogger(__name__)

COUNTS = ("received", "stored", "updated", "unchanged", "refused")
# The only keys an alert can ever carry (values are checked: scalars, or rule code -> count).
ALLOWED = {
    "event",
    "severity",
    "dag_id",
    "task_id",
    "run_id",
    "map_index",
    "try_number",
    "batch_id",
    "source",
    "source_ref",
    "kind",
    *COUNTS,
    "refusal_rate",
    "threshold",
    "refusals_by_rule",
    "error_type",
    "quality_url",  # the data-quality page for this batch / task (identifiers only in the link)
}


def settings(value: str | dict | None = None) -> dict:
    """The `alerting` Variable over the defaults, validated (`certpipe.config.Alerting`); `value` given: that."""
    from certpipe import config

    return config.parse("alerting", value if value is not None else (_variable() or {}), config.Alerting).model_dump()


def _variable() -> str | None:
    try:
        from airflow.sdk import Variable

        return Variable.get("alerting", default=None)
    except Exception:  # outside a task (scripts, tests): the environment is the only source
        return os.environ.get("AIRFLOW_VAR_ALERTING")


def _clean(payload: dict) -> dict:
    """Whitelist: identifiers, counts and rule codes only."""
    out = {}
    for k, v in payload.items():
        if k not in ALLOWED or v is None:
            continue
        if k == "refusals_by_rule":
            v = {str(code): int(n) for code, n in (v or {}).items()}
        elif not isinstance(v, (str, int, float, bool)):
            v = str(v)
        out[k] = v
    return out


def _context_ids(context) -> dict:
    if context is None:
        try:
            from airflow.sdk import get_current_context

            context = get_current_context()
        except Exception:
            return {}
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    return {
        "dag_id": getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "run_id": context.get("run_id") or getattr(dag_run, "run_id", None),
        "map_index": getattr(ti, "map_index", None),
        "try_number": getattr(ti, "try_number", None),
    }


def notify(payload: dict, cfg: dict | None = None) -> dict:
    """Send one alert on every configured channel. Returns {"webhook": bool, "email": bool} (sent or not)."""
    cfg = settings() if cfg is None else cfg
    payload = _clean(payload)
    sent = {"webhook": False, "email": False}
    if cfg.get("webhook_conn_id"):
        try:
            from airflow.providers.http.hooks.http import HttpHook

            webhook = HttpHook(method="POST", http_conn_id=cfg["webhook_conn_id"])
            webhook.run(
                cfg.get("webhook_endpoint") or "",
                json=payload,
                headers={"Content-Type": "application/json"},
                extra_options={"timeout": 10},
            )
            sent["webhook"] = True
        except Exception as e:  # best effort; never the body, the URL's secrets or the payload
            log.warning("alert webhook %s failed: %s", cfg["webhook_conn_id"], type(e).__name__)
    if cfg.get("email"):
        try:
            from airflow.providers.smtp.hooks.smtp import SmtpHook

            with SmtpHook(smtp_conn_id=cfg.get("smtp_conn_id") or "smtp_default") as hook:
                hook.send_email_smtp(
                    to=cfg["email"],
                    subject=_subject(payload),
                    html_content=_html(payload),
                    from_email=cfg.get("email_from"),
                )
            sent["email"] = True
        except Exception as e:
            log.warning("alert e-mail failed: %s", type(e).__name__)
    if not any(sent.values()):
        log.warning("alert (no channel delivered it): %s", json.dumps(payload, sort_keys=True))
    return sent


def _quality_url(path: str, **params) -> str | None:
    try:
        from certpipe.quality import page_url

        return page_url(path, **params)
    except Exception:  # a link is a convenience: never what stops an alert
        return None


def _subject(p: dict) -> str:
    if p.get("event") == "task_failed":
        return f"[certpipe] task failed: {p.get('dag_id')}.{p.get('task_id')}"
    return f"[certpipe] refusal rate {p.get('refusal_rate', 0):.0%} in batch {p.get('batch_id')} ({p.get('source')})"


def _html(p: dict) -> str:
    from html import escape

    rows = "".join(
        f"<tr><th align=left>{escape(k)}</th><td>{escape(json.dumps(v))}</td></tr>"
        for k, v in sorted(p.items())
        if k != "quality_url"
    )
    link = f'<p><a href="{escape(p["quality_url"])}">Data quality page</a></p>' if p.get("quality_url") else ""
    return f"{link}<table>{rows}</table>"


def on_task_failure(context) -> None:
    """`on_failure_callback` for every DAG (default_args): task ids and the exception class only."""
    exc = context.get("exception")
    ids = _context_ids(context)
    payload = {
        "event": "task_failed",
        "severity": "error",
        **ids,
        "error_type": type(exc).__name__ if isinstance(exc, BaseException) else None,
        "quality_url": _quality_url("/run", **{k: ids.get(k) for k in ("dag_id", "run_id", "task_id", "map_index")})
        if ids.get("dag_id") and ids.get("run_id")
        else None,
    }
    try:
        notify(payload)
    except Exception as e:  # a failure callback must never raise
        log.warning("failure alert not sent: %s", type(e).__name__)


def check_refusal_rate(summary: dict, *, source: str | None = None, context=None, cfg: dict | None = None) -> bool:
    """After a batch was ingested (`BatchResult.summary()`, plus source_ref/facility): alert when refused /
    received exceeds the threshold. Returns whether an alert was raised. Any source adapter can call it."""
    try:
        cfg = settings() if cfg is None else cfg
        received, refused = int(summary.get("received") or 0), int(summary.get("refused") or 0)
        if received < max(cfg["min_received"], 1):
            return False
        rate = refused / received
        if rate <= cfg["refusal_rate"]:
            return False
        payload = {
            "event": "refusal_rate",
            "severity": "warning",
            **_context_ids(context),
            "batch_id": summary.get("batch_id"),
            "source": source or summary.get("source"),
            "source_ref": summary.get("source_ref") or summary.get("facility"),
            "kind": summary.get("kind"),
            **{k: summary.get(k) for k in COUNTS},
            "refusal_rate": round(rate, 4),
            "threshold": cfg["refusal_rate"],
            "refusals_by_rule": summary.get("refusals_by_rule") or {},
            "quality_url": _quality_url(f"/batch/{int(summary['batch_id'])}") if summary.get("batch_id") else None,
        }
        log.warning(
            "batch %s: %d of %d record(s) refused (%.0f%% > %.0f%%): alerting",
            summary.get("batch_id"),
            refused,
            received,
            rate * 100,
            cfg["refusal_rate"] * 100,
        )
        notify(payload, cfg)
        return True
    except Exception as e:  # alerting never fails an ingest
        log.warning("refusal-rate check failed: %s", type(e).__name__)
        return False
