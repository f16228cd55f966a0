"""The secserver_directory DAG end to end: dag.test() against the sandbox security server and a real PostgreSQL."""

import os
from pathlib import Path

import pytest

from sandbox.secserver import GUIDE_DIRECTORY, SESSION
from tests.conftest import airflow_conn

H22 = "000.00.00.H22"


@pytest.fixture
def dag_env(control, warehouse_dsn, monkeypatch, airflow_db):
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DB", airflow_conn(warehouse_dsn))
    return control


def run_dag(conf=None):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "secserver_directory.py"))
    dag = bag.dags["secserver_directory"]
    assert dag.schedule == "0 5 * * *" and dag.timezone.name == "Asia/Ho_Chi_Minh"
    for t in dag.tasks:
        t.retries = 0
    return dag.test(run_conf=conf)


def directory(wh):
    return dict(wh.execute("SELECT macoquan, dstcode FROM wh.secserver_directory"))


def test_daily_refresh_loads_records_history_and_survives_a_malformed_answer(dag_env, wh, capfd):
    # 1. first refresh loads the directory
    assert run_dag().state == "success"
    assert directory(wh) == {e["MACOQUAN"]: e["DSTCODE"] for e in GUIDE_DIRECTORY}

    # 2. Hà Giang's security server changes: the current mapping follows, the history keeps the old one
    dag_env.directory(
        [
            {**e, "DSTCODE": "VN:GOV:000.00.00.H22:hagiangvdxpsvc02"} if e["MACOQUAN"] == H22 else e
            for e in GUIDE_DIRECTORY
        ]
    )
    assert run_dag().state == "success"
    assert directory(wh)[H22] == "VN:GOV:000.00.00.H22:hagiangvdxpsvc02"
    assert wh.execute(
        "SELECT change, old_dstcode, dstcode FROM wh.secserver_directory_history WHERE macoquan = %s "
        "ORDER BY history_id",
        (H22,),
    ).fetchall() == [
        ("appeared", None, "VN:GOV:000.00.00.H22:hagiangvdxpsvc01"),
        ("changed", "VN:GOV:000.00.00.H22:hagiangvdxpsvc01", "VN:GOV:000.00.00.H22:hagiangvdxpsvc02"),
    ]
    before = wh.execute("SELECT * FROM wh.secserver_directory ORDER BY macoquan").fetchall()

    # 3. a malformed answer (the guide's own cut JSON) fails the run and leaves the directory as it was
    dag_env.fault(answer="broken_json", count=3)
    assert run_dag().state == "failed"
    assert wh.execute("SELECT * FROM wh.secserver_directory ORDER BY macoquan").fetchall() == before
    run_id, status, code = wh.execute(
        "SELECT run_id, status, reason_code FROM wh.secserver_directory_refresh ORDER BY refresh_id DESC"
    ).fetchone()
    assert (status, code) == ("rejected", "SS_DIR_NOT_JSON") and run_id.startswith("secserver_directory/")
    out = capfd.readouterr()
    assert "SS_DIR_NOT_JSON" in out.out + out.err  # the reason is in the task log

    # 4. a truncated answer fails too; triggered on demand with a higher max_shrink it is accepted
    dag_env.directory(GUIDE_DIRECTORY[:4])
    assert run_dag().state == "failed"
    assert len(directory(wh)) == len(GUIDE_DIRECTORY)
    assert run_dag({"max_shrink": 1}).state == "success"
    assert len(directory(wh)) == 4
    out = capfd.readouterr()
    assert SESSION not in out.out + out.err
