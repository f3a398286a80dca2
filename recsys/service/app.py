"""The HTTP recommendation service: FastAPI app factory ``create_app(engine, keys, clock=...)``.

Paths (the design's, ``../shared/seed``, "Enhanced ML Service Endpoints"),
all under ``/recommendations/enhanced``; who may call them:

=======================  ======  ================================================  =====================
path                     method  answer                                            token
=======================  ======  ================================================  =====================
``/realtime``            POST    Stage 1 k-NN (fallback for unknown users)          the user's, or admin
``/full``                POST    Stage 3 hybrid + deals, user profile, strategy     the user's, or admin
``/deals/{user_id}``     GET     deals only (``?num_deals=``), rate limited: 429    the user's, or admin
``/demo-flow``           GET     one user through every stage (``?user_id=``)       the user's, or admin
``/events``              POST    new events, counted at once in Stage 1             admin
``/segments``            GET     segments and clustering info                       admin
``/model-info``          GET     what is trained, on which data, job states         admin
``/batch-process``       POST    Stage 2 job in the background (202)                admin
``/train``               POST    retrain in the background (202)                    admin
``/jobs/{kind}``         GET     state of the latest job of that kind               admin
=======================  ======  ================================================  =====================

and ``/health``, ``/metrics`` (Prometheus), ``/openapi.json``, ``/docs``
without a token. Status codes: 401 no or unknown token; 403 a user's token
for another user's data or an admin path; 422 bad input (the body names the
field); 429 past the deal rate limit (``Retry-After``); 409 a job of that kind
is running; 503 a store the workers share (Redis) does not answer
(``Retry-After``). No handler answers 500 on any input (fuzzed with schemathesis).

Several workers (``recsys serve --workers N --redis URL``) share through Redis
the live history, the job states, the deal rate limit
(:class:`~recsys.service.rate_limit_redis.RedisRateLimiter`: a user's limit
holds over all workers together) and the model: a ``train`` job saves its
engine into the model directory and publishes its version, and every worker
loads it in the background and swaps it in (:mod:`recsys.service.state`);
``model-info`` says which engine version a worker serves.
"""

from __future__ import annotations

import logging
import math
import os
import pathlib
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from recsys.deals.rate_limit import RateLimiter, RateLimitExceeded
from recsys.service.auth import KeyStore, Principal
from recsys.service.batching import RequestBatcher
from recsys.service.clock import utc_now
from recsys.service.history import EventLog, LocalEventLog, SharedStoreUnavailable
from recsys.service.metrics import MetricsMiddleware, RequestMetrics, render_metrics
from recsys.service.schemas import (
    MAX_DEALS,
    USER_ID_PATTERN,
    BatchJob,
    DealsResponse,
    DemoFlowResponse,
    ErrorResponse,
    EventsRequest,
    EventsResponse,
    FullRequest,
    FullResponse,
    Health,
    JobAccepted,
    ModelInfoResponse,
    RealtimeRequest,
    RealtimeResponse,
    SegmentsResponse,
)
from recsys.service.state import JobInProgress, ServiceState
from recsys.serving.engine import RecommendationEngine

__all__ = ["PREFIX", "create_app", "utc_now"]

PREFIX = "/recommendations/enhanced"
log = logging.getLogger("recsys.service")


class JSONAnswer(Response):
    """An engine answer (plain JSON types) serialised by orjson. Handlers return it
    directly, so FastAPI does not re-validate the dict against the response model
    (the model still documents the answer in the OpenAPI schema; the fuzz test
    checks that answers conform to it)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>` from `recsys keys add`")

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "no token, or an unknown one"},
    403: {"model": ErrorResponse, "description": "the token may not read this"},
    422: {"model": ErrorResponse, "description": "bad input; `detail` names the field"},
}


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The token's owner; 401 without a token or with an unknown one (the token is never logged)."""
    who = request.app.state.keys.authenticate(credentials.credentials if credentials else None)
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


