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
``/events``              POST    new events, durable, counted at once in Stage 1    admin
``/products``            PUT     upsert products (price, cost, stock at once)       admin
``/profiles``            PUT     upsert user profiles (region, age group, tier)     admin
``/segments``            GET     segments and clustering info                       admin
``/model-info``          GET     what is trained, on which data, job states         admin
``/batch-process``       POST    Stage 2 job in the background (202)                admin
``/train``               POST    retrain in the background (202)                    admin
``/jobs/{kind}``         GET     state of the latest job of that kind               admin
=======================  ======  ================================================  =====================

With an event store (``recsys serve`` always has one: SQLite in the model
directory by default, ``--database postgresql://...``), ``/events``,
``/products`` and ``/profiles`` answer 2xx only after their commit; every
worker applies the stored rows after its model's training cutoff before
answering; ``/train`` and ``/batch-process`` both retrain on the base data
plus the store up to a cutoff (:mod:`recsys.service.loop`). Also
and ``/health`` (liveness), ``/ready`` (readiness), ``/metrics`` (Prometheus),
``/openapi.json``, ``/docs`` and ``/redoc`` (served from the packaged
assets of ``fastapi-offline``: no CDN) without a token; the demo page ``/demo`` and its JSON paths under
``/demo/api`` (the user's token, or admin; :mod:`recsys.service.demo`). Before any of it,
:class:`~recsys.service.limits.LimitsMiddleware` enforces the header, body,
per-client and token limits without reading the body. Status codes (:mod:`recsys.service.errors`): 401 no or
unknown token; 403 a user's token for another user's data or an admin path;
422 bad input (the body names the field; the engine's checks raise
:class:`~recsys.validation.InvalidRequest`); 429 past the deal rate limit
(``Retry-After``); 409 a job of that kind is running; 503 a store the workers
share (Redis) does not answer (``Retry-After``); 500 a server fault, logged
with its traceback, answered with a request id only. No input answers 500
(fuzzed with schemathesis).

Layout: one router per area (:mod:`recsys.service.routers`), shared state
through dependencies (:mod:`recsys.service.deps`), settings read once
(:mod:`recsys.service.settings`). The service reaches the engine only
through its public methods (enforced by ``tests/test_service_layering.py``).

Several workers (``recsys serve --workers N --redis URL``) share through Redis
the live history, the job states, the deal rate limit
(:class:`~recsys.service.rate_limit_redis.RedisRateLimiter`: a user's limit
holds over all workers together) and the model: a ``train`` job saves its
engine into the model directory and publishes its version, and every worker
loads it in the background and swaps it in (:mod:`recsys.service.state`);
``model-info`` says which engine version a worker serves.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pandas as pd
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from recsys._version import __version__
from recsys.deals.rate_limit import RateLimiter
from recsys.service import demo
from recsys.service.auth import KeysFile, KeyStore
from recsys.service.deps import PREFIX
from recsys.service.errors import InternalErrorMiddleware, add_error_handlers
from recsys.service.history import EventLog, LocalEventLog
from recsys.service.jobs import JobLock
from recsys.service.limits import Limits, LimitsMiddleware
from recsys.service.metrics import MetricsMiddleware, RequestMetrics
from recsys.service.routers import ROUTERS
from recsys.service.state import ServiceState
from recsys.serving.engine import RecommendationEngine
from recsys.serving.model_dir import utc_now
from recsys.store import EventStore

__all__ = ["API_DESCRIPTION", "PREFIX", "create_app", "utc_now"]

API_DESCRIPTION = """\
Personalised e-commerce recommendations in three stages: **Stage 1** real-time item k-NN on the live
event history (`/realtime`), **Stage 2** batch segmentation, demand and seasonality (`/batch-process`,
`/segments`), **Stage 3** hybrid recommendations with personalised deals (`/full`, `/deals/{user_id}`).

**Authentication**: every `/recommendations/enhanced/...` path needs `Authorization: Bearer <token>`
(`recsys keys add`); a user's token reads only that user's data, admin paths need an admin token.
Bodies above the configured size (1 MB by default) get 413, oversized headers 431, a client past its
request rate or concurrency 429.

**Numbers**: money (`price`, `original_price`, `deal_price`) is rounded to cents (half up) in every
answer, every other fraction (`score`, `discount_percentage`, ...) to 4 decimals; the engine keeps full
precision internally. Times are ISO 8601 UTC strings.

**Errors**: 401 no or unknown token, 403 not yours, 409 a job is running, 413/431 too large,
422 bad input (`detail` names the field), 429 rate limited (`Retry-After`), 503 a shared store is down
(`Retry-After`), 500 a server fault (a `request_id` names the logged traceback).
"""

TAGS = [
    {"name": "recommendations", "description": "A user's recommendations and deals (the user's token, or an admin's)."},
    {"name": "admin", "description": "Live events, segments, model information and background jobs (admin token)."},
    {"name": "operations", "description": "Liveness, readiness and Prometheus metrics (no token)."},
    {"name": "demo", "description": "The JSON paths of the demo page `/demo` (the user's token, or an admin's)."},
]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Shared stores that do not answer stop the worker at start, not on a request; jobs and loads
    finish before the stores close."""
    state: ServiceState = app.state.service
    try:
        ping = getattr(state.event_log, "ping", None)
        if ping is not None:
            await ping()
        ping_limiter = getattr(state.rate_limiter, "ping", None)
        if ping_limiter is not None:
            ping_limiter()
        await state.job_lock.ping()
    except Exception as err:
        failed = getattr(app.state, "on_startup_failure", None)
        if failed is not None:  # recsys serve: one line and exit, no respawn
            failed(str(err))
        raise
    schedule = None
    if state.store is not None:
        await state.sync()  # catch up with the store before the first answer
        every = app.state.batch_every
        if every:
            schedule = asyncio.create_task(state.run_scheduled(every))
    yield
    if schedule is not None:
        schedule.cancel()
        await asyncio.gather(schedule, return_exceptions=True)
    await state.wait_jobs()
    await state.wait_engine_load()
    if state.decision_log is not None:
        state.decision_log.flush()
    await state.event_log.close()
    await state.job_lock.close()
    if state.store is not None and getattr(app.state, "owns_store", False):  # opened by recsys serve for this app
        await asyncio.to_thread(state.store.close)
    close_limiter = getattr(state.rate_limiter, "close", None)
    if close_limiter is not None:
        close_limiter()


def create_app(
    engine: RecommendationEngine,
    keys: KeyStore | KeysFile,
    clock: Callable[[], pd.Timestamp] = utc_now,
    event_log: EventLog | None = None,
    rate_limiter: RateLimiter | None = None,
    model_dir: str | pathlib.Path | None = None,
    engine_version: str | None = None,
    multiprocess_metrics: bool = False,
    store: EventStore | None = None,
    base_dir: str | pathlib.Path | None = None,
    batch_every: float | None = None,
    limits: Limits | None = None,
    job_lock: JobLock | None = None,
    event_clock_skew_seconds: float = 300.0,
    on_startup_failure: Callable[[str], None] | None = None,
) -> FastAPI:
    """The service around a trained ``engine``.

    ``keys``: the accepted API keys. ``clock``: the time of job states and of
    engines trained by ``train`` jobs (answers' ``timestamp`` and ``deal_expiry``
    come from the engine's ``now``: build it with the same clock). ``event_log``: the shared live history
    (:class:`~recsys.service.history.RedisEventLog` for several workers);
    in-process by default. ``rate_limiter``: counts deal requests for every
    engine served, passed into each deals call
    (:class:`~recsys.service.rate_limit_redis.RedisRateLimiter` for several
    workers); in-process by default. ``model_dir``: where
    ``engine`` was loaded from (``train`` jobs save there; engine versions
    published by other workers are loaded from there) and ``engine_version``
    the save it was loaded from (default: the directory's current one).
    ``multiprocess_metrics``: sum every worker's metrics (``PROMETHEUS_MULTIPROC_DIR`` set).
    ``limits``: :class:`~recsys.service.limits.Limits` (default: its defaults). ``job_lock``: one
    background job at a time (:mod:`recsys.service.jobs`; default: in this process).
    ``event_clock_skew_seconds``: how far in the future (by ``clock``) an event's timestamp may be.
    ``on_startup_failure``: called with the cause when a shared store does not answer at start
    (``recsys serve``: one line, then the worker exits).
    ``store``: the event store (events durable before the answer, products, profiles; the worker
    catches up with it before serving); ``base_dir``: the base data set that ``train`` and
    ``batch-process`` add the stored data to; ``batch_every``: seconds between scheduled batches.
    """
    state = ServiceState(engine, event_log or LocalEventLog(), clock, rate_limiter, model_dir, engine_version,
                         job_lock=job_lock, event_clock_skew_seconds=event_clock_skew_seconds, store=store,
                         base_dir=base_dir)
    app = FastAPIOffline(
        title="recsys recommendation service",
        version=__version__,
        summary="Real-time k-NN, hybrid recommendations with personalised deals, segments, batch jobs",
        description=API_DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=_lifespan,
    )
    app.state.service, app.state.keys = state, keys
    app.state.on_startup_failure = on_startup_failure
    app.state.batch_every = batch_every
    app.state.metrics = metrics = RequestMetrics(multiprocess_metrics)
    for router in (*ROUTERS, demo.router):
        app.include_router(router)
    add_error_handlers(app)
    templates = {route.endpoint: route.path for route in app.routes if hasattr(route, "endpoint")}
    app.add_middleware(InternalErrorMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics, templates=templates)  # times the 500s too
    app.add_middleware(LimitsMiddleware, limits=limits or Limits(), keys=lambda: app.state.keys,
                       protected=(PREFIX, "/demo/api"))  # outermost: before anything reads the body
    return app
