"""Scale of the bench (`python -m devtools.bench --backfill N`): one long first load through `ingest_stream`.

The synthetic births are generated batch by batch (their time is measured and left out), so the bench holds one
batch at a time, like a real backfill. Every `segment` records it notes the rate of that segment and the process's
resident memory then: a flat rate and flat memory are what the figure shows. Beyond the generator's default
facilities' certificate numbers (2.4 M), more facilities of the same provinces are added.
"""

from __future__ import annotations

import time
from pathlib import Path

from devtools import bench

SEGMENT = 1_000_000


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def step_backfill(dsn: str, n: int, batch_size: int, segment: int = SEGMENT) -> dict:
    from certpipe.core.stream import ingest_stream

    gen = [0.0]

    def source():
        it = bench.batches(n, batch_size)
        while True:
            t = time.perf_counter()
            item = next(it, None)
            gen[0] += time.perf_counter() - t
            if item is None:
                return
            offset, chunk = item
            yield chunk, None, {"offset": offset}

    segments, done, counts = [], 0, {"stored": 0, "refused": 0}
    start = seg_start = time.perf_counter()
    seg_gen, seg_done = 0.0, 0
    for res in ingest_stream(dsn, source(), kind=bench.KIND, source=bench.SOURCE, source_ref=bench.SOURCE):
        done += res.received
        counts["stored"] += res.stored
        counts["refused"] += res.refused
        if done - seg_done >= segment or done == n:
            now = time.perf_counter()
            secs = now - seg_start - (gen[0] - seg_gen)
            segments.append({"records": done, "rate": (done - seg_done) / secs, "rss_mib": _rss_mib()})
            seg_start, seg_gen, seg_done = now, gen[0], done
    return {
        "records": done,
        "seconds": time.perf_counter() - start - gen[0],
        "segments": segments,
        "counts": counts,
    }


STEPS = {"backfill": step_backfill}


def print_segments(out: dict, settings: str) -> None:
    print(f"\nBackfill: {out['records']:,} GCS records, batches of {bench.DEFAULT_BATCH:,}; server: {settings}\n")
    print(f"{'records so far':>15} {'rec/s (segment)':>16} {'RSS MiB':>8}")
    for s in out["segments"]:
        print(f"{s['records']:>15,} {s['rate']:>16,.0f} {s['rss_mib']:>8.0f}")
    rates = [s["rate"] for s in out["segments"]]
    print(
        f"\noverall {out['records'] / out['seconds']:,.0f} rec/s; segments {min(rates):,.0f}-{max(rates):,.0f} rec/s; "
        f"peak RSS {out['peak_mib']:.0f} MiB; stored={out['counts']['stored']:,} refused={out['counts']['refused']:,}"
    )
