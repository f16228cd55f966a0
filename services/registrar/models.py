"""Request and response bodies of the registrar API (pydantic)."""

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# ASCII digits only: full-width or other Unicode digits are refused, not silently taken as digits
PersonId = Annotated[
    str, Field(pattern=r"^([0-9]{12}|[0-9]{9})$", description="12-digit personal ID (or 9-digit CMND), ASCII digits")
]


def _plain_text(v: str) -> str:
    """Free text: no control characters (NUL, escapes, line breaks) and not blank."""
    if any(ord(ch) < 32 or 127 <= ord(ch) < 160 or ch in "\u2028\u2029" for ch in v) or not v.strip():
        raise ValueError("control characters or blank")
    return v.strip()


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MotherQuery(Strict):
    mother_id: PersonId


class DeceasedQuery(Strict):
    deceased_id: PersonId


class NumberQuery(Strict):
    number: str = Field(
        pattern=r"^[0-9A-Za-z][0-9A-Za-z./_-]{0,63}$", description="SO / SO_BAOTU, or the full MA_GCS / MA_GBT"
    )
    issued_on: dt.date = Field(description="NGAY_CT / NGAY_CAPGIAYBT")
    facility: str = Field(pattern=r"^[0-9A-Za-z]{1,10}$", description="issuing facility code (MA_CSKCB / MACSKCB)")
    kind: Literal["GCS", "GBT"] | None = None


class Registration(Strict):
    registration_no: str = Field(
        pattern=r"^[0-9]{1,7}/[0-9]{4}$", description="number in the civil register: <number>/<year>, ASCII digits"
    )
    registered_on: dt.date = Field(description="not in the future, not before the certificate's date of issue")


class Cancellation(Strict):
    reason: Annotated[str, AfterValidator(_plain_text)] = Field(
        min_length=10, max_length=500, description="why the registration is undone (10-500 characters, one line)"
    )


class Source(BaseModel):
    source: str
    source_ref: str
    source_record_id: str | None
    first_seen_at: dt.datetime = Field(description="when this source first sent the certificate")
    last_seen_at: dt.datetime = Field(
        description="when this source last sent something new for the certificate: a byte-identical re-send is "
        "answered `unchanged` and does not move it (the re-send is recorded in wh.batch_record only)"
    )


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
