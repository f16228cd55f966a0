"""The start of every DHIS2 run: the server checked (version, time zone) and the A6 mapping checked against the
server's program stage (data element UIDs, value types, option sets).

The mapping is include/schemas/dhis2/a6_mapping.json; the Variable `dhis2_mortality.data_elements` gives the
deployment's UIDs (the pilot register's extra fields have none in the file: they are never pushed until given).
A required element that does not fit fails the run with one error naming every such element; an optional one is
skipped (not read, not pushed) and reported in the task's counts.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from certpipe import config
from certpipe.core.schema import schemas_dir
from certpipe.errors import ConfigError
from certpipe.sources.dhis2.hook import Dhis2Hook, Dhis2Incompatible, Server

log = logging.getLogger(__name__)


@cache
def mapping() -> dict:
    return json.loads((schemas_dir() / "dhis2" / "a6_mapping.json").read_text(encoding="utf-8"))


def settings_from(raw: str | dict | None) -> dict:
    """The Variable `dhis2_mortality`, validated (certpipe.config.Dhis2Mortality), as a dict."""
    settings = config.dhis2_mortality(raw).model_dump()
    unknown = sorted(set(settings["data_elements"]) - set(mapping()["dataElements"]))
    if unknown:
        raise ConfigError(
            f"Variable 'dhis2_mortality': data_elements.{unknown[0]}: not an element of "
            "include/schemas/dhis2/a6_mapping.json"
        )
    return settings


def connect(settings: dict) -> Dhis2Hook:
    return Dhis2Hook(settings["conn_id"], **{k: v for k, v in settings["client"].items() if v is not None})


@dataclass(frozen=True)
class Element:
    name: str
    uid: str
    value_type: str
    options: dict[str, str] = field(default_factory=dict)  # option code -> option name ({} without option set)


@dataclass
class A6:
    """The mapping as it fits this server: usable elements, and the optional ones skipped with the reason."""

    program: str
    stage: str
    elements: dict[str, Element]
    skipped: dict[str, str]

    def uid(self, name: str) -> str | None:
        element = self.elements.get(name)
        return element.uid if element else None

    @property
    def names(self) -> dict[str, str]:
        """data element UID -> mapping name, for the usable elements."""
        return {e.uid: name for name, e in self.elements.items()}

    def option_name(self, name: str, code: str | None) -> str | None:
        """The option's name for a code of an option-set element (codes compared without case)."""
        element = self.elements.get(name)
        if not (element and code):
            return None
        wanted = code.strip().upper()
        return next((label for c, label in element.options.items() if c.strip().upper() == wanted), None)

    def report(self) -> dict[str, Any]:
        """For the task's counts (XCom): what was skipped and why (UIDs and names only, no personal data)."""
        return {"skipped_elements": dict(sorted(self.skipped.items()))}


def _problem(spec: dict, uid: str | None, de: dict | None, stage: str) -> tuple[str | None, str, dict]:
    """(problem or None, value type, options) of one mapping entry against the stage's data element."""
    if not uid:
        return "no UID configured (Variable dhis2_mortality.data_elements)", "", {}
    if de is None:
        return f"data element {uid} is not on program stage {stage}", "", {}
    value_type = str(de.get("valueType") or "")
    if value_type not in spec["valueTypes"]:
        return f"data element {uid} has value type {value_type}, expected {'/'.join(spec['valueTypes'])}", "", {}
    option_set = de.get("optionSet") or {}
    options = {str(o.get("code")): str(o.get("name") or "") for o in option_set.get("options") or []}
    if spec.get("optionSet") and option_set.get("id") != spec["optionSet"]:
        return f"data element {uid} uses option set {option_set.get('id')}, expected {spec['optionSet']}", "", {}
    missing = sorted(set((spec.get("options") or {}).values()) - set(options))
    if missing:
        return f"data element {uid} has no option code {', '.join(missing)}", "", {}
    return None, value_type, options


def check(hook: Dhis2Hook, overrides: dict[str, str]) -> A6:
    """The mapping against the server's program stage (`/api/programStages/{uid}`)."""
    m = mapping()
    stage = hook.program_stage(m["programStage"])
    if (stage.get("program") or {}).get("id") != m["program"]:
        raise Dhis2Incompatible(f"{hook.where}: program stage {m['programStage']} is not in program {m['program']}")
    on_server = {
        (p.get("dataElement") or {}).get("id"): p.get("dataElement") or {} for p in stage["programStageDataElements"]
    }
    elements: dict[str, Element] = {}
    skipped: dict[str, str] = {}
    fatal: list[str] = []
    for name, spec in m["dataElements"].items():
        uid = overrides.get(name) or spec.get("uid")
        problem, value_type, options = _problem(spec, uid, on_server.get(uid), m["programStage"])
        if problem is None and uid:
            elements[name] = Element(name, uid, value_type, options)
        elif spec.get("required"):
            fatal.append(f"{name}: {problem}")
        else:
            skipped[name] = str(problem)
    if fatal:
        raise Dhis2Incompatible(
            f"{hook.where}: the A6 mapping does not fit the server's program stage {m['programStage']}: "
            + "; ".join(fatal)
            + " (fix include/schemas/dhis2/a6_mapping.json or Variable dhis2_mortality.data_elements)"
        )
    return A6(m["program"], m["programStage"], elements, skipped)


def start(settings: dict) -> tuple[Dhis2Hook, Server, A6]:
    """Check the server and the mapping before anything is read or written; any mismatch fails the run (the
    errors are AirflowFailException: not retried, the watermark does not move)."""
    hook = connect(settings)
    server = hook.server
    expected = settings.get("server_timezone")
    if expected and expected != server.zone_id:
        raise Dhis2Incompatible(
            f"{hook.where}: the server's time zone is {server.zone_id}, Variable dhis2_mortality.server_timezone "
            f"says {expected}"
        )
    a6 = check(hook, settings.get("data_elements") or {})
    log.info(
        "DHIS2 %s, server zone %s; A6 elements used: %d, skipped: %s",
        server.full_version,
        server.zone_id,
        len(a6.elements),
        ", ".join(f"{k} ({v})" for k, v in sorted(a6.skipped.items())) or "none",
    )
    return hook, server, a6


def a6_events(
    hook: Dhis2Hook, a6: A6, root: str, since: dt.datetime, until: dt.datetime, settings: dict, **kw: bool
) -> Iterator[list[dict]]:
    """The A6 events under `root` updated in [since, until], page by page (see Dhis2Hook.changed_events)."""
    yield from hook.changed_events(
        program=a6.program,
        program_stage=a6.stage,
        org_unit=root,
        since=since,
        until=until,
        page_size=int(settings["page_size"]),
        **kw,
    )
