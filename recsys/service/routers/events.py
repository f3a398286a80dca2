"""``/events``: new events into the shared live history (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError

from recsys.service.deps import ERRORS, PREFIX, Admin, State
from recsys.service.schemas import EventsRequest, EventsResponse

router = APIRouter(prefix=PREFIX, tags=["admin"])


@router.post("/events", response_model=EventsResponse, responses=ERRORS)
async def events(body: EventsRequest, who: Admin, state: State) -> dict[str, Any]:
    """New events: committed to the event store before the answer (durable), counted at once in Stage 1
    by every worker (this one before it answers, the others at their next request)."""
    unknown = [(i, e.product_id) for i, e in enumerate(body.events) if not state.knows_product(e.product_id)]
    if unknown:
        i, product = unknown[0]
        raise RequestValidationError([{
            "type": "value_error", "loc": ("body", "events", i, "product_id"),
            "msg": f"unknown product {product!r} ({len(unknown)} event(s) name products not in the catalogue)"}])
    mode = "python" if state.store is not None else "json"  # the store takes datetimes; a Redis log JSON
    records = [e.model_dump(mode=mode) for e in body.events]
    entry_id = await state.append_events(records)
    users = {r["user_id"] for r in records}
    return {"events": len(records), "users_updated": len(users),
            "new_users": sorted(u for u in users if not state.engine.knows_user(u)),
            "purchases": sum(r["event_type"] == "purchase" for r in records),
            "shared": state.event_log.kind == "redis", "durable": state.store is not None, "entry_id": entry_id}
