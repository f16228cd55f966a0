"""GX's metric graph, built once per runner and reused (certpipe.core.validate): the same refusals as GX's own
path, batch after batch, whatever rows fail in each."""

import random

from certpipe.core import validate
from certpipe.core.columns import normalise_columns
from certpipe.core.schema import kind_spec
from devtools.bench import records

BREAK = {"GIOI_TINH_CON": "9", "SO_CCCD_NND": "12AB", "MA_DANTOC_NND": "99", "CAN_NANG_CON": None, "MA_GCS": ""}


def _batches():
    rng = random.Random(5)
    for seed, n in ((1, 400), (2, 1), (3, 2_000), (4, 50)):
        recs = list(records(n, seed=seed))
        for rec in rng.sample(recs, max(1, n // 10)):
            field = rng.choice(list(BREAK))
            rec[field] = BREAK[field]
        yield normalise_columns(recs, kind_spec("GCS")).values


def test_cached_graph_gives_gx_own_refusals_batch_after_batch():
    batches = list(_batches())
    runner = validate.suite_runner("GCS")
    assert runner.graph_cache, "this GX has no graph-building method to cache: the re-run loses ~0.08 s per batch"
    cached = [validate.suite_reasons(values, "GCS") for values in batches]
    assert validate._graphs, "the cache was not used"
    engines = dict(validate._graph_engines)
    validate._graph_engines.clear()  # GX's own path from here
    try:
        plain = [validate.suite_reasons(values, "GCS") for values in batches]
    finally:
        validate._graph_engines.update(engines)
    assert cached == plain
    assert all(cached[i] for i in (0, 2, 3))  # every broken batch has refusals to compare
