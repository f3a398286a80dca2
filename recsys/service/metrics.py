"""Prometheus request counts and latency histograms (``GET /metrics``).

``recsys_http_requests_total{method, path, status}`` and
``recsys_http_request_duration_seconds{method, path}``, labelled by the route
*template* (``/recommendations/enhanced/deals/{user_id}``), never the raw
path, so the label set stays bounded. With several uvicorn workers set
``PROMETHEUS_MULTIPROC_DIR`` (``recsys serve`` does) and every worker's
figures are summed at ``/metrics`` (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

__all__ = ["MetricsMiddleware", "RequestMetrics", "render_metrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RequestMetrics:
    """The two request metrics in their own registry (one per app, so tests can build many apps)."""

    def __init__(self, multiprocess: bool = False) -> None:
        self.multiprocess = multiprocess  # several workers: each writes to PROMETHEUS_MULTIPROC_DIR
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("recsys_http_requests_total", "HTTP requests answered",
                                ["method", "path", "status"], registry=self.registry)
        self.latency = Histogram("recsys_http_request_duration_seconds", "Time to answer an HTTP request",
                                 ["method", "path"], buckets=LATENCY_BUCKETS, registry=self.registry)

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        self.requests.labels(method, path, str(status)).inc()
        self.latency.labels(method, path).observe(seconds)


def render_metrics(metrics: RequestMetrics) -> tuple[bytes, str]:
    """The text exposition format; all workers' figures in multiprocess mode."""
    if metrics.multiprocess:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(metrics.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request (cheaper than BaseHTTPMiddleware)."""

    def __init__(self, app: Any, metrics: RequestMetrics, templates: dict[Any, str]) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = templates  # endpoint function -> route path, filled in by the app factory

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or self.templates.get(scope.get("endpoint"), "unmatched")
            self.metrics.observe(scope["method"], path, status, time.perf_counter() - start)
