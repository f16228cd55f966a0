"""The HIS pull DAG end to end: dag.test() against the sandbox HIS over HTTP and a real PostgreSQL."""

import os

import httpx

from tests.dags.conftest import FACILITIES


def run_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag = bag.dags["his_pull"]
    for t in dag.tasks:
        t.retries = 0
    return dag.test()


def control(url, path):
    return httpx.get(f"{url}/_control/his/{path}").json()


def test_his_pull_loads_every_hospital_and_acknowledges_every_record(his_env, wh):
    run = run_dag()
    assert run.state == "success"
    for f in FACILITIES:
        expected = control(his_env, f"{f}/expected")  # id -> rule code, for the deliberately bad records
        acks = control(his_env, f"{f}/acks")
        latest = acks["latest"] if isinstance(acks, dict) and "latest" in acks else acks
        assert latest, f"no acknowledgement reached hospital {f}"
        feed = {
            e["id"]
            for kind in ("GCS", "GBT")
            for e in httpx.get(
                f"{his_env}/his/{f}/api/v1/certificates",
                auth=(f, f"sandbox-{f}"),
                params={"kind": kind, "page_size": 1000},
            ).json()["items"]
        }
        assert set(latest) == feed, f"hospital {f}: not every record was acknowledged"
        refused = {rid for rid, a in latest.items() if a["status"] == "REFUSED"}
        assert refused == set(expected), f"hospital {f}: refused {len(refused)} vs expected {len(expected)}"
        for a in latest.values():
            if a["status"] == "REFUSED":
                assert a["errors"] and all(e["code"] and e["message"] and e["field"] for e in a["errors"])
    stored = wh.execute("SELECT count(*) FROM wh.certificate").fetchone()[0]
    refused = wh.execute("SELECT count(*) FROM wh.batch_record WHERE outcome = 'refused'").fetchone()[0]
    assert stored > 0 and refused > 0
    marks = wh.execute("SELECT count(*) FROM wh.source_watermark WHERE source = 'his'").fetchone()[0]
    assert marks == len(FACILITIES) * 2

    # the next run asks only for recent changes (overlap window): nothing new is stored
    before = wh.execute("SELECT count(*), max(updated_at) FROM wh.certificate").fetchone()
    assert run_dag().state == "success"
    assert wh.execute("SELECT count(*), max(updated_at) FROM wh.certificate").fetchone() == before


def test_one_hospital_outage_does_not_stop_the_others(his_env, wh):
    httpx.post(f"{his_env}/_control/his/79034/faults", json={"status": 503, "count": 1000}).raise_for_status()
    run = run_dag()
    assert run.state == "failed"
    loaded = {f for (f,) in wh.execute("SELECT DISTINCT facility_code FROM wh.certificate")}
    assert loaded == {"01020", "96025"}
    assert wh.execute("SELECT count(*) FROM wh.source_watermark WHERE source_ref = '79034'").fetchone()[0] == 0
    httpx.post(f"{his_env}/_control/his/79034/faults", json={"status": 503, "count": 0})


def test_mapped_tasks_are_labelled_by_facility(his_env, wh):
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    run = run_dag()
    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id="his_pull", run_id=run.run_id).all()
        labels = {(ti.task_id.rsplit(".", 1)[-1], ti.rendered_map_index) for ti in tis if ti.map_index >= 0}
    expected = {
        (f"{step}_{kind}", f)
        for step in ("extract", "ingest", "acknowledge")
        for kind in ("gcs", "gbt")
        for f in FACILITIES
    }
    assert labels == expected
