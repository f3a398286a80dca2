"""``/realtime``, ``/full``, ``/demo-flow``: a user's recommendations (the user's token, or an admin's)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from recsys.service.deps import ERRORS, PREFIX, JSONAnswer, State, User, own_data
from recsys.service.schemas import (
    USER_ID_PATTERN,
    DemoFlowResponse,
    ErrorResponse,
    FullRequest,
    FullResponse,
    RealtimeRequest,
    RealtimeResponse,
)

router = APIRouter(prefix=PREFIX, tags=["recommendations"])

RATE_LIMITED = {**ERRORS, 429: {"model": ErrorResponse, "description": "deal rate limit; see Retry-After"}}


@router.post("/realtime", response_model=RealtimeResponse, responses=ERRORS)
async def realtime(body: RealtimeRequest, who: User, state: State) -> JSONAnswer:
    """Stage 1: real-time item k-NN on the live history; the demographic fallback for unknown users."""
    own_data(who, body.user_id)
    await state.sync()
    return JSONAnswer(state.engine.realtime(body.user_id, body.num_recommendations))


@router.post("/full", response_model=FullResponse, responses=ERRORS)
async def full(body: FullRequest, who: User, state: State) -> JSONAnswer:
    """Stage 3: hybrid recommendations with deals. Past the deal rate limit the recommendations
    still come, with `deals: []` and `deals_retry_after_seconds`."""
    own_data(who, body.user_id)
    await state.sync()
    return JSONAnswer(await state.full_batcher.submit((body.num_recommendations, body.include_deals), body.user_id))


@router.get("/demo-flow", response_model=DemoFlowResponse, responses=RATE_LIMITED)
async def demo_flow(
    who: User,
    state: State,
    user_id: Annotated[str | None, Query(pattern=USER_ID_PATTERN)] = None,
) -> JSONAnswer:
    """One user through Stage 1, 2 and 3 (default: the token's user; admins: `user_0`)."""
    if user_id is None and not who.admin:
        user_id = who.user_id
    if user_id is not None:
        own_data(who, user_id)
    await state.sync()
    return JSONAnswer(state.engine.demo_flow(user_id, rate_limiter=state.rate_limiter))
