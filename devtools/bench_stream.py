"""The backfill stream alone, for measuring one lever back to back: a first load of N generated birth
certificates, then the identical re-run, through `ingest_stream` on a throw-away embedded PostgreSQL.

    python -m devtools.bench_stream [--records 300000]

Prints each pass's wall-clock, the re-run's ratio and the per-batch prepare/apply split. The full bench
(`./dev bench`) is where the targets are judged; this is the quick A/B harness behind the README's lever figures.
"""

from __future__ import annotations

import argparse
import os
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devtools.bench_stream")
    ap.add_argument("--records", type=int, default=300_000)
    a = ap.parse_args(argv)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import logging

    from certpipe.core import validate
    from certpipe.core.stream import ingest_stream
    from devtools import bench

    logging.disable(logging.INFO)
    with bench.throwaway_warehouse("bench_stream") as (dsn, _):
        batches = [(chunk, None, {"offset": off}) for off, chunk in bench.batches(a.records, bench.DEFAULT_BATCH)]
        validate.suite_runner(bench.KIND)  # GX's import and context, outside the timings
        took = {}
        for label in ("first load", "identical re-run"):
            t = time.perf_counter()
            split = [
                (r.timings["prepare_s"], r.timings["apply_s"])
                for r in ingest_stream(
                    dsn, iter(batches), kind=bench.KIND, source=bench.SOURCE, source_ref=bench.SOURCE
                )
            ]
            took[label] = time.perf_counter() - t
            per = len(split)
            print(
                f"{label}: {took[label]:.2f} s, per batch prepare {sum(s[0] for s in split) / per:.2f} s, "
                f"apply {sum(s[1] for s in split) / per:.2f} s"
            )
        print(f"re-run: {took['first load'] / took['identical re-run']:.2f} x the first load")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
