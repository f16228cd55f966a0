"""Batches ↔ Airflow DAG runs and task instances, from the metadata database (runs in the api-server).

A batch records its run id only. The task instance that ingested it is found through the asset event the task
emitted (`certpipe.lineage.emit`: `extra.batch_ids`, with the event's source dag/run/task/map index); without one
(a task that failed, a batch made before assets), the run is found by run id among the DAGs of the batch's source.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from certpipe.lineage import CERTIFICATE_ASSET_NAMES

# Which DAGs make batches of which source (wh.ingest_batch.source)
SOURCE_DAGS = {"his": ("his_pull",), "bhxh": ("bhxh_pull", "bhxh_lookup"), "excel": ("excel_inbox",)}
DAG_SOURCES = {dag: (src,) for src, dags in SOURCE_DAGS.items() for dag in dags}
_FILE_LABEL = re.compile(r"file (\d+)")


def ui_root() -> str:
    """Path of the Airflow UI under the server (from `[api] base_url`), '' at the root."""
    from urllib.parse import urlsplit

    from certpipe.quality import base_url

    return urlsplit(base_url()).path.rstrip("/")


def run_href(dag_id: str, run_id: str) -> str:
    return f"{ui_root()}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def ti_href(dag_id: str, run_id: str, task_id: str, map_index: int | None) -> str:
    mapped = f"/mapped/{map_index}" if map_index is not None and map_index >= 0 else ""
    return f"{run_href(dag_id, run_id)}/tasks/{quote(task_id, safe='')}{mapped}"


def _events(session: Session, since: dt.datetime, **where):
    from airflow.models.asset import AssetEvent, AssetModel

    q = (
        select(
            AssetEvent.source_dag_id,
            AssetEvent.source_run_id,
            AssetEvent.source_task_id,
            AssetEvent.source_map_index,
            AssetEvent.extra,
        )
        .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        .where(AssetModel.name.in_(CERTIFICATE_ASSET_NAMES), AssetEvent.timestamp >= since)
    )
    for col, v in where.items():
        q = q.where(getattr(AssetEvent, col) == v)
    return session.execute(q.order_by(AssetEvent.timestamp).limit(1000)).all()


def batch_task(session: Session, batch: dict) -> dict | None:
    """Where a batch came from in Airflow: {"dag_id", "run_id", "run_href", and when known "task_id",
    "map_index", "ti_href"}; None when no run of its source's DAGs has its run id."""
    from airflow.models.dagrun import DagRun

    run_id = batch.get("run_id")
    if not run_id:
        return None
    since = batch["created_at"] - dt.timedelta(minutes=5)
    for dag_id, r_id, task_id, map_index, extra in _events(session, since, source_run_id=run_id):
        if batch["batch_id"] in ((extra or {}).get("batch_ids") or ()):
            return {
                "dag_id": dag_id,
                "run_id": r_id,
                "task_id": task_id,
                "map_index": map_index,
                "run_href": run_href(dag_id, r_id),
                "ti_href": ti_href(dag_id, r_id, task_id, map_index),
            }
    dags = SOURCE_DAGS.get(batch["source"], ())
    dag_id = session.scalar(select(DagRun.dag_id).where(DagRun.run_id == run_id, DagRun.dag_id.in_(dags)).limit(1))
    if dag_id is None:
        return None
    return {"dag_id": dag_id, "run_id": run_id, "run_href": run_href(dag_id, run_id)}


def run_context(session: Session, dag_id: str, run_id: str, task_id: str | None, map_index: int | None) -> dict:
    """What the DAG-run / task-instance views need from Airflow: the run's start, the batch ids the run's (or
    the task instance's) asset events name, and the task instance's label (rendered map index)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance

    run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    out: dict = {"found": run is not None, "batch_ids": None, "label": None, "file_id": None}
    if run is None:
        return out
    since = (run.queued_at or run.start_date or run.logical_date or run.run_after) - dt.timedelta(minutes=5)
    where: dict[str, str | int] = {"source_dag_id": dag_id, "source_run_id": run_id}
    if task_id:
        where["source_task_id"] = task_id
        if map_index is not None:
            where["source_map_index"] = map_index
    events = _events(session, since, **where)
    if events:
        out["batch_ids"] = sorted({int(b) for *_, extra in events for b in (extra or {}).get("batch_ids") or ()})
    if task_id:
        ti = session.scalar(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.run_id == run_id,
                TaskInstance.task_id == task_id,
                TaskInstance.map_index == (map_index if map_index is not None else -1),
            )
        )
        label = getattr(ti, "rendered_map_index", None) if ti else None
        out["label"] = label
        if label and (m := _FILE_LABEL.fullmatch(label)):
            out["file_id"] = int(m.group(1))
    return out
