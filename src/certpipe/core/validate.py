"""Validation: the great-expectations suite of the record kind, then Vietnam's cross-field rules.

Returns, for every row, the list of refusal reasons (field, stable rule code, Vietnamese message).
A row with no reason is valid. Reasons never carry values, so they are safe to log and return.
"""

from __future__ import annotations

import json
import logging
import os
from functools import cache

from certpipe.core.schema import KindSpec, reason, schemas_dir

log = logging.getLogger(__name__)


# GX builds the metric-dependency graph of every expectation again on every validation: about 0.08 s per call
# for the birth suite, whatever the number of rows (half of validating the few hundred records a re-run
# re-validates). Our validations differ only in their data (the same suite, one batch id per runner), so the graph
# is built once per runner's execution engine and reused; other uses of GX are left to GX's own code.
_GRAPH_METHOD = "_generate_metric_dependency_subgraphs_for_each_expectation_configuration"
_graph_engines: dict[int, object] = {}  # id -> engine (held, so that the id stays its own)
_graphs: dict[tuple, tuple] = {}


def _install_graph_cache() -> bool:
    """Wrap GX's graph building with a cache for the runners' engines; False if this GX has no such method."""
    from great_expectations.validator.validator import Validator

    build = getattr(Validator, _GRAPH_METHOD, None)
    if build is None:
        return False
    if getattr(build, "certpipe_cached", False):
        return True

    def cached(
        self, expectation_configurations, processed_configurations, catch_exceptions, runtime_configuration=None
    ):
        engine = self._execution_engine
        if id(engine) not in _graph_engines:
            return build(
                self, expectation_configurations, processed_configurations, catch_exceptions, runtime_configuration
            )
        key = (
            id(engine),
            self.active_batch_id,
            repr(runtime_configuration),
            tuple(c.id or repr(c) for c in expectation_configurations),
        )
        hit = _graphs.get(key)
        if hit is None:
            graphs, evrs, processed = build(
                self, expectation_configurations, [], catch_exceptions, runtime_configuration
            )
            if evrs:  # an expectation failed to build its graph: not cached, reported as GX reports it
                processed_configurations.extend(processed)
                return graphs, evrs, processed_configurations
            hit = _graphs[key] = (graphs, processed)
        processed_configurations.extend(hit[1])
        return list(hit[0]), [], processed_configurations

    cached.certpipe_cached = True  # type: ignore[attr-defined]
    setattr(Validator, _GRAPH_METHOD, cached)
    return True


@cache
def _suite_json(kind: str) -> dict:
    return json.loads((schemas_dir() / "expectations" / f"{kind.lower()}.json").read_text("utf-8"))


class SuiteRunner:
    """One ephemeral GX context per process and kind; the suite is loaded from its JSON file."""

    def __init__(self, spec: KindSpec):
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO lines flood task logs
        import great_expectations as gx  # heavy: imported only when validation runs

        self.spec = spec
        raw = _suite_json(spec.kind)
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx = gx.get_context(mode="ephemeral")
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)  # no progress bars in task logs
        suite = gx.ExpectationSuite(name=raw["name"], expectations=raw["expectations"], meta=raw.get("meta"))
        if len(suite.expectations) != len(raw["expectations"]):  # GX drops invalid expectations with a log line
            raise ValueError(
                f"suite {raw['name']}: {len(raw['expectations']) - len(suite.expectations)} "
                "expectation(s) could not be loaded"
            )
        self.suite = ctx.suites.add(suite)
        asset = ctx.data_sources.add_pandas(name=f"certpipe_{spec.kind}").add_dataframe_asset(name="batch")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("whole")
        # Only the columns the suite names go into the frame GX sees.
        names = {e["kwargs"]["column"] for e in raw["expectations"]}
        self.columns = [f for f in spec.fields if f.name in names]
        # GX fingerprints every in-memory frame (hashing all of it) for batch markers we never use; each batch is
        # validated once. The threshold is the frame size above which GX skips that; 0 = always skip.
        from great_expectations.execution_engine import pandas_execution_engine

        pandas_execution_engine.HASH_THRESHOLD = 0
        self.graph_cache = _install_graph_cache()

    def failures(self, df) -> list[tuple[str | None, str, list[int]]]:
        """(column, rule, indices of the rows that failed) per failed expectation, in the suite's order."""
        batch = self.batch_definition.get_batch(batch_parameters={"dataframe": df})
        if self.graph_cache:
            engine = batch.data.execution_engine
            _graph_engines.setdefault(id(engine), engine)
        result = batch.validate(
            self.suite,
            result_format={
                "result_format": "COMPLETE",
                "return_unexpected_index_query": False,
                "partial_unexpected_count": 0,
            },
        )
        out: list[tuple[str | None, str, list[int]]] = []
        for r in result.results:
            cfg = r.expectation_config
            if r.success:
                continue
            if cfg is None:
                raise RuntimeError("an expectation result came back without its configuration")
            if r.exception_info and r.exception_info.get("raised_exception"):
                raise RuntimeError(
                    f"expectation {cfg.type} on {cfg.kwargs.get('column')} failed to run: "
                    f"{r.exception_info.get('exception_message')}"
                )
            rule = (cfg.meta or {}).get("rule") or "CODE_FORMAT"
            out.append((cfg.kwargs.get("column"), rule, [int(i) for i in r.result.get("unexpected_index_list") or ()]))
        return out

    def run(self, df) -> dict[int, list[dict]]:
        """Reasons by row index of the frame."""
        out: dict[int, list[dict]] = {}
        for column, rule, rows in self.failures(df):
            for idx in rows:
                out.setdefault(idx, []).append(reason(column, rule))
        return out


