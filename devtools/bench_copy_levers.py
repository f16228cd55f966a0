"""The PostgreSQL side of the first load's COPY of new certificates: server CPU seconds per 50,000 records, before
and after each lever, back to back in one server on the same batch (each COPY rolled back).

    python -m devtools.bench_copy_levers [--reps 3]

Levers: the record sent with its keys in jsonb's order (shorter first, then bytewise: the parser's sort of the keys
then finds them sorted) instead of the canonical JSON's bytewise order; CSV with a tab between fields and \\x01 as
the quote instead of commas and double quotes (the records' many double quotes need no doubling); the COPY
written in slices of 5,000 rows (the client writes one while the server parses the other: a wall-clock gain,
shown as the client's CPU not being on the server's path, so not measured here). The server's CPU is that of
the connection's backend process, read from /proc (the embedded server runs on this machine).
"""

from __future__ import annotations

import argparse
import io
import os
import time
from pathlib import Path

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

OLD_CSV = " (FORMAT csv)"


def _backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _csv(frame, new_dialect: bool) -> bytes:
    buf = io.BytesIO()
    if new_dialect:
        frame.write_csv(buf, include_header=False, quote_style="necessary", separator="\t", quote_char="\x01")
    else:
        frame.write_csv(buf, include_header=False, quote_style="necessary")
    return buf.getvalue()


def variants(batch: list[dict]) -> dict[str, tuple[bytes, str]]:
    """COPY data of one batch's new certificates: (CSV bytes, COPY options) per variant."""
    import polars as pl

    from certpipe.core import ingest, keys

    p = ingest.prepare_batch(None, kind="GCS", source="bench", source_ref="bench", records=batch)
    canonical = pl.Series([keys.canonical_json(r).decode() for r in _stored_records(p)], dtype=pl.String)
    rows = p.rows.with_columns(pl.Series("cert_id", range(1, len(p.rows) + 1), dtype=pl.Int64))

    def frame(doc: pl.Series):
        return rows.with_columns(doc=doc).select(
            "cert_id",
            pl.lit("GCS").alias("kind"),
            "key",
            "facility",
            "issued",
            "person",
            "event",
            "doc",
            ingest._hex("hash").alias("hash"),
            pl.lit(1).alias("first"),
            pl.lit(1).alias("last"),
            pl.lit("bench").alias("source"),
        )

    return {
        "before: canonical JSON, comma/double-quote CSV": (_csv(frame(canonical), False), OLD_CSV),
        "keys in jsonb's order": (_csv(frame(rows["doc"]), False), OLD_CSV),
        "keys in jsonb's order + tab/\\x01 CSV (now)": (_csv(frame(rows["doc"]), True), ingest._CSV_OPTIONS),
    }


def _stored_records(p) -> list[dict]:
    import json

    return [json.loads(d) for d in p.rows["doc"].to_list()]


def measure(dsn: str, data: dict[str, tuple[bytes, str]], reps: int) -> dict[str, list[float]]:
    import psycopg

    from certpipe.core import ingest

    out: dict[str, list[float]] = {k: [] for k in data}
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO wh.ingest_batch (batch_id, source, source_ref, kind) VALUES (1, 'bench', 'bench', 'GCS')"
        )
        conn.commit()
        pid = conn.info.backend_pid
        for _ in range(reps):
            for name, (csv, options) in data.items():
                with conn.transaction(force_rollback=True):
                    t = _backend_cpu(pid)
                    with conn.cursor().copy(ingest.CERT_COPY + options) as copy:
                        copy.write(csv)
                    out[name].append(_backend_cpu(pid) - t)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devtools.bench_copy_levers", description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="COPYs per variant (the minimum is printed)")
    a = ap.parse_args(argv)
    import logging

    from devtools import bench

    logging.disable(logging.INFO)
    with bench.throwaway_warehouse("copy_levers") as (dsn, settings):
        batch = list(bench.records(bench.DEFAULT_BATCH))
        t = time.perf_counter()
        got = measure(dsn, variants(batch), a.reps)
    n = bench.DEFAULT_BATCH
    print(
        f"\nServer CPU of the COPY of {n:,} new certificates into wh.certificate (minimum of {a.reps}), "
        f"server {settings}, load {os.getloadavg()[0]:.2f}, {time.perf_counter() - t:.0f} s\n"
    )
    base = min(next(iter(got.values())))
    print(f"{'variant':<52} {'CPU s':>6} {'us/record':>9} {'gain':>6}")
    for name, cpus in got.items():
        best = min(cpus)
        print(f"{name:<52} {best:>6.2f} {best / n * 1e6:>9.1f} {base / best:>5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
