"""Registrar tokens: HS256 JWTs signed with CERTPIPE_REGISTRAR_JWT_SECRET, scoped to a province or a commune."""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass

import jwt

SECRET_ENV = "CERTPIPE_REGISTRAR_JWT_SECRET"  # noqa: S105 - the variable's name
AUDIENCE = "certpipe-registrar"
ALGORITHM = "HS256"
_PROVINCE = re.compile(r"^\d{2}$")
_COMMUNE = re.compile(r"^\d{5}$")


class TokenError(Exception):
    """The token is missing, forged, expired or lacks the registrar claims (message carries no token content)."""


@dataclass(frozen=True)
class Registrar:
    sub: str  # registrar account (the officer)
    office: str  # registering office
    province: str  # province code of the office's scope
    commune: str | None = None  # set for a commune-level office: scope is that commune only


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
) -> str:
    """A bearer token for one registrar; `secret` defaults to the environment's signing key."""
    if not (sub and office and _PROVINCE.match(province) and (commune is None or _COMMUNE.match(commune))):
        raise ValueError("sub and office are required, province is 2 digits, commune 5 digits")
    now = now or dt.datetime.now(dt.UTC)
    claims = {"sub": sub, "office": office, "province": province, "aud": AUDIENCE, "iat": now, "exp": now + ttl}
    if commune:
        claims["commune"] = commune
    return jwt.encode(claims, secret or secret_from_env(), algorithm=ALGORITHM)


def verify_token(token: str, secret: str) -> Registrar:
    try:
        c = jwt.decode(
            token, secret, algorithms=[ALGORITHM], audience=AUDIENCE, options={"require": ["sub", "exp", "iat", "aud"]}
        )
    except jwt.PyJWTError as e:
        raise TokenError(type(e).__name__) from None
    province, commune, office = c.get("province"), c.get("commune"), c.get("office")
    if not (
        isinstance(province, str)
        and _PROVINCE.match(province)
        and isinstance(office, str)
        and office
        and (commune is None or (isinstance(commune, str) and _COMMUNE.match(commune)))
    ):
        raise TokenError("claims")
    return Registrar(sub=c["sub"], office=office, province=province, commune=commune)
