"""``/products`` and ``/profiles``: the catalogue and user profiles change while the service runs (admin).

Each upsert is committed to the event store before the answer (durable), then
applied in this worker at once and in every other worker at its next sync:
a product's current price, cost and stock are used by the next deal answer
(stock 0: no deal; never below the margin floor of the new cost); a new
user's profile drives the demographic fallback at once. New products join
the catalogue (content and collaborative models) at the next ``train`` /
``batch-process``, which learn from the stored rows.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from recsys.service.deps import ERRORS, PREFIX, Admin, State
from recsys.service.schemas import ErrorResponse, ProductsRequest, ProfilesRequest, UpsertResponse

router = APIRouter(prefix=PREFIX, tags=["admin"])

_STORE = {**ERRORS, 503: {"model": ErrorResponse, "description": "the event store is unavailable or missing"}}


@router.put("/products", response_model=UpsertResponse, responses=_STORE)
async def products(body: ProductsRequest, who: Admin, state: State) -> dict[str, Any]:
    """Insert or update products (name, category, description, price, cost, stock; fields left out keep
    their value); durable before the answer; deals use the new price, cost and stock at once."""
    records = [p.model_dump(exclude_none=True) for p in body.products]
    return {"written": await state.upsert_products(records)}


@router.put("/profiles", response_model=UpsertResponse, responses=_STORE)
async def profiles(body: ProfilesRequest, who: Admin, state: State) -> dict[str, Any]:
    """Insert or update user profiles (region, age group, spending tier; fields left out keep their value);
    durable before the answer; a new user's profile drives the demographic fallback at once."""
    records = [p.model_dump(exclude_none=True) for p in body.profiles]
    return {"written": await state.upsert_profiles(records)}
