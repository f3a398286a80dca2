"""Run the service: load a model directory, build the app, hand it to uvicorn.

A model directory (``recsys train --out DIR``, :mod:`recsys.service.model_store`)
holds ``engine/`` (a saved :class:`~recsys.serving.engine.RecommendationEngine`; a
``train`` job saves its new engine there) and ``artifacts/`` (its Stage 2
artifact versions; ``batch-process`` publishes new ones there); a restart
serves the latest of both. ``recsys serve`` passes its options to the workers
in environment variables (uvicorn starts several workers from an import
string), read by :func:`app_from_env`. With ``--redis`` the workers share the
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
from recsys.service.model_store import ARTIFACTS_SUBDIR, ENGINE_SUBDIR, check_model_dir, load_current, load_model
from recsys.service.rate_limit_redis import RedisRateLimiter
from recsys.service.settle import settle_after_load

__all__ = ["ENGINE_SUBDIR", "ARTIFACTS_SUBDIR", "app_from_env", "load_model", "settle_after_load", "serve"]


def app_from_env() -> FastAPI:
    """The app of one uvicorn worker, from ``RECSYS_MODEL``, ``RECSYS_API_KEYS``,
    ``RECSYS_REDIS_URL`` (optional) and ``RECSYS_REDIS_PREFIX``. With Redis, the
    live history and the deal rate limit (the model's ``DealConfig`` limit and
    window) are shared under the prefix."""
    model_dir = Path(os.environ["RECSYS_MODEL"])
    engine, version = load_current(model_dir)
    settle_after_load()
    keys = KeyStore.load(os.environ["RECSYS_API_KEYS"])
    url = os.environ.get("RECSYS_REDIS_URL")
    event_log: EventLog = LocalEventLog()
    limiter = None
    if url:
        prefix = os.environ.get("RECSYS_REDIS_PREFIX") or f"recsys:{engine.data_hash_[:16]}"
        event_log = RedisEventLog(url, prefix)
        limiter = RedisRateLimiter.for_deals(engine.config.deals, url, prefix)
    return create_app(engine, keys, event_log=event_log, rate_limiter=limiter, model_dir=model_dir,
                      engine_version=version)


def serve(model: str | Path, api_keys: str | Path, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          redis_url: str | None = None, redis_prefix: str | None = None, access_log: bool = False) -> None:
    """``recsys serve``: check the inputs once, then run uvicorn with ``workers`` processes."""
    import uvicorn

    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if workers > 1 and not redis_url:
        raise ValueError("--workers > 1 needs --redis URL: the live history must be shared by every worker")
    KeyStore.load(api_keys)  # fail early, naming the file
    check_model_dir(Path(model))
    os.environ["RECSYS_MODEL"] = str(Path(model).resolve())
    os.environ["RECSYS_API_KEYS"] = str(Path(api_keys).resolve())
    if redis_url:
        os.environ["RECSYS_REDIS_URL"] = redis_url
    if redis_prefix:
        os.environ["RECSYS_REDIS_PREFIX"] = redis_prefix
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="recsys-prometheus-")
    uvicorn.run("recsys.service.server:app_from_env", factory=True, host=host, port=port, workers=workers,
                access_log=access_log, log_level="info")
