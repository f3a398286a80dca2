"""``/events``: new events into the shared live history (admin)."""

from __future__ import annotations

import pandas as pd
from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError

from recsys.service.deps import ERRORS, PREFIX, Admin, JSONAnswer, State
from recsys.service.schemas import EventsRequest, EventsResponse

router = APIRouter(prefix=PREFIX, tags=["admin"])


def _refuse(i: int, field: str, msg: str) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("body", "events", i, field), "msg": msg}])


@router.post("/events", response_model=EventsResponse, responses=ERRORS)
async def events(body: EventsRequest, who: Admin, state: State) -> JSONAnswer:
    """New events: committed to the event store before the answer (durable), counted at once in Stage 1
    by every worker (each applies the store before its next answer).
    `new_users`: the users no earlier event (trained on, or posted before) names."""
    unknown = [(i, e.product_id) for i, e in enumerate(body.events) if not state.knows_product(e.product_id)]
    if unknown:
        i, product = unknown[0]
        raise _refuse(i, "product_id", f"unknown product {product!r} "
                                       f"({len(unknown)} event(s) name products not in the catalogue)")
    now = pd.Timestamp(state.clock())
    latest = ((now.tz_convert("UTC").tz_localize(None) if now.tzinfo else now) + state.event_clock_skew).to_pydatetime()
    future = [i for i, e in enumerate(body.events) if e.timestamp > latest]  # naive UTC datetimes (the schema's)
    if future:
        raise _refuse(future[0], "timestamp", f"timestamp in the future: later than the service's clock plus "
                                              f"{state.event_clock_skew.total_seconds():g} s of allowed skew "
                                              f"({len(future)} event(s))")
    mode = "python" if state.store is not None else "json"  # the store takes datetimes; a Redis log JSON
    records = [e.model_dump(mode=mode) for e in body.events]
    users = {r["user_id"] for r in records}
    candidates = await state.new_user_candidates(users)  # before the write: not named by earlier posts here
    entry_id = await state.append_events(records)
    last_id = int(entry_id) if state.store is not None else 0  # a store gives a post's events ids in a run
    new_users = await state.new_users(candidates, last_id - len(records) + 1, last_id)  # I/O: another writer's
    return JSONAnswer({"events": len(records), "users_updated": len(users), "new_users": new_users,
                       "purchases": sum(r["event_type"] == "purchase" for r in records),
                       "shared": state.event_log.kind == "redis", "durable": state.store is not None,
                       "entry_id": entry_id})  # serialised as is (the model documents it; the fuzz test checks it)
