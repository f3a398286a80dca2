"""``/health`` and ``/metrics`` (Prometheus): no token."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Request, Response

from recsys.service.deps import State
from recsys.service.metrics import render_metrics
from recsys.service.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health)
async def health(state: State) -> dict[str, Any]:
    """Liveness: the model is loaded; which live history is used."""
    return {"status": "ok", "model_loaded": state.engine.is_trained, "shared_history": state.event_log.kind,
            "events_applied": state.events_applied, "pid": os.getpid(), "engine_version": state.engine_version}


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
async def prometheus_metrics(request: Request) -> Response:
    """Request counts and latency histograms per route, in the Prometheus text format."""
    body, content_type = render_metrics(request.app.state.metrics)
    return Response(body, media_type=content_type)
