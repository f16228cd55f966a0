"""DAG integrity: every DAG imports cleanly, follows the house rules, and its file imports fast."""

import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.dags, "no DAG found"


def test_house_rules(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id}: no tags"
        assert dag.doc_md, f"{dag_id}: no doc_md"
        assert dag.start_date.tzinfo is not None and dag.timezone.name == "Asia/Ho_Chi_Minh", dag_id
        for t in dag.tasks:
            assert t.owner and t.owner != "airflow", f"{dag_id}.{t.task_id}: no owner"
            assert t.retries >= 1, f"{dag_id}.{t.task_id}: no retries"


HEAVY = ("great_expectations", "pandas", "polars", "pyarrow", "psycopg", "httpx", "pydantic", "openpyxl", "dlt")


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_files_keep_heavy_libraries_for_their_tasks(path):
    # The DAG processor parses every file often: what the tasks need loads inside them. (How long a file takes to
    # import is a figure of `./dev bench`, not a timed test.)
    code = (
        "import sys, runpy; import airflow.sdk, pendulum; "
        f"before = set(sys.modules); runpy.run_path({str(path)!r}); "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules and m not in before))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip().splitlines()[-1] == "[]", f"{path.name} imports {out.strip()} at top level"
