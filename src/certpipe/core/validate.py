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

    def run(self, df) -> dict[int, list[dict]]:
        batch = self.batch_definition.get_batch(batch_parameters={"dataframe": df})
        result = batch.validate(
            self.suite,
            result_format={
                "result_format": "COMPLETE",
                "return_unexpected_index_query": False,
                "partial_unexpected_count": 0,
            },
        )
        out: dict[int, list[dict]] = {}
        for r in result.results:
            cfg = r.expectation_config
            if r.success:
                continue
            if r.exception_info and r.exception_info.get("raised_exception"):
                raise RuntimeError(
                    f"expectation {cfg.type} on {cfg.kwargs.get('column')} failed to run: "
                    f"{r.exception_info.get('exception_message')}"
                )
            rule = (cfg.meta or {}).get("rule") or "CODE_FORMAT"
            column = cfg.kwargs.get("column")
            for idx in r.result.get("unexpected_index_list") or ():
                out.setdefault(int(idx), []).append(reason(column, rule))
        return out


@cache
def suite_runner(kind: str) -> SuiteRunner:
    from certpipe.core.schema import kind_spec

    return SuiteRunner(kind_spec(kind))


def to_frame(rows: list[dict], fields) -> object:
    """A pandas frame of the given fields (FieldSpec) of the rows. Integers go in as float64 (missing = NaN),
    so GX compares them vectorised; everything else as Python objects."""
    import numpy as np
    import pandas as pd

    return pd.DataFrame(
        {f.name: np.array([r.get(f.name) for r in rows], dtype=float if f.type == "int" else object) for f in fields}
    )


def validate(rows: list[dict], spec: KindSpec, prior: list[list[dict]] | None = None) -> list[list[dict]]:
    """Reasons per row: normalisation reasons (prior), then the GX suite, then Vietnam's rules."""
    from certpipe.core import rules

    reasons = [list(p) for p in prior] if prior else [[] for _ in rows]
    if not rows:
        return reasons
    for idx, rs in (runner := suite_runner(spec.kind)).run(to_frame(rows, runner.columns)).items():
        failed = {r["field"] for r in reasons[idx]}  # a field normalisation refused is not reported twice
        reasons[idx].extend(r for r in rs if r["field"] not in failed)
    check = rules.checker(spec.kind)
    for i, row in enumerate(rows):
        if row:
            reasons[i].extend(check(row))
    for rs in reasons:  # one reason per (field, code)
        if len(rs) > 1:
            seen, uniq = set(), []
            for r in rs:
                k = (r["field"], r["code"])
                if k not in seen:
                    seen.add(k)
                    uniq.append(r)
            rs[:] = uniq
    return reasons
