"""Columnar normalisation: a batch of raw records becomes one column per canonical field.

Each column's distinct values are normalised once, by the same per-value functions and rules as
normalise() (certpipe.core.normalize), and the outcomes are mapped back onto the rows in polars. Alongside
each normalised value comes its fragment of the record's canonical JSON (`"FIELD":value`, encoded by the same
encoder), so a record's canonical JSON is the concatenation of its fragments in key order: byte for byte what
canonical_json() of the row-wise record gives. Columns whose values are not all text (numbers and dates from a
spreadsheet) are normalised value by value in Python; records whose keys name one field twice (an alias next to
its official name) go through normalise() itself.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import msgspec
import polars as pl

from certpipe.core.keys import content_hash
from certpipe.core.normalize import _BLANK, _TOO_LONG, _Fail, _memo_miss, _outcome, _steps, norm_text, normalise
from certpipe.core.schema import KindSpec, reason

_ENCODE = msgspec.json.Encoder(order="sorted", enc_hook=str).encode  # the encoder of canonical_json()
_ABSENT = _BLANK  # a value that leaves its field out of the record


def value_outcome(fn, width: int | None, memo: dict | None, value):
    """What normalise() makes of one value of a field: the canonical value, a _Fail (refusal code) or _ABSENT."""
    if memo is not None and value.__class__ is str:
        got = memo.get(value)
        return got if got is not None else _memo_miss(memo, fn, value, width)
    if value is None or value == "" or (value.__class__ is float and value != value):  # NaN: empty
        return _ABSENT
    if fn is norm_text and value.__class__ is str:
        got = norm_text(value)
        if not got:
            return _ABSENT
        return _TOO_LONG if width and len(got) > width else got
    got = _outcome(fn, value, width)
    return _ABSENT if got == "" else got


@dataclass
class Columns:
    """A normalised batch: `values` (one column per canonical field; integers as Float64, as GX sees them),
    `hashes` (the content hash of each row's canonical JSON), `stored` (the record with its keys in jsonb's own
    order: what is sent to PostgreSQL), `reasons` (row -> normalisation refusals, rows with none left out) and
    `empty` (rows with no field at all: nothing to check, no certificate key)."""

    values: pl.DataFrame
    hashes: pl.Series
    reasons: dict[int, list[dict]]
    empty: pl.Series
    stored: pl.Series


def _jsonb_order(name: str) -> tuple[int, bytes]:
    """jsonb keeps an object's keys shorter first, then bytewise; parsing sorts them so, and input already in
    that order sorts in one pass (measured: a quarter less server time to parse these records)."""
    b = name.encode()
    return len(b), b


def content_hashes(docs: pl.Series) -> pl.Series:
    """content_hash() of each JSON text, in slices (a slice's bytes are Python objects only while it is hashed)."""
    docs = docs.cast(pl.Binary)
    step = 5000
    return pl.Series(
        "hash",
        [h for at in range(0, len(docs), step) for h in map(content_hash, docs.slice(at, step).to_list())],
        dtype=pl.Binary,
    )


def _docs(frags: pl.DataFrame) -> pl.DataFrame:
    """Per row: `hash`, the content hash of its canonical JSON (its fields' fragments in sorted field order), and
    `stored`, the same object with its keys in jsonb's order (equal as jsonb, cheaper for PostgreSQL to parse).
    The canonical JSON is hashed and let go before the other rendering is made: one rendering in memory at once."""

    def joined(names: list[str]) -> pl.Expr:
        return pl.concat_str([pl.lit("{"), pl.concat_str(names, separator=",", ignore_nulls=True), pl.lit("}")])

    hashes = content_hashes(frags.select(joined(sorted(frags.columns))).to_series())
    stored = frags.select(joined(sorted(frags.columns, key=_jsonb_order)).alias("stored")).to_series()
    return pl.DataFrame([hashes, stored])


def _dtype(f) -> type[pl.DataType]:
    return pl.Float64 if f.type == "int" else pl.String


def _fragment(prefix: str, value) -> str:
    return prefix + _ENCODE(value).decode()


# Text that its field's normalisation returns as it is, and that the JSON encoder writes between quotes as it
# is (no quote, backslash or control character): printable ASCII and the precomposed Latin letters Vietnamese
# uses (such text is in NFC), words separated by single spaces. Codes and IDs: no space, no lower case (IDs: no
# dot either). Anything else goes through the field's function.
_PLAIN = r"!#-\[\]-~"
_WORD = rf"[{_PLAIN}\u00C0-\u024F\u1E00-\u1EFF]+"
_AS_IS = {
    "text": rf"^{_WORD}( {_WORD})*$",
    "code": r"^[!#-\[\]-`{-~]+$",
    "digits": r"^[!#-\[\]-`{-~]+$",
    "id": r"^[!#-\-/-\[\]-`{-~]+$",
}


def _as_is(s: pl.Series, f) -> pl.Series | None:
    """Which values the field's normalisation keeps as they are (see _AS_IS), or None for no such shortcut."""
    pattern = _AS_IS.get(f.type)
    if pattern is None:
        return None
    ok = s.str.contains(pattern)
    if f.max:
        ok = ok & (s.str.len_chars() <= f.max)
    if f.pad:  # digits shorter than the pad get their leading zeros back
        ok = ok & ~(s.str.contains("^[0-9]+$") & (s.str.len_chars() < f.pad))
    return ok.fill_null(value=False)


def _text_column(values: list, step: tuple, f, prefix: str) -> tuple[pl.Series, pl.Series, dict] | None:
    """A column of text (or missing) values, normalised once per distinct value; None if it holds anything else."""
    _key, _name, fn, width, memo = step
    dtype = _dtype(f)
    try:
        s = pl.Series(values, dtype=pl.String, strict=True)
    except (TypeError, ValueError, UnicodeError, OverflowError, pl.exceptions.PolarsError):
        return None
    as_is = _as_is(s, f)
    distinct = (s if as_is is None else s.filter(~as_is)).drop_nulls().unique().to_list()
    old, new, frags, failing = [], [], [], {}
    for v in distinct:
        got = value_outcome(fn, width, memo, v)
        if got.__class__ is _Fail:
            if got.code:
                failing[v] = got.code
            continue
        old.append(v)
        new.append(float(got) if dtype == pl.Float64 else got)
        frags.append(_fragment(prefix, got))
    if as_is is None:
        norm = s.replace_strict(old, new, default=None, return_dtype=dtype)
        frag = s.replace_strict(old, frags, default=None, return_dtype=pl.String)
    else:
        kept = pl.concat_str(pl.lit(prefix + '"'), "v", pl.lit('"'))
        mapped = (pl.lit(None, dtype), pl.lit(None, pl.String))
        if old:
            v = pl.col("v")
            mapped = (v.replace_strict(old, new, default=None), v.replace_strict(old, frags, default=None))
        norm, frag = pl.DataFrame({"v": s, "ok": as_is}).select(
            pl.when("ok").then("v").otherwise(mapped[0]).alias("n"),
            pl.when("ok").then(kept).otherwise(mapped[1]).alias("f"),
        )
    fails = {}
    if failing:
        for i in s.is_in(list(failing)).arg_true().to_list():
            fails[i] = failing[values[i]]
    return norm, frag, fails


def _any_column(values: list, step: tuple, f, prefix: str) -> tuple[pl.Series, pl.Series, dict]:
    """Any values (numbers, dates, text): value by value, each distinct (type, value) once."""
    _key, _name, fn, width, memo = step
    dtype = _dtype(f)
    seen: dict = {}
    norm: list = []
    frag: list[str | None] = []
    fails: dict[int, str] = {}
    for i, v in enumerate(values):
        try:
            key = (v.__class__, v)
            got = seen.get(key, seen)
            if got is seen:
                got = seen[key] = value_outcome(fn, width, memo, v)
        except TypeError:  # unhashable
            got = value_outcome(fn, width, memo, v)
        if got.__class__ is _Fail:
            if got.code:
                fails[i] = got.code
            norm.append(None)
            frag.append(None)
        else:
            norm.append(float(got) if dtype == pl.Float64 else got)
            frag.append(_fragment(prefix, got))
    return pl.Series(norm, dtype=dtype), pl.Series(frag, dtype=pl.String), fails


def _group(records: list, keys: tuple, spec: KindSpec) -> tuple[dict, dict, dict[int, list[dict]]] | None:
    """Columns of records that all have exactly `keys` (None when two keys name one field)."""
    steps = _steps(spec, keys)
    names = [s[1] for s in steps]
    if len(set(names)) != len(names):
        return None
    values: dict[str, pl.Series] = {}
    frags: dict[str, pl.Series] = {}
    reasons: dict[int, list[dict]] = {}
    for step in steps:
        key, name = step[0], step[1]
        column = list(map(operator.itemgetter(key), records))
        f, prefix = spec.by_name[name], _ENCODE(name).decode() + ":"
        got = _text_column(column, step, f, prefix) or _any_column(column, step, f, prefix)
        values[name], frags[name], fails = got
        for i, code in fails.items():
            reasons.setdefault(i, []).append(reason(name, code))
    return values, frags, reasons


def _from_rows(rows: list[dict], spec: KindSpec) -> tuple[dict, dict]:
    """Columns of records already normalised row by row."""
    values, frags = {}, {}
    for f in spec.fields:
        column = [r.get(f.name) for r in rows]
        if any(v is not None for v in column):
            prefix = _ENCODE(f.name).decode() + ":"
            values[f.name] = pl.Series(
                [float(v) if v is not None and f.type == "int" else v for v in column], dtype=_dtype(f)
            )
            frags[f.name] = pl.Series([None if v is None else _fragment(prefix, v) for v in column], dtype=pl.String)
    return values, frags


def _frame(columns: dict, n: int, spec: KindSpec, dtype: Callable) -> pl.DataFrame:
    """All fields of the spec, in its order; a field no record has is a column of nulls."""
    return pl.DataFrame(
        [
            columns[f.name].alias(f.name) if f.name in columns else pl.Series(f.name, [None] * n, dtype=dtype(f))
            for f in spec.fields
        ]
    )


def normalise_columns(records: Sequence, spec: KindSpec) -> Columns:
    """Normalise a batch column by column (same outcomes as normalise(), record by record)."""
    n = len(records)
    groups: dict[tuple | None, list[int]] = {}
    for i, raw in enumerate(records):
        key = tuple(raw) if type(raw) is dict or isinstance(raw, Mapping) else None
        groups.setdefault(key, []).append(i)
    parts = []  # (row indices, values, fragments, reasons by position)
    for keys, rows in groups.items():
        recs = [records[i] for i in rows] if len(groups) > 1 else list(records)
        got = _group(recs, keys, spec) if keys is not None else None
        if got is None:  # not records, or a field named twice: row by row
            normed, row_reasons = normalise(recs, spec)
            got = (*_from_rows(normed, spec), {j: r for j, r in enumerate(row_reasons) if r})
        parts.append((rows, *got))
    reasons: dict[int, list[dict]] = {}
    frames, docs = [], []
    for rows, values, frags, why in parts:
        m = len(rows)
        frames.append(_frame(values, m, spec, _dtype))
        docs.append(_docs(_frame(frags, m, spec, lambda _f: pl.String)))  # the fragments go once joined
        for j, r in why.items():
            reasons[rows[j]] = r
    if len(parts) == 1:
        values_df, docs_df = frames[0], docs[0]
    elif parts:
        order = pl.Series([i for rows, *_ in parts for i in rows]).arg_sort()
        values_df = pl.concat(frames)[order]
        docs_df = pl.concat(docs)[order]
    else:
        values_df = _frame({}, 0, spec, _dtype)
        docs_df = pl.DataFrame(schema={"hash": pl.Binary, "stored": pl.String})
    empty = (
        values_df.select(~pl.any_horizontal(pl.all().is_not_null())).to_series()
        if n
        else pl.Series([], dtype=pl.Boolean)
    )
    return Columns(values=values_df, hashes=docs_df["hash"], reasons=reasons, empty=empty, stored=docs_df["stored"])
