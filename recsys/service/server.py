"""Run the service: load a model directory, build the app, hand it to uvicorn.

A model directory (``recsys train --out DIR``, :mod:`recsys.serving.model_dir`)
holds ``engine/`` (a saved :class:`~recsys.serving.engine.RecommendationEngine`; a
``train`` job saves its new engine there) and ``artifacts/`` (its Stage 2
artifact versions; ``batch-process`` publishes new ones there); a restart
serves the latest of both. ``recsys serve`` passes its options to the workers
in environment variables (uvicorn starts several workers from an import
string), read once into :class:`~recsys.service.settings.ServiceSettings` by :func:`app_from_env`. With ``--redis`` the workers share the
live history, the job states, the published model versions and the deal rate
limit (:class:`~recsys.service.rate_limit_redis.RedisRateLimiter`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fastapi import FastAPI

from recsys.service.app import create_app
from recsys.service.auth import KeyStore
from recsys.service.history import EventLog, LocalEventLog, RedisEventLog
from recsys.service.rate_limit_redis import RedisRateLimiter
from recsys.service.settings import ServiceSettings
from recsys.service.settle import settle_after_load
from recsys.serving.model_dir import check_model_dir, ensure_base, load_current
from recsys.store import open_store

__all__ = ["app_from_env", "app_from_settings", "serve"]


def app_from_settings(settings: ServiceSettings) -> FastAPI:
    """The app of one worker. With ``redis_url``, the live history and the deal rate
    limit (the model's ``DealConfig`` limit and window, one limiter this service
    builds and passes into every deals call) are shared under ``redis_prefix``."""
    model_dir, api_keys = settings.require_model()
    engine, version = load_current(model_dir)
    settle_after_load()
    keys = KeyStore.load(api_keys)
    event_log: EventLog = LocalEventLog()
    limiter = None
    if settings.redis_url:
        prefix = settings.redis_prefix or f"recsys:{engine.data_hash[:16]}"
        event_log = RedisEventLog(settings.redis_url, prefix)
        limiter = RedisRateLimiter.for_deals(engine.config.deals, settings.redis_url, prefix)
    store = open_store(settings.database(model_dir), engine.config)
    app = create_app(engine, keys, event_log=event_log, rate_limiter=limiter, model_dir=model_dir,
                     engine_version=version, multiprocess_metrics=settings.metrics_dir is not None,
                     store=store, base_dir=ensure_base(model_dir, engine, version), batch_every=settings.batch_every)
    app.state.owns_store = True  # closed when the worker stops
    return app


def app_from_env() -> FastAPI:
    """The app of one uvicorn worker, from the settings in the environment (read once)."""
    return app_from_settings(ServiceSettings.from_env())


def serve(model: str | Path, api_keys: str | Path, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          redis_url: str | None = None, redis_prefix: str | None = None, access_log: bool = False,
          database: str | None = None, batch_every: float | None = None) -> None:
    """``recsys serve``: check the inputs once, then run uvicorn with ``workers`` processes."""
    import uvicorn

    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if workers > 1 and not redis_url:
        raise ValueError("--workers > 1 needs --redis URL: the live history must be shared by every worker")
    KeyStore.load(api_keys)  # fail early, naming the file
    check_model_dir(Path(model))
    metrics_dir = ServiceSettings.from_env().metrics_dir
    if workers > 1 and metrics_dir is None:
        metrics_dir = Path(tempfile.mkdtemp(prefix="recsys-prometheus-"))
    settings = ServiceSettings(model_dir=Path(model).resolve(), api_keys=Path(api_keys).resolve(),
                               redis_url=redis_url, redis_prefix=redis_prefix, metrics_dir=metrics_dir,
                               database_url=database, batch_every=batch_every)
    open_store(settings.database(settings.model_dir)).close()  # fail early, naming the database; migrate once
    os.environ.update(settings.to_env())  # the workers' settings (uvicorn starts them from an import string)
    uvicorn.run("recsys.service.server:app_from_env", factory=True, host=host, port=port, workers=workers,
                access_log=access_log, log_level="info")
