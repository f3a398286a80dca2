"""What the routers share, as FastAPI dependencies: the worker's state, the caller, the answer type.

``Depends(get_state)`` gives a handler the worker's :class:`~recsys.service.state.ServiceState`
(``app.state.service``, set by :func:`recsys.service.app.create_app`);
``User`` / ``Admin`` the authenticated caller (401 without a known token, 403
for a user's token on an admin path); :func:`own_data` the per-user rule.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from recsys.service.auth import KeysFile, KeyStore, Principal
from recsys.service.rounding import round_answer
from recsys.service.schemas import ErrorResponse
from recsys.service.state import ServiceState

__all__ = ["ERRORS", "PREFIX", "Admin", "JSONAnswer", "State", "User", "get_keys", "get_state", "own_data"]

PREFIX = "/recommendations/enhanced"


class JSONAnswer(Response):
    """An engine answer (plain JSON types) serialised by orjson, money rounded to cents and other
    fractions to 4 decimals (:mod:`recsys.service.rounding`). Handlers return it
    directly, so FastAPI does not re-validate the dict against the response model
    (the model still documents the answer in the OpenAPI schema; the fuzz test
    checks that answers conform to it)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(round_answer(content))


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "no token, or an unknown one"},
    403: {"model": ErrorResponse, "description": "the token may not read this"},
    422: {"model": ErrorResponse, "description": "bad input; `detail` names the field"},
    500: {"model": ErrorResponse, "description": "a server fault (logged); `request_id` names it in the log"},
}

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>` from `recsys keys add`")


async def get_state(request: Request) -> ServiceState:
    """The worker's served engine, event log, limiter and jobs (``async``: FastAPI runs a plain ``def``
    dependency in its thread pool, a thread hop per request for an attribute read)."""
    return request.app.state.service


async def get_keys(request: Request) -> KeyStore | KeysFile:
    """The accepted API keys (``async``: no thread hop, as :func:`get_state`)."""
    return request.app.state.keys


async def principal(
    keys: Annotated[KeyStore | KeysFile, Depends(get_keys)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The token's owner; 401 without a token or with an unknown one (the token is never logged)."""
    who = keys.authenticate(credentials.credentials if credentials else None)
    if who is None:
        reason = "missing bearer token" if credentials is None else "unknown or revoked token"
        raise HTTPException(401, reason, headers={"WWW-Authenticate": "Bearer"})
    return who


async def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
    """An admin token's owner; 403 for a user's token."""
    if not who.admin:
        raise HTTPException(403, f"this path needs an admin token; the token of user {who.user_id!r} is not one")
    return who


def own_data(who: Principal, user_id: str) -> None:
    """403 unless the token is an admin's or ``user_id``'s own (SPEC: data only for the authenticated user)."""
    if not who.admin and who.user_id != user_id:
        raise HTTPException(
            403, f"the token of user {who.user_id!r} may read only that user's recommendations and deals")


User = Annotated[Principal, Depends(principal)]
Admin = Annotated[Principal, Depends(admin)]
State = Annotated[ServiceState, Depends(get_state)]
