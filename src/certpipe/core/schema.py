"""The declarative side (include/schemas/): field specs per record kind, refusal rules."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

KINDS = ("GCS", "GBT")


def schemas_dir() -> Path:
    """include/schemas: CERTPIPE_SCHEMAS_DIR (the image sets it), else the checkout this package runs from."""
    env = os.environ.get("CERTPIPE_SCHEMAS_DIR")
    if env:
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        if (parent / "include" / "schemas" / "rules.json").is_file():
            return parent / "include" / "schemas"
    raise RuntimeError("include/schemas not found: set CERTPIPE_SCHEMAS_DIR")


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    label: str
    max: int | None = None
    pad: int | None = None
    aliases: tuple[str, ...] = ()
    pii: bool = False


@dataclass(frozen=True)
class KindSpec:
    kind: str
    root: str
    title: str
    key: str
    fields: tuple[FieldSpec, ...]
    by_name: dict[str, FieldSpec] = field(repr=False, hash=False, compare=False, default_factory=dict)
    # every accepted source name (official name, alias) -> canonical name
    lookup: dict[str, str] = field(repr=False, hash=False, compare=False, default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


@cache
def kind_spec(kind: str) -> KindSpec:
    if kind not in KINDS:
        raise ValueError(f"unknown record kind {kind!r}; expected one of {KINDS}")
    raw = json.loads((schemas_dir() / "fields" / f"{kind.lower()}.json").read_text("utf-8"))
    fields = tuple(
        FieldSpec(
            name=f["name"],
            type=f["type"],
            label=f["label"],
            max=f.get("max"),
            pad=f.get("pad"),
            aliases=tuple(f.get("aliases", ())),
            pii=bool(f.get("pii", False)),
        )
        for f in raw["fields"]
    )
    spec = KindSpec(kind=raw["kind"], root=raw["root"], title=raw["title"], key=raw["key"], fields=fields)
    for f in fields:
        spec.by_name[f.name] = f
        for n in (f.name, *f.aliases):
            spec.lookup[n.upper()] = f.name
    return spec


@cache
def rule_catalogue() -> dict[str, dict]:
    return json.loads((schemas_dir() / "rules.json").read_text("utf-8"))["rules"]


def message(code: str, variant: str | None = None) -> str:
    rule = rule_catalogue()[code]
    if variant:
        return rule["variants"][variant]
    return rule["message"]


def reason(field: str | None, code: str, variant: str | None = None) -> dict:
    """One refusal reason: the field, a stable rule code and a Vietnamese message (never a value)."""
    return {"field": field, "code": code, "message": message(code, variant)}
