"""FastAPI dependencies shared by the routers: the warehouse and the authenticated registrar."""

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from registrar.auth import Registrar, TokenError, verify_token
from registrar.db import Db
from registrar.messages import MSG

bearer = HTTPBearer(auto_error=False)


def db(request: Request) -> Db:
    return request.app.state.db


def registrar(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Registrar:
    """The registrar of a valid bearer token (else 401); recorded for the audit row."""
    if creds is None or creds.scheme.lower() != "bearer":
        raise HTTPException(401, MSG["unauthenticated"], headers={"WWW-Authenticate": "Bearer"})
    try:
        reg = verify_token(creds.credentials, request.app.state.secret)
    except TokenError:
        raise HTTPException(401, MSG["unauthenticated"], headers={"WWW-Authenticate": "Bearer"}) from None
    request.state.audit["registrar"] = reg
    return reg


Reg = Annotated[Registrar, Depends(registrar)]
DbDep = Annotated[Db, Depends(db)]
NOT_FOUND = {404: {"description": MSG["not_found"]}, 401: {"description": MSG["unauthenticated"]}}
