"""``/deals/{user_id}``: a user's personalised deals, rate limited per user by the worker's limiter."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from recsys.service.deps import PREFIX, JSONAnswer, State, User, own_data
from recsys.service.routers.recommendations import RATE_LIMITED
from recsys.service.schemas import MAX_DEALS, USER_ID_PATTERN, DealsResponse

router = APIRouter(prefix=PREFIX, tags=["recommendations"])


@router.get("/deals/{user_id}", response_model=DealsResponse, responses=RATE_LIMITED)
async def deals(
    user_id: Annotated[str, Path(pattern=USER_ID_PATTERN)],
    who: User,
    state: State,
    num_deals: Annotated[int, Query(ge=1, le=MAX_DEALS)] = 5,
) -> JSONAnswer:
    """Personalised deals only, rate limited per user."""
    own_data(who, user_id)
    await state.sync()
    return JSONAnswer(await state.deals_batcher.submit(num_deals, user_id))
