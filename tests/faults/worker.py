"""A task's process for the fault suite: runs one step of a DAG's task code, prints its result as JSON.

python -m tests.faults.worker <step> <json args>      (environment: the Airflow connections of the test)
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    step, args = sys.argv[1], json.loads(sys.argv[2])
    if step.startswith("his-"):
        from certpipe.sources.his import pull

        if step == "his-extract":
            out = pull.extract(args["hospital"], args["kind"], args["dsn"])
        elif step == "his-ingest":
            out = pull.ingest_landed(args["batch"], args["dsn"])
        else:
            out = pull.acknowledge(args["hospital"], args["batch"], args["dsn"])
    elif step == "excel":
        from certpipe.sources.excel import inbox

        out = inbox.process(inbox.inbox_root(args["url"]), args["dsn"], args["file_id"], chunk_rows=args["chunk"])
    elif step == "dhis2-push":
        import datetime as dt

        from certpipe.sources.dhis2.metadata import settings_from
        from certpipe.sources.dhis2.push import push_registrations

        out = push_registrations(
            dt.datetime.fromisoformat(args["start"]),
            dt.datetime.fromisoformat(args["end"]),
            args["dsn"],
            run_id="faults",
            settings=settings_from(args["settings"]),
        )
    else:
        raise SystemExit(f"unknown step {step}")
    print("RESULT " + json.dumps(out, default=str), flush=True)


def result(stdout: str) -> dict:
    line = next(x for x in stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


if __name__ == "__main__":
    main()