@cache
def suite_runner(kind: str) -> SuiteRunner:
    from certpipe.core.schema import kind_spec

    return SuiteRunner(kind_spec(kind))


def _full_frame(values, runner: SuiteRunner):
    """A pandas frame of the suite's columns. Integers go in as float64 (missing = NaN), so GX compares them
    vectorised; everything else as Python objects (None for missing)."""
    import numpy as np
    import pandas as pd

    return pd.DataFrame(
        {
            f.name: values[f.name].to_numpy() if f.type == "int" else np.array(values[f.name].to_list(), dtype=object)
            for f in runner.columns
        }
    )


def suite_reasons(values, kind: str) -> dict[int, list[dict]]:
    """The GX suite of the kind on a normalised batch (certpipe.core.columns), once: reasons by row, in the
    suite's order."""
    runner = suite_runner(kind)
    out: dict[int, list[dict]] = {}
    if not len(values):
        return out
    for column, rule, rows in runner.failures(_full_frame(values, runner)):
        why = reason(column, rule)
        for i in rows:
            out.setdefault(i, []).append(why)
    return out


def rule_reasons(values, empty, kind: str) -> dict[int, list[dict]]:
    """Vietnam's rules (certpipe.core.rules) on a normalised batch: each rule group once per distinct combination
    of its fields; reasons by row, in the groups' order. Rows with no field at all are not checked."""
    import polars as pl

    from certpipe.core import rules

    now = rules.now_local()
    found_by_row: dict[int, list[list[dict]]] = {}  # row -> the reasons of each of its failed groups
    if not len(values):
        return {}
    checked = values.with_row_index("_row").filter(~empty)
    for check in rules.checks(kind):
        cols = [pl.col(f) if f in values.columns else pl.lit(None, pl.String).alias(f) for f in check.fields]
        if check.era is not None:  # the era of the first present of the last two fields
            on = pl.coalesce(cols[check.era], cols[check.era + 1])
            cols = [*cols[: check.era], on.alias("_on")]
        keys = checked.select(pl.col("_row"), *cols)
        if check.era is not None:
            keys = keys.with_columns(_map_distinct(keys["_on"], rules.era_of).alias("_on"))
        names = keys.columns[1:]
        failing, found = [], []
        for combo in keys.select(names).unique().iter_rows():
            got = check.fn(now, *combo)
            if got:
                failing.append(combo)
                found.append(got)
        if not failing:
            continue
        table = pl.DataFrame(failing, schema=keys.select(names).schema, orient="row").with_row_index("_found")
        hits = keys.join(table, on=names, how="inner", nulls_equal=True).select("_row", "_found")
        for row, j in hits.iter_rows():
            found_by_row.setdefault(row, []).append(found[j])
    return {row: [r for rs in lists for r in rs] for row, lists in found_by_row.items()}


def _map_distinct(s, fn):
    import polars as pl

    distinct = s.drop_nulls().unique().to_list()
    return s.replace_strict(distinct, [fn(v) for v in distinct], default=None, return_dtype=pl.String)


def validate_columns(cols, kind: str) -> None:
    """Add the GX suite's and Vietnam's rules' reasons to a normalised batch's reasons (certpipe.core.columns):
    normalisation first, then the suite (not for a field normalisation refused), then the rules; one reason per
    (field, code)."""
    reasons = cols.reasons
    for i, rs in suite_reasons(cols.values, kind).items():
        mine = reasons.setdefault(i, [])
        failed = {r["field"] for r in mine}  # a field normalisation refused is not reported twice
        mine.extend(r for r in rs if r["field"] not in failed)
    for i, rs in rule_reasons(cols.values, cols.empty, kind).items():
        reasons.setdefault(i, []).extend(rs)
    for i in [i for i, rs in reasons.items() if not rs]:
        del reasons[i]
    for rs in reasons.values():  # one reason per (field, code)
        if len(rs) > 1:
            seen, uniq = set(), []
            for r in rs:
                k = (r["field"], r["code"])
                if k not in seen:
                    seen.add(k)
                    uniq.append(r)
            rs[:] = uniq
