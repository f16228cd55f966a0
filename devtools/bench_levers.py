"""What each lever of the columnar ingestion core buys: CPU seconds per 50,000 records, old way against new way,
measured back to back in one process on the same batches (so the machine's other load touches both alike).

    python -m devtools.bench_levers [--batches 3]

The old way is the row-by-row path kept for the differential test (tests/core/reference_ingest.py). Only the
Python side is measured here; the database side of the levers (one value per look-up instead of 50,000 array
elements, no per-record touch of re-sent provenance, COPY as CSV) shows in the bench's CPU per record of
PostgreSQL. The first batch warms caches and is not counted.
"""

from __future__ import annotations

import argparse
import os
import time
from itertools import islice

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def _cpu(fn, *args):
    t = time.process_time()
    out = fn(*args)
    return time.process_time() - t, out


def measure(batch) -> dict[str, tuple[float, float]]:
    """(old, new) CPU seconds per lever for one batch."""

    from certpipe.core import ingest, keys
    from certpipe.core.columns import normalise_columns
    from certpipe.core.normalize import normalise
    from certpipe.core.schema import kind_spec
    from certpipe.core.validate import rule_reasons, suite_reasons, suite_runner
    from tests.core import reference_ingest as ref

    spec, runner = kind_spec("GCS"), suite_runner("GCS")
    out = {}
    old, (rows, _why) = _cpu(normalise, batch, spec)
    new, cols = _cpu(normalise_columns, batch, spec)
    old_json, _docs = _cpu(lambda: [keys.content_hash(keys.canonical_json(r)) for r in rows])
    # the columnar way renders and hashes the canonical JSON (and the jsonb-ordered record) while normalising
    out["normalise + canonical JSON + content hash"] = (old + old_json, new)
    out["GX suite (frame + validation)"] = (
        _cpu(lambda: runner.run(ref.to_frame(rows, runner.columns)))[0],
        _cpu(suite_reasons, cols.values, "GCS")[0],
    )
    check = ref.checker("GCS")
    out["Vietnam's rules"] = (
        _cpu(lambda: [check(r) for r in rows if r])[0],
        _cpu(rule_reasons, cols.values, cols.empty, "GCS")[0],
    )
    raws = [ingest.raw_hash(r) for r in batch]
    out["whole prepare (normalise, validate, hash, de-duplicate)"] = (
        _cpu(ref._prepare, "GCS", "b", "b", batch, None, None, raws, {})[0],
        _cpu(ingest._prepare, "GCS", "b", "b", batch, None, None, raws, {})[0],
    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devtools.bench_levers", description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=3, help="batches of 50,000 (the first is a warm-up)")
    a = ap.parse_args(argv)
    import logging

    logging.disable(logging.INFO)
    from certpipe.core.ingest import _gc_paused
    from certpipe.core.validate import suite_runner
    from devtools import bench

    suite_runner("GCS")
    it = bench.records(a.batches * bench.DEFAULT_BATCH)
    totals: dict[str, list[float]] = {}
    for i in range(a.batches):
        batch = list(islice(it, bench.DEFAULT_BATCH))
        with _gc_paused():
            got = measure(batch)
        if i:
            for k, (old, new) in got.items():
                t = totals.setdefault(k, [0.0, 0.0])
                t[0] += old
                t[1] += new
    k = a.batches - 1
    print(f"\nCPU seconds per {bench.DEFAULT_BATCH:,} records (mean of {k} batches), load {os.getloadavg()[0]:.2f}\n")
    print(f"{'lever':<58} {'row by row':>10} {'columnar':>9} {'gain':>6}")
    for name, (old, new) in totals.items():
        print(f"{name:<58} {old / k:>10.2f} {new / k:>9.2f} {old / new:>5.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
