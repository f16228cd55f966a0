"""Assets and lineage on real DAG runs: every ingesting task emits an asset event with its counts, the lineage graph
runs sources → warehouse → DHIS2, and the DHIS2 matching DAG follows new death notices."""

import os
import subprocess
import sys

from tests.dags.test_his_pull import run_dag


def reserialize():
    """Every DAG of dags/ in the metadata DB, as the dag-processor would put it."""
    subprocess.run([sys.executable, "-m", "airflow", "dags", "reserialize"], check=True, capture_output=True)


def test_his_ingest_tasks_emit_asset_events_with_their_counts(his_env, wh):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    run = run_dag()
    assert run.state == "success"
    with create_session() as session:
        events = (
            session.query(AssetModel.name, AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .filter(AssetEvent.source_run_id == run.run_id)
            .all()
        )
        got = {
            (name, e.source_task_id, e.source_map_index): dict(e.extra) for name, e in events if name.startswith("w")
        }
    batches = wh.execute(
        "SELECT batch_id, source_ref, kind, received, stored, updated, unchanged, refused, refusals_by_rule "
        "FROM wh.ingest_batch WHERE run_id = %s",
        (run.run_id,),
    ).fetchall()
    assert len(batches) == 6 and len(got) == 6  # 3 hospitals x 2 kinds, one event per mapped ingest task
    by_batch = {tuple(extra["batch_ids"]): (key, extra) for key, extra in got.items()}
    for batch_id, ref, kind, received, stored, updated, unchanged, refused, rules in batches:
        (name, task_id, map_index), extra = by_batch[(batch_id,)]
        assert name == {"GCS": "warehouse_birth_certificates", "GBT": "warehouse_death_notices"}[kind]
        assert task_id == f"hospital.ingest_{kind.lower()}" and map_index >= 0
        assert extra["source_refs"] == [ref] and extra["sources"] == ["his"]
        assert (extra["received"], extra["stored"], extra["updated"], extra["unchanged"], extra["refused"]) == (
            received,
            stored,
            updated,
            unchanged,
            refused,
        )
        assert extra["refusals_by_rule"] == rules
    assert sum(e["refused"] for e in got.values()) > 0


def test_lineage_graph_runs_from_sources_through_the_warehouse_to_dhis2(airflow_db):
    from airflow.api_fastapi.core_api.services.ui.dependencies import get_data_dependencies
    from airflow.models.asset import AssetModel
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session

    reserialize()
    with create_session() as session:
        ids = {a.name: a.id for a in session.query(AssetModel).all()}
        graph = get_data_dependencies(ids["warehouse_death_notices"], session)
        schedule = SerializedDagModel.get_dag("dhis2_match", session=session).timetable.asset_condition
    labels = {n["id"]: n["label"] for n in graph["nodes"]}
    edges = {(labels[e["source_id"]], labels[e["target_id"]]) for e in graph["edges"]}
    # sources -> ingesting tasks -> the warehouse's death notices -> the DHIS2 push -> the A6 register
    for source, task in (
        ("source_his_feeds", "his_pull.hospital.ingest_gbt"),
        ("source_bhxh_database", "bhxh_pull.province.ingest_gbt"),
        ("source_excel_inbox", "excel_inbox.process"),
    ):
        assert (source, task) in edges, (source, task)
        assert (task, "warehouse_death_notices") in edges
    assert ("warehouse_death_notices", "dhis2_cod_sync.push") in edges
    assert ("dhis2_cod_sync.push", "dhis2_a6_register") in edges
    assert ("dhis2_a6_register", "dhis2_mortality_daily.pull") in edges
    # the matching DAG runs when death notices reach the warehouse
    assert "warehouse_death_notices" in str(schedule)
    assert os.environ["AIRFLOW__CORE__DAGS_FOLDER"].endswith("dags")
