"""Start an Airflow component with the task libraries already imported.

LocalExecutor workers are forked from the scheduler and every task process is forked from a worker, so
importing great-expectations and pandas here once saves each task their import (10-20 s on a small machine).
Usage: python -m devtools.airflow_preload scheduler
"""

import sys


def main() -> None:
    import great_expectations  # noqa: F401
    import pandas  # noqa: F401
    from airflow.__main__ import main as airflow_main

    import certpipe.core.ingest  # noqa: F401

    sys.argv = ["airflow", *sys.argv[1:]]
    airflow_main()


if __name__ == "__main__":
    main()
