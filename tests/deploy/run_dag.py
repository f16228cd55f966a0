"""Run one DAG through the configured executor (dag.test(use_executor=True)); prints the run state as JSON.

python tests/deploy/run_dag.py <dag_id>      (environment: the Airflow settings of the test)
"""

import json
import os
import sys

from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
assert not bag.import_errors, bag.import_errors
run = bag.dags[sys.argv[1]].test(use_executor=True)
print("RESULT " + json.dumps({"state": str(run.state), "run_id": run.run_id}), flush=True)
