"""Pydantic models of every request and response of the service (the OpenAPI schema).

Requests are strict and closed: an unknown field, a value of the wrong JSON
type (``"5"`` for an int), an id that is not an id or an out-of-range count
is a 422 whose body names the field. Responses carry the design's fields
(``../shared/seed``, "API Documentation") and allow the engine's extra fields
(``contributions``, ``deal_types``, ...).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from recsys.config import DEFAULT_CONFIG, EVENT_TYPES
from recsys.data.ids import ID_REGEX

__all__ = [
    "MAX_EVENTS_PER_REQUEST", "MAX_RECOMMENDATIONS", "USER_ID_PATTERN",
    "BatchJob", "Deal", "DealsResponse", "DemoFlowResponse", "ErrorResponse", "EventIn", "EventsRequest",
    "EventsResponse", "FullRequest", "FullResponse", "Health", "JobAccepted", "ModelInfoResponse", "Recommendation",
    "ProductIn", "ProductsRequest", "ProfileIn", "ProfilesRequest", "RealtimeRequest", "RealtimeResponse",
    "SegmentsResponse", "UpsertResponse", "UserId", "UserProfile",
]

MAX_RECOMMENDATIONS = 100
"""Upper bound of ``num_recommendations``: answers never allocate by the requested size."""
MAX_DEALS = DEFAULT_CONFIG.deals.max_deals
MAX_EVENTS_PER_REQUEST = 1000

USER_ID_PATTERN = ID_REGEX
"""The one id rule (:mod:`recsys.data.ids`, as the ``Dataset`` and the engine):
non-empty, no whitespace, at most 128 characters, a trailing newline refused."""
PRODUCT_ID_PATTERN = ID_REGEX

UserId = Annotated[str, StringConstraints(pattern=USER_ID_PATTERN)]
ProductId = Annotated[str, StringConstraints(pattern=PRODUCT_ID_PATTERN)]

_REQUEST = ConfigDict(extra="forbid", strict=True)
_RESPONSE = ConfigDict(extra="allow")


# ---------------------------------------------------------------------------- requests
class RealtimeRequest(BaseModel):
    """``POST /recommendations/enhanced/realtime``."""

    model_config = _REQUEST
    user_id: UserId
    num_recommendations: int = Field(5, ge=1, le=MAX_RECOMMENDATIONS)


class FullRequest(BaseModel):
    """``POST /recommendations/enhanced/full``."""

    model_config = _REQUEST
    user_id: UserId
    num_recommendations: int = Field(10, ge=1, le=MAX_RECOMMENDATIONS)
    include_deals: bool = True


ISO_8601 = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|z|[+-]\d{2}:?\d{2})?)?$")
"""The timestamp shapes accepted: a date, or a date and time with an optional zone (none: UTC)."""


def _iso_8601_string(value: Any) -> Any:
    """Timestamps come as ISO 8601 strings only: numbers (seconds? milliseconds?) are refused."""
    if not isinstance(value, str) or not ISO_8601.fullmatch(value):
        raise ValueError("timestamp must be an ISO 8601 string such as '2024-05-01T12:00:00Z'")
    return value


class EventIn(BaseModel):
    """One interaction event, as in the data set's ``events`` table. Strict: ``rating`` is an
    integer 1..5 and only on a ``review`` (where it is required); ``timestamp`` an ISO 8601
    string (a zone is converted to UTC; none means UTC), at most the service's clock skew
    (``recsys serve --event-clock-skew``, 300 s) in the future."""

    model_config = ConfigDict(extra="forbid")
    user_id: Annotated[UserId, Field(strict=True)]
    product_id: Annotated[ProductId, Field(strict=True)]
    event_type: Literal[EVENT_TYPES]  # type: ignore[valid-type]
    timestamp: Annotated[datetime, BeforeValidator(_iso_8601_string)]
    rating: Annotated[int, Field(strict=True, ge=1, le=5)] | None = Field(
        None, description="an integer 1..5: required on reviews, refused on other events")

    @field_validator("timestamp")
    @classmethod
    def _utc_in_range(cls, value: datetime) -> datetime:
        """Naive UTC (aware times converted), between 1970 and 2100."""
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        if not 1970 <= value.year <= 2100:
            raise ValueError(f"timestamp year {value.year} outside 1970..2100")
        return value

    @model_validator(mode="after")
    def _rating_on_reviews_only(self) -> EventIn:
        if self.event_type == "review" and self.rating is None:
            raise ValueError("a review needs a rating, an integer 1..5")
        if self.event_type != "review" and self.rating is not None:
            raise ValueError(f"a rating belongs on a review only, not on a {self.event_type!r} event")
        return self


class EventsRequest(BaseModel):
    """``POST /recommendations/enhanced/events``: new events, counted at once in Stage 1."""

    model_config = _REQUEST
    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS_PER_REQUEST)


class ProductIn(BaseModel):
    """A product upsert: fields left out keep their value (a new product needs name, category, price, stock
    to join the catalogue at the next training)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    product_id: ProductId
    name: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None
    category: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    description: Annotated[str, StringConstraints(max_length=5000)] | None = None
    price: float | None = Field(None, gt=0, allow_inf_nan=False)
    cost: float | None = Field(None, gt=0, allow_inf_nan=False)
    stock: int | None = Field(None, ge=0, le=2**53)