def create_app(
    engine: RecommendationEngine,
    keys: KeyStore,
    clock: Callable[[], pd.Timestamp] = utc_now,
    event_log: EventLog | None = None,
    rate_limiter: RateLimiter | None = None,
    model_dir: str | pathlib.Path | None = None,
    engine_version: str | None = None,
) -> FastAPI:
    """The service around a trained ``engine``.

    ``keys``: the accepted API keys. ``clock``: the time of job states and of
    engines trained by ``train`` jobs (answers' ``timestamp`` and ``deal_expiry``
    come from the engine's ``now``: build it with the same clock). ``event_log``: the shared live history
    (:class:`~recsys.service.history.RedisEventLog` for several workers);
    in-process by default. ``rate_limiter``: counts deal requests for every
    engine served (:class:`~recsys.service.rate_limit_redis.RedisRateLimiter`
    for several workers); in-process by default. ``model_dir``: where
    ``engine`` was loaded from (``train`` jobs save there; engine versions
    published by other workers are loaded from there) and ``engine_version``
    the save it was loaded from (default: the directory's current one).
    """
    state = ServiceState(engine, event_log or LocalEventLog(), clock, rate_limiter, model_dir, engine_version)
    metrics = RequestMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        ping = getattr(state.event_log, "ping", None)
        if ping is not None:
            await ping()  # a shared log that does not answer stops the worker at start, not on a request
        ping_limiter = getattr(state.rate_limiter, "ping", None)
        if ping_limiter is not None:
            ping_limiter()
        yield
        await state.wait_jobs()
        await state.wait_engine_load()
        await state.event_log.close()
        close_limiter = getattr(state.rate_limiter, "close", None)
        if close_limiter is not None:
            close_limiter()

    app = FastAPI(
        title="recsys recommendation service",
        version="1.0",
        summary="Real-time k-NN, hybrid recommendations with personalised deals, segments, batch jobs",
        description=(__doc__ or "").split("\n\n")[0],
        lifespan=lifespan,
    )
    app.state.service = state
    app.state.keys = keys

    def answer(response: dict[str, Any]) -> JSONAnswer:
        return JSONAnswer(response)

    # concurrent full/deals requests share one engine pass (the engine serving now: a train job may swap it)
    full_batcher = RequestBatcher(lambda key, users: state.engine.full_many(users, *key))
    deals_batcher = RequestBatcher(lambda num_deals, users: state.engine.deals_many(users, num_deals))
    app.state.batchers = {"full": full_batcher, "deals": deals_batcher}

    # -- errors -----------------------------------------------------------------------------------
    @app.exception_handler(RateLimitExceeded)
    async def rate_limited(request: Request, err: RateLimitExceeded) -> JSONResponse:
        retry = max(0.0, float(err.retry_after))
        return JSONResponse({"detail": str(err), "retry_after_seconds": round(retry, 3)}, status_code=429,
                            headers={"Retry-After": str(max(1, math.ceil(retry)))})

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, err: ValueError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=422)

    @app.exception_handler(PermissionError)
    async def forbidden(request: Request, err: PermissionError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=403)

    @app.exception_handler(SharedStoreUnavailable)
    async def store_unavailable(request: Request, err: SharedStoreUnavailable) -> JSONResponse:
        log.error("%s", err)  # names the store's URL; the answer does not
        return JSONResponse({"detail": f"{err.what} is unavailable; retry shortly",
                             "retry_after_seconds": 1.0}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(JobInProgress)
    async def busy(request: Request, err: JobInProgress) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=409)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        # the default body, without echoing inputs back (they may be large or personal)
        detail = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in err.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(Exception)
    async def crashed(request: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(err).__name__})"}, status_code=500)

    # -- per-user paths ----------------------------------------------------------------------------
    @app.post(f"{PREFIX}/realtime", response_model=RealtimeResponse, responses=_ERRORS, tags=["recommendations"])
    async def realtime(body: RealtimeRequest, who: User) -> JSONAnswer:
        """Stage 1: real-time item k-NN on the live history; the demographic fallback for unknown users."""
        own_data(who, body.user_id)
        await state.sync()
        return answer(state.engine.realtime(body.user_id, body.num_recommendations))

    @app.post(f"{PREFIX}/full", response_model=FullResponse, responses=_ERRORS, tags=["recommendations"])
    async def full(body: FullRequest, who: User) -> JSONAnswer:
        """Stage 3: hybrid recommendations with deals. Past the deal rate limit the recommendations
        still come, with `deals: []` and `deals_retry_after_seconds`."""
        own_data(who, body.user_id)
        await state.sync()
        return answer(await full_batcher.submit((body.num_recommendations, body.include_deals), body.user_id))

    @app.get(f"{PREFIX}/deals/{{user_id}}", response_model=DealsResponse, tags=["recommendations"],
             responses={**_ERRORS, 429: {"model": ErrorResponse, "description": "deal rate limit; see Retry-After"}})
    async def deals(
        user_id: Annotated[str, Path(pattern=USER_ID_PATTERN)],
        who: User,
        num_deals: Annotated[int, Query(ge=1, le=MAX_DEALS)] = 5,
    ) -> JSONAnswer:
        """Personalised deals only, rate limited per user."""
        own_data(who, user_id)
        await state.sync()
        return answer(await deals_batcher.submit(num_deals, user_id))

    @app.get(f"{PREFIX}/demo-flow", response_model=DemoFlowResponse, tags=["recommendations"],
             responses={**_ERRORS, 429: {"model": ErrorResponse, "description": "deal rate limit; see Retry-After"}})
    async def demo_flow(
        who: User,
        user_id: Annotated[str | None, Query(pattern=USER_ID_PATTERN)] = None,
    ) -> JSONAnswer:
        """One user through Stage 1, 2 and 3 (default: the token's user; admins: `user_0`)."""
        if user_id is None and not who.admin:
            user_id = who.user_id
        if user_id is not None:
            own_data(who, user_id)
        await state.sync()
        return answer(state.engine.demo_flow(user_id))

    # -- admin paths ---------------------------------------------------------------------------------
    @app.post(f"{PREFIX}/events", response_model=EventsResponse, responses=_ERRORS, tags=["admin"])
    async def events(body: EventsRequest, who: Admin) -> dict[str, Any]:
        """New events: appended to the shared live history and counted at once in Stage 1 by every worker."""
        unknown = [(i, e.product_id) for i, e in enumerate(body.events) if e.product_id not in state.product_ids]
        if unknown:
            i, product = unknown[0]
            raise RequestValidationError([{
                "type": "value_error", "loc": ("body", "events", i, "product_id"),
                "msg": f"unknown product {product!r} ({len(unknown)} event(s) name products not in the catalogue)"}])
        records = [e.model_dump(mode="json") for e in body.events]
        entry_id = await state.append_events(records)
        return {"events": len(records), "users_updated": len({r["user_id"] for r in records}),
                "new_users": sorted({r["user_id"] for r in records} - set(state.engine.dataset_.users["user_id"])),
                "purchases": sum(r["event_type"] == "purchase" for r in records),
                "shared": state.event_log.kind == "redis", "entry_id": entry_id}

    @app.get(f"{PREFIX}/segments", response_model=SegmentsResponse, responses=_ERRORS, tags=["admin"])
    async def segments(who: Admin) -> JSONAnswer:
        """Segments (size, average age, dominant region, age group, tier, price sensitivity) and clustering info."""
        await state.sync()
        return answer(state.engine.segments())

    @app.get(f"{PREFIX}/model-info", response_model=ModelInfoResponse, responses=_ERRORS, tags=["admin"])
    async def model_info(who: Admin) -> dict[str, Any]:
        """What is trained, when, on which data; the latest batch-process and train jobs (a failed job says why);
        which Stage 2 and engine versions this worker serves (a failed load of a published one says why)."""
        await state.sync()
        info = state.engine.model_info()
        info.update(batch_job=await state.job("batch-process"), train_job=await state.job("train"),
                    live_events_applied=state.events_applied, shared_history=state.event_log.kind,
                    served_batch_version=state.batch_version, served_engine_version=state.engine_version,
                    engine_load_error=state.engine_load_error, worker_pid=os.getpid())
        return info

    @app.post(f"{PREFIX}/batch-process", response_model=JobAccepted, status_code=202, tags=["admin"],
              responses={**_ERRORS, 409: {"model": ErrorResponse, "description": "a batch job is running"}})
    async def batch_process(who: Admin) -> dict[str, Any]:
        """Stage 2 (SVD, segments, demand, seasonality) in the background; the new artifacts are swapped in
        atomically when complete. Requests meanwhile are answered from the previous model."""
        job = await state.start_job("batch-process")
        return {"status": "accepted", "job": job, "status_url": f"{PREFIX}/jobs/batch-process"}

    @app.post(f"{PREFIX}/train", response_model=JobAccepted, status_code=202, tags=["admin"],
              responses={**_ERRORS, 409: {"model": ErrorResponse, "description": "a train job is running"}})
    async def train(who: Admin) -> dict[str, Any]:
        """Retrain every stage on the model's data in the background; the new engine (with the live
        events replayed) replaces the served one atomically, in every worker (saved into the model
        directory and loaded by the others)."""
        job = await state.start_job("train")
        return {"status": "accepted", "job": job, "status_url": f"{PREFIX}/jobs/train"}

    @app.get(f"{PREFIX}/jobs/{{kind}}", response_model=BatchJob, tags=["admin"],
             responses={**_ERRORS, 404: {"model": ErrorResponse, "description": "no job of that kind yet"}})
    async def job_status(kind: Annotated[str, Path(pattern="^(batch-process|train)$")], who: Admin) -> dict[str, Any]:
        """The latest job of `kind` (`batch-process` or `train`): running, completed, or failed with the error."""
        job = await state.job(kind)
        if job is None:
            raise HTTPException(404, f"no {kind} job has run yet")
        return job

    # -- operations ----------------------------------------------------------------------------------
    @app.get("/health", response_model=Health, tags=["operations"])
    async def health() -> dict[str, Any]:
        """Liveness: the model is loaded; which live history is used."""
        return {"status": "ok", "model_loaded": hasattr(state.engine, "hybrid_"),
                "shared_history": state.event_log.kind, "events_applied": state.events_applied, "pid": os.getpid(),
                "engine_version": state.engine_version}

    @app.get("/metrics", tags=["operations"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
    async def prometheus_metrics() -> Response:
        """Request counts and latency histograms per route, in the Prometheus text format."""
        body, content_type = render_metrics(metrics)
        return Response(body, media_type=content_type)

    templates = {route.endpoint: route.path for route in app.routes if hasattr(route, "endpoint")}
    app.add_middleware(MetricsMiddleware, metrics=metrics, templates=templates)
    return app
