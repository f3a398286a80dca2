"""``/health`` (liveness), ``/ready`` (readiness) and ``/metrics`` (Prometheus): no token.

``/health`` always answers 200 while the worker runs (a supervisor restarts a
worker that does not answer it); its ``status`` is ``degraded``, with the
``causes``, when a store the data paths need (the shared live history, the
deal rate limit, the job lock) does not answer. ``/ready`` answers 200 only
when the worker can serve (model loaded, every store answering) and 503 with
the causes otherwise: a load balancer sends requests only to ready workers.
Both first catch up with the shared log, so the versions they report are the
ones served now.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from recsys.service.deps import State
from recsys.service.history import SharedStoreUnavailable
from recsys.service.metrics import render_metrics
from recsys.service.schemas import Health
from recsys.service.state import ServiceState

router = APIRouter(tags=["operations"])


async def _health(state: ServiceState) -> dict[str, Any]:
    causes = await state.unavailable()
    if not causes:
        try:
            await state.sync()  # a newer published engine or batch version is picked up now
        except SharedStoreUnavailable as err:
            causes.append(str(err))
    if not state.engine.is_trained:
        causes.append("no trained model loaded")
    return {"status": "degraded" if causes else "ok", "causes": causes, "model_loaded": state.engine.is_trained,
            "shared_history": state.event_log.kind, "events_applied": state.events_applied, "pid": os.getpid(),
            "engine_version": state.engine_version, "batch_version": state.batch_version,
            "engine_load_error": state.engine_load_error}


@router.get("/health", response_model=Health)
async def health(state: State) -> dict[str, Any]:
    """Liveness (always 200 while the worker runs): `ok`, or `degraded` with the causes when a store the
    data paths need does not answer; the engine and Stage 2 versions this worker serves."""
    return await _health(state)


@router.get("/ready", response_model=Health, responses={503: {"model": Health, "description": "not ready"}})
async def ready(state: State) -> JSONResponse:
    """Readiness: 200 when this worker can answer the data paths, 503 (with the causes) when not."""
    body = await _health(state)
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
async def prometheus_metrics(request: Request) -> Response:
    """Request counts and latency histograms per route, in the Prometheus text format."""
    body, content_type = render_metrics(request.app.state.metrics)
    return Response(body, media_type=content_type)