class ProductsRequest(BaseModel):
    """``PUT /recommendations/enhanced/products``."""

    model_config = _REQUEST
    products: list[ProductIn] = Field(min_length=1, max_length=MAX_EVENTS_PER_REQUEST)


class ProfileIn(BaseModel):
    """A user profile upsert: fields left out keep their value."""

    model_config = ConfigDict(extra="forbid", strict=True)
    user_id: UserId
    region: Literal[DEFAULT_CONFIG.region_names] | None = None  # type: ignore[valid-type]
    age_group: Literal[DEFAULT_CONFIG.age_group_names] | None = None  # type: ignore[valid-type]
    spending_tier: Literal[DEFAULT_CONFIG.spending_tier_names] | None = None  # type: ignore[valid-type]


class ProfilesRequest(BaseModel):
    """``PUT /recommendations/enhanced/profiles``."""

    model_config = _REQUEST
    profiles: list[ProfileIn] = Field(min_length=1, max_length=MAX_EVENTS_PER_REQUEST)


class UpsertResponse(BaseModel):
    model_config = _RESPONSE
    written: int = Field(description="rows committed to the event store (durable)")


# ---------------------------------------------------------------------------- responses
class ErrorResponse(BaseModel):
    """Every 4xx/5xx body: ``detail`` says why (for 422: a list naming each bad field)."""

    detail: Any
    retry_after_seconds: float | None = None
    request_id: str | None = Field(None, description="500 only: names the logged traceback")


class Recommendation(BaseModel):
    model_config = _RESPONSE
    product_id: str
    name: str
    category: str
    price: float
    score: float
    reason: str


class Deal(BaseModel):
    model_config = _RESPONSE
    product_id: str
    name: str
    category: str
    original_price: float
    deal_price: float
    discount_percentage: float
    deal_reason: str
    deal_expiry: str
    is_regional_deal: bool
    score: float


class UserProfile(BaseModel):
    model_config = _RESPONSE
    region: str | None
    age_group: str | None
    spending_tier: str | None
    price_sensitivity: float | None


class RealtimeResponse(BaseModel):
    model_config = _RESPONSE
    user_id: str
    recommendations: list[Recommendation]
    method: str
    stage: str
    latency_target: str
    timestamp: str


class FullResponse(BaseModel):
    model_config = _RESPONSE
    user_id: str
    recommendations: list[Recommendation]
    deals: list[Deal]
    user_profile: UserProfile
    strategy: str
    timestamp: str
    deals_retry_after_seconds: float | None = Field(
        None, description="set when the deal rate limit was reached: deals is empty, retry after this many seconds")


class DealsResponse(BaseModel):
    model_config = _RESPONSE
    user_id: str
    deals: list[Deal]
    num_deals: int
    timestamp: str


class SegmentsResponse(BaseModel):
    model_config = _RESPONSE
    user_segments: dict[str, dict[str, Any]]
    clustering_info: dict[str, Any]


class ModelInfoResponse(BaseModel):
    model_config = _RESPONSE
    trained: bool
    batch_job: BatchJob | None = None
    train_job: BatchJob | None = None
    served_engine_version: str | None = Field(
        None, description="the engine save (model directory `engine/sNNNNNN`) this worker serves; None: not saved")
    engine_load_error: str | None = Field(
        None, description="why this worker could not load the latest published engine (it serves the previous one)")
    worker_pid: int | None = Field(None, description="the worker process that answered")


class DemoFlowResponse(BaseModel):
    model_config = _RESPONSE
    user_id: str
    user_profile: UserProfile
    stages: dict[str, Any]
    timestamp: str


class EventsResponse(BaseModel):
    model_config = _RESPONSE
    events: int
    users_updated: int
    new_users: list[str]
    purchases: int
    shared: bool = Field(description="true when the event was appended to the shared (Redis) event log")
    durable: bool = Field(False, description="true when the events were committed to the event store before "
                                             "this answer (a crash afterwards loses none)")


class BatchJob(BaseModel):
    """State of the latest background job (``batch-process`` or ``train``)."""

    model_config = _RESPONSE
    job_id: str
    kind: Literal["batch-process", "train"]
    status: Literal["running", "completed", "failed"]
    started_at: str
    finished_at: str | None = None
    error: str | None = None
    result: dict[str, Any] | None = None


class JobAccepted(BaseModel):
    model_config = _RESPONSE
    status: Literal["accepted"]
    job: BatchJob
    status_url: str


class DealPolicyResponse(BaseModel):
    model_config = _RESPONSE
    experiment: dict[str, Any] = Field(description="the A/B experiment over deal policies (name '' = none)")
    exploration: dict[str, Any] = Field(description="the deals' logging policy (exploration, holdout)")
    engine_version: str | None = Field(None, description="the engine save that carries it (None: this worker only)")


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(description="degraded: a store the data paths need does not answer")
    causes: list[str] = Field(default_factory=list, description="why degraded (each store and its error)")
    model_loaded: bool
    shared_history: Literal["redis", "in-process"]
    events_applied: int
    pid: int
    engine_version: str | None = Field(None, description="the engine save this worker serves (None: not saved)")
    batch_version: str | None = Field(None, description="the Stage 2 artifact version this worker serves")
    engine_load_error: str | None = Field(None, description="why a published engine could not be loaded here")


ModelInfoResponse.model_rebuild()
