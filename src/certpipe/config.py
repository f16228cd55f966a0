"""Typed configuration from Airflow Variables: one pydantic model per Variable, validated once, and errors that
name the Variable and the field (never a value). Connections are read by each source's settings model
(`certpipe.http.settings`); client overrides in a Variable go through the same `ClientSettings` model.

Variables:
  his_hospitals     [{"facility": "01020", "conn_id": "his_01020", "name": "...", "timeout": 30, ...}]
  bhxh_provinces    ["01", "79", "96"]
  bhxh_client       {"conn_id": "bhxh_default", "timeout": 30, "attempts": 5, ...}
  dhis2_mortality   {"org_units": [...], "page_size": 200, "overlap_minutes": 60, "push_batch": 100,
                     "server_timezone": null, "data_elements": {}, "conn_id": "dhis2_default", "client": {...}}
  alerting          see certpipe.alerts
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError, field_validator

from certpipe.errors import ConfigError
from certpipe.http.settings import ClientSettings, describe

T = TypeVar("T")

Facility = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9A-Z]{5}$")]


class ClientOverrides(ClientSettings):
    """Client settings given in a Variable; unset fields keep the connection's (or the defaults)."""

    timeout: float | None = Field(None, gt=0, le=600)  # type: ignore[assignment]
    attempts: int | None = Field(None, ge=1, le=20)  # type: ignore[assignment]
    backoff: float | None = Field(None, ge=0, le=300)  # type: ignore[assignment]
    max_backoff: float | None = Field(None, gt=0, le=3600)  # type: ignore[assignment]
    max_retry_after: float | None = Field(None, ge=0, le=3600)  # type: ignore[assignment]

    def given(self) -> dict[str, Any]:
        """The client settings that were set (for the hook's overrides)."""
        return self.model_dump(include=set(ClientSettings.model_fields), exclude_none=True)


class Hospital(ClientOverrides):
    """One pilot hospital of the HIS pull (Variable `his_hospitals`)."""

    facility: Facility
    conn_id: str | None = None
    name: str | None = None

    @field_validator("facility", mode="before")
    @classmethod
    def _facility(cls, v: Any) -> Any:
        return str(v).strip().upper() if isinstance(v, str | int) else v

    def as_task_arg(self) -> dict[str, Any]:
        """JSON for XCom: the mapped tasks receive this."""
        return {
            "facility": self.facility,
            "conn_id": self.conn_id or f"his_{self.facility}",
            "name": self.name or self.facility,
            **self.given(),
        }


class BhxhClient(ClientOverrides):
    conn_id: str = "bhxh_default"


Dhis2Uid = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9]{10}$")]


class Dhis2Mortality(BaseModel):
    """DHIS2 mortality (docs/dhis2.md). The server's time zone is read from the server every run;
    `server_timezone`, when set, is the zone the deployment expects (a server in another zone fails the run).
    `data_elements` gives the deployment's UIDs for entries of include/schemas/dhis2/a6_mapping.json (the pilot
    register's extra fields have none until then)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    org_units: list[Dhis2Uid] = []
    page_size: int = Field(200, ge=1, le=10000)
    overlap_minutes: int = Field(60, ge=0, le=24 * 60)
    push_batch: int = Field(100, ge=1, le=5000)
    server_timezone: str | None = None
    data_elements: dict[str, Dhis2Uid] = {}
    conn_id: str = "dhis2_default"
    client: ClientOverrides = ClientOverrides()


Province = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{2}$")]


def parse(variable: str, raw: Any, model: type[T] | Any) -> T:
    """Validate a Variable's value (JSON text or already parsed) against `model` (a model or a type)."""
    try:
        value = json.loads(raw) if isinstance(raw, str | bytes) else raw
    except ValueError:
        raise ConfigError(f"Variable '{variable}' is not valid JSON") from None
    try:
        return TypeAdapter(model).validate_python(value)
    except ValidationError as e:
        raise ConfigError(f"Variable '{variable}': {describe(e)}") from None


def hospitals(raw: Any) -> list[dict[str, Any]]:
    entries: list[Hospital] = parse("his_hospitals", raw, list[Hospital])
    return [h.as_task_arg() for h in entries]


def provinces(raw: Any) -> list[str]:
    """Pilot provinces (2-digit codes; a number that lost its zero, e.g. 1, is read as 01), without repeats."""
    items: list[str | int] = parse("bhxh_provinces", raw, list[str | int])
    codes: list[str] = parse("bhxh_provinces", [str(p).strip().zfill(2) for p in items], list[Province])
    return list(dict.fromkeys(codes))


def bhxh_client(raw: Any) -> BhxhClient:
    return parse("bhxh_client", raw or {}, BhxhClient)


def dhis2_mortality(raw: Any) -> Dhis2Mortality:
    return parse("dhis2_mortality", raw or {}, Dhis2Mortality)


class Alerting(BaseModel):
    """Variable `alerting` (certpipe.alerts): when a batch's refusals raise an alert and where alerts go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    refusal_rate: float = Field(0.2, ge=0, le=1)
    min_received: int = Field(1, ge=0)
    webhook_conn_id: str | None = None
    webhook_endpoint: str = ""
    email: list[str] = []
    smtp_conn_id: str = "smtp_default"
    email_from: str | None = None

    @field_validator("email", mode="before")
    @classmethod
    def _emails(cls, v: Any) -> Any:
        return [e.strip() for e in v.split(",") if e.strip()] if isinstance(v, str) else v
