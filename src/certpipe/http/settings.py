"""Typed settings of an HTTP source, read once from its Airflow connection and validated.

The connection gives the base URL (`host` as a full URL, possibly with a context path such as
`https://host/dhis`; or `host` + `schema` (scheme) + `port`), `login` / `password`, and in `extra` the client
settings below plus each system's own fields. Variables may override the client settings (e.g. per hospital);
they go through the same model. Any problem is a `ConfigError` naming the connection and the field, never a
value (a password must not end up in a log).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from certpipe.errors import ConfigError


def describe(e: ValidationError) -> str:
    """'field: problem; ...' without the offending values."""
    parts = []
    for err in e.errors(include_input=False, include_url=False):
        where = ".".join(str(x) for x in err["loc"]) or "(value)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


class ClientSettings(BaseModel):
    """How we talk to a source: timeouts and the retry policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: float = Field(30.0, gt=0, le=600, description="seconds per request (connect, read, write)")
    attempts: int = Field(5, ge=1, le=20, description="tries of one call before the task fails")
    backoff: float = Field(1.0, ge=0, le=300, description="first wait before a retry, seconds (doubles)")
    max_backoff: float = Field(30.0, gt=0, le=3600, description="longest wait between two tries, seconds")
    max_retry_after: float = Field(
        300.0, ge=0, le=3600, description="longest Retry-After honoured; a longer one fails the call (retried later)"
    )


class HttpSettings(ClientSettings):
    """A source reached over HTTP, from its Airflow connection."""

    system: ClassVar[str] = "HTTP source"
    conn_id: str
    base_url: str
    login: str | None = None
    password: SecretStr | None = None
    verify: bool | str = Field(True, description="TLS: verify certificates (or a CA bundle path)")

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")) or "://" not in v or len(v.split("://", 1)[1].strip("/")) == 0:
            raise ValueError("the host must be an http(s) URL, e.g. https://host/path")
        return v.rstrip("/") + "/"  # a context path (https://host/dhis) keeps its last segment in joins

    @classmethod
    def from_connection(cls, conn_id: str, **overrides: Any) -> Self:
        """Read and validate the connection; `overrides` (None values ignored) win over its extras."""
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            raise ConfigError(f"{cls.system}: connection '{conn_id}' is not defined; create it") from None
        extra = conn.extra_dejson or {}
        if not isinstance(extra, dict):
            raise ConfigError(f"{cls.system} connection '{conn_id}': extra must be a JSON object")
        data = {
            **extra,
            "conn_id": conn_id,
            "base_url": base_url(conn.host, conn.schema, conn.port),
            "login": conn.login or None,
            "password": conn.password or None,
            **{k: v for k, v in overrides.items() if v is not None},
        }
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise ConfigError(f"{cls.system} connection '{conn_id}': {describe(e)}") from None

    def secret(self) -> str | None:
        return self.password.get_secret_value() if self.password else None


def base_url(host: str | None, scheme: str | None, port: int | None) -> str:
    """The connection's base URL: `host` when it is a URL, else scheme://host[:port] (HttpHook's convention)."""
    host = (host or "").strip()
    if "://" in host:
        return host
    if not host:
        return ""
    return f"{scheme or 'http'}://{host}" + (f":{port}" if port else "")
