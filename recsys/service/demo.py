"""The demo page: a person picks a user and sees the recommendations, each strategy's contribution and reason,
the deals with their prices, discount, reason and expiry, and the user's segment; posting an event (view,
cart, purchase) shows how the answer changes: at once in the Stage 1 real-time list (a purchased product
leaves it, the k-NN neighbours move), in Stage 3 and the deals after the next ``train``.

Paths (mounted by :func:`recsys.service.app.create_app`):

=========================  ======  =============================================================  ================
``/demo``                  GET     the page (``static/demo.html``; plain HTML, CSS and JavaScript)  none
``/demo/demo.js|.css``     GET     its script and style, packaged with the service               none
``/demo/api/me``           GET     the token's user, whether it is an admin's, suggested users    any token
``/demo/api/users/{id}``   GET     profile, segment with its summary, Stage 1 real-time list,     the user's, or
                                   Stage 3 recommendations with contributions and reasons, deals  admin
                                   (counts as a deal request)
``/demo/api/events``       POST    one view / cart / purchase of a product by the user, into the   the user's, or
                                   shared live history at the engine's clock                       admin
=========================  ======  =============================================================  ================

The page loads nothing from the network but these files (no CDN, no build step). A user's token sees and
posts only that user's data, as on the design's paths (:func:`recsys.service.deps.own_data`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict

from recsys.runs.names import segment_summary
from recsys.service.deps import ERRORS, JSONAnswer, State, User, own_data
from recsys.service.schemas import USER_ID_PATTERN, EventIn, ProductId, UserId

__all__ = ["STATIC", "router"]

STATIC = Path(__file__).parent / "static"
ASSETS = {"demo.js": "text/javascript", "demo.css": "text/css"}
SUGGESTED = 10
"""Admins get the first of ``user_0 .. user_9`` the model knows as suggestions (synthetic data's ids)."""

router = APIRouter(tags=["demo"])


class DemoEvent(BaseModel):
    """``POST /demo/api/events``: one event of the page's user, timed by the engine's clock."""

    model_config = ConfigDict(extra="forbid", strict=True)
    user_id: UserId
    product_id: ProductId
    event_type: Literal["view", "cart", "purchase"]


@router.get("/demo", include_in_schema=False)
async def page() -> FileResponse:
    """The demo page."""
    return FileResponse(STATIC / "demo.html", media_type="text/html")


@router.get("/demo/{asset}", include_in_schema=False)
async def asset(asset: str) -> FileResponse:
    """The page's script and style (only these two files)."""
    if asset not in ASSETS:
        raise HTTPException(404, f"no demo file {asset!r}")
    return FileResponse(STATIC / asset, media_type=ASSETS[asset])


@router.get("/demo/api/me", responses=ERRORS)
async def me(who: User, state: State) -> dict[str, Any]:
    """The token's owner; an admin also gets a few users to pick from."""
    suggested = [who.user_id] if not who.admin else \
        [u for u in (f"user_{i}" for i in range(SUGGESTED)) if state.engine.knows_user(u)]
    return {"user_id": who.user_id, "admin": who.admin, "suggested_users": suggested}


@router.get("/demo/api/users/{user_id}", responses=ERRORS)
async def user_view(user_id: Annotated[str, PathParam(pattern=USER_ID_PATTERN)], who: User,
                    state: State) -> JSONAnswer:
    """What the page shows of one user: the Stage 3 answer (recommendations with ``contributions`` and
    ``reason``, deals), the Stage 1 real-time list (which counts a posted event at once; Stage 3 and the
    deals see it after the next ``train``), the profile, and the segment with its summary."""
    own_data(who, user_id)
    await state.sync()
    engine = state.engine
    answer = engine.full(user_id, 10, include_deals=True, rate_limiter=state.rate_limiter)
    realtime = engine.realtime(user_id, 10)
    profile = engine.user_profile(user_id)
    segment = None
    if profile.get("segment"):
        fields = engine.segments()["user_segments"].get(profile["segment"], {})
        segment = {"name": profile["segment"], "summary": f"{segment_summary(fields)}; {fields.get('size')} users",
                   "fields": fields}
    return JSONAnswer({
        "user_id": user_id, "profile": profile, "segment": segment,
        "recommendations": answer["recommendations"], "deals": answer["deals"],
        "realtime": realtime["recommendations"], "realtime_method": realtime["method"],
        "deals_retry_after_seconds": answer.get("deals_retry_after_seconds"), "timestamp": answer["timestamp"],
    })


@router.post("/demo/api/events", responses=ERRORS)
async def post_event(body: DemoEvent, who: User, state: State) -> dict[str, Any]:
    """One event of the user (a user's token: their own only) into the shared live history, timed at the
    engine's clock (the data set's ``as_of`` for a model without a live clock); it counts at once."""
    own_data(who, body.user_id)
    if not state.engine.knows_product(body.product_id):
        raise RequestValidationError([{"type": "value_error", "loc": ("body", "product_id"),
                                       "msg": f"unknown product {body.product_id!r}"}])
    event = EventIn(user_id=body.user_id, product_id=body.product_id, event_type=body.event_type,
                    timestamp=state.engine.timestamp)
    record = event.model_dump(mode="json")
    entry_id = await state.append_events([record])
    return {"event": record, "entry_id": entry_id, "shared": state.event_log.kind == "redis"}
