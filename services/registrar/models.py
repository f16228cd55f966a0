"""Request and response bodies of the registrar API (pydantic)."""

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

PersonId = Annotated[str, Field(pattern=r"^(\d{12}|\d{9})$", description="12-digit personal ID (or 9-digit CMND)")]


class MotherQuery(BaseModel):
    mother_id: PersonId


class DeceasedQuery(BaseModel):
    deceased_id: PersonId


class NumberQuery(BaseModel):
    number: str = Field(min_length=1, max_length=64, description="SO / SO_BAOTU, or the full MA_GCS / MA_GBT")
    issued_on: dt.date = Field(description="NGAY_CT / NGAY_CAPGIAYBT")
    facility: str = Field(pattern=r"^[0-9A-Za-z]{1,10}$", description="issuing facility code (MA_CSKCB / MACSKCB)")
    kind: Literal["GCS", "GBT"] | None = None


class Registration(BaseModel):
    registration_no: str = Field(min_length=1, max_length=64, description="number in the civil register")
    registered_on: dt.date


class Cancellation(BaseModel):
    reason: str = Field(min_length=10, max_length=1000, description="why the registration is undone")


class Source(BaseModel):
    source: str
    source_ref: str
    source_record_id: str | None
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime


class Certificate(BaseModel):
    cert_id: int
    kind: Literal["GCS", "GBT"]
    cert_key: str
    facility_code: str | None
    issued_on: dt.date | None
    status: Literal["received", "used"]
    version: int
    received_at: dt.datetime
    updated_at: dt.datetime
    used_at: dt.datetime | None
    registration: dict[str, Any] | None
    record: dict[str, Any]
    sources: list[Source]
    disagreements: list[dict[str, Any]] | None = Field(None, description="when the disagreement table exists")
    cause_of_death: dict[str, Any] | None = Field(
        None, description="deaths: the notice's cause and ICD-10; wh.cause_of_death per source when present"
    )
    dhis2: dict[str, Any] | None = Field(None, description="deaths: DHIS2 availability and matching A6 events")


class Certificates(BaseModel):
    count: int
    items: list[Certificate]


class Worklist(BaseModel):
    available: bool = True
    note: str | None = None
    office: str
    province: str
    commune: str | None
    count: int
    by_commune: dict[str, int]
    items: list[dict[str, Any]]
