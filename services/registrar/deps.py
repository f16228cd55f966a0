"""FastAPI dependencies shared by the routers: the warehouse and the authenticated registrar."""

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from registrar.auth import Registrar, TokenError, verify_token
from registrar.db import Db, revoked
from registrar.messages import MSG

bearer = HTTPBearer(auto_error=False)


def db(request: Request) -> Db:
    return request.app.state.db


def _revoked(d: Db, reg: Registrar) -> bool:
    with d.connect() as conn:
        return revoked(conn, reg)


async def registrar(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Registrar:
    """The registrar of a valid, unrevoked bearer token (else 401); recorded for the audit row."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if creds is None or creds.scheme.lower() != "bearer":
        raise HTTPException(401, MSG["unauthenticated"], headers=challenge)
    try:
        reg = verify_token(creds.credentials, request.app.state.secret, request.app.state.settings.max_token_hours)
    except TokenError:
        request.state.audit.pop("registrar", None)
        raise HTTPException(401, MSG["unauthenticated"], headers=challenge) from None
    request.state.audit["registrar"] = reg
    if await run_in_threadpool(_revoked, request.app.state.db, reg):
        raise HTTPException(401, MSG["revoked"], headers=challenge)
    return reg


Reg = Annotated[Registrar, Depends(registrar)]
DbDep = Annotated[Db, Depends(db)]
NOT_FOUND = {404: {"description": MSG["not_found"]}, 401: {"description": MSG["unauthenticated"]}}
