"""Registrar tokens: HS256 JWTs signed with CERTPIPE_REGISTRAR_JWT_SECRET, scoped to a province or a commune.

Every token carries a unique id (`jti`, for revocation) and lives at most CERTPIPE_REGISTRAR_MAX_TOKEN_HOURS
(default 12): a token whose `exp - iat` is longer, or issued in the future, is refused whatever its signature."""

from __future__ import annotations

import datetime as dt
import os
import re
import uuid
from dataclasses import dataclass

import jwt

SECRET_ENV = "CERTPIPE_REGISTRAR_JWT_SECRET"  # noqa: S105 - the variable's name
AUDIENCE = "certpipe-registrar"
ALGORITHM = "HS256"
_PROVINCE = re.compile(r"^[0-9]{2}$")
_COMMUNE = re.compile(r"^[0-9]{5}$")
MAX_HOURS_ENV = "CERTPIPE_REGISTRAR_MAX_TOKEN_HOURS"
DEFAULT_MAX_HOURS = 12.0
CLOCK_SKEW = dt.timedelta(seconds=60)


def max_token_hours() -> float:
    return float(os.environ.get(MAX_HOURS_ENV) or DEFAULT_MAX_HOURS)


class TokenError(Exception):
    """The token is missing, forged, expired or lacks the registrar claims (message carries no token content)."""


@dataclass(frozen=True)
class Registrar:
    sub: str  # registrar account (the officer)
    office: str  # registering office
    province: str  # province code of the office's scope
    commune: str | None = None  # set for a commune-level office: scope is that commune only
    jti: str | None = None  # token id (revocation)
    iat: dt.datetime | None = None  # issued at (revocation of every token of a registrar)


def secret_from_env() -> str:
    secret = os.environ.get(SECRET_ENV, "")
    if len(secret) < 32:
        raise RuntimeError(f"{SECRET_ENV} must be set to a secret of at least 32 characters")
    return secret


def issue_token(
    sub: str,
    office: str,
    province: str,
    commune: str | None = None,
    *,
    secret: str | None = None,
    ttl: dt.timedelta = dt.timedelta(hours=8),
    now: dt.datetime | None = None,
    supervisor: bool = False,
) -> str:
    """A bearer token for one registrar; `secret` defaults to the environment's signing key. A supervisor's token
    also opens the office's audit trail in the console."""
    if not (sub and office and _PROVINCE.match(province) and (commune is None or _COMMUNE.match(commune))):
        raise ValueError("sub and office are required, province is 2 digits, commune 5 digits")
    if ttl > dt.timedelta(hours=max_token_hours()):
        raise ValueError(f"a token lives at most {max_token_hours():g} hours ({MAX_HOURS_ENV})")
    now = now or dt.datetime.now(dt.UTC)
    claims = {
        "sub": sub,
        "office": office,
        "province": province,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    if commune:
        claims["commune"] = commune
    if supervisor:
        claims["supervisor"] = True
    return jwt.encode(claims, secret or secret_from_env(), algorithm=ALGORITHM)


def verify_token(token: str, secret: str, max_hours: float | None = None) -> Registrar:
    try:
        c = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["sub", "exp", "iat", "aud", "jti"]},
            leeway=CLOCK_SKEW,
        )
    except (jwt.PyJWTError, ValueError, TypeError) as e:
        raise TokenError(type(e).__name__) from None
    if not (isinstance(c["iat"], int | float) and isinstance(c["exp"], int | float) and isinstance(c["jti"], str)):
        raise TokenError("claims")
    now = dt.datetime.now(dt.UTC).timestamp()
    limit = (max_hours if max_hours is not None else max_token_hours()) * 3600
    if c["iat"] > now + CLOCK_SKEW.total_seconds() or c["exp"] - c["iat"] > limit or not 0 < len(c["jti"]) <= 64:
        raise TokenError("lifetime")
    province, commune, office = c.get("province"), c.get("commune"), c.get("office")
    if not (
        isinstance(c["sub"], str)
        and 0 < len(c["sub"]) <= 100
        and isinstance(province, str)
        and _PROVINCE.match(province)
        and isinstance(office, str)
        and 0 < len(office) <= 200
        and (commune is None or (isinstance(commune, str) and _COMMUNE.match(commune)))
    ):
        raise TokenError("claims")
    return Registrar(
        sub=c["sub"],
        office=office,
        province=province,
        commune=commune,
        jti=c["jti"],
        iat=dt.datetime.fromtimestamp(c["iat"], dt.UTC),
    )
