"""Run the service: load a model directory, build the app, hand it to uvicorn.

A model directory (``recsys train --out DIR``) holds ``engine/`` (a saved
:class:`~recsys.engine.RecommendationEngine`) and ``artifacts/`` (its Stage 2
artifact versions; ``batch-process`` publishes new ones there, and a restart
serves the latest). ``recsys serve`` passes its options to the workers in
environment variables (uvicorn starts several workers from an import string),
read by :func:`app_from_env`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from fastapi import FastAPI

from recsys.batch import LATEST
from recsys.engine import RecommendationEngine
from recsys.engine_store import POINTER
from recsys.service.app import create_app, utc_now
from recsys.service.auth import KeyStore
from recsys.service.history import EventLog, LocalEventLog, RedisEventLog

__all__ = ["ENGINE_SUBDIR", "ARTIFACTS_SUBDIR", "app_from_env", "load_model", "settle_after_load", "serve"]

ENGINE_SUBDIR = "engine"
ARTIFACTS_SUBDIR = "artifacts"


def _check_model_dir(model_dir: Path) -> None:
    """A model directory holds a saved engine (``engine/CURRENT``, engine save format 3)."""
    if not (model_dir / ENGINE_SUBDIR / POINTER).exists():
        raise FileNotFoundError(f"--model {model_dir}: no saved engine {ENGINE_SUBDIR}/{POINTER} "
                                "(write one with `recsys train`)")


def load_model(model_dir: str | Path, clock: Callable[[], pd.Timestamp] = utc_now) -> RecommendationEngine:
    """The engine of a model directory, serving its latest Stage 2 version; its answers'
    ``timestamp`` and ``deal_expiry`` come from ``clock`` (pass the app the same clock)."""
    model_dir = Path(model_dir)
    _check_model_dir(model_dir)
    engine = RecommendationEngine.load(model_dir / ENGINE_SUBDIR, now=clock,
                                       artifacts_dir=(model_dir / ARTIFACTS_SUBDIR).resolve())
    latest = engine.artifacts_dir / LATEST
    if latest.exists() and latest.read_text().strip() != engine.stage2_.artifacts.version:
        engine.reload_batch()
    return engine


def settle_after_load() -> None:
    """Make a freshly loaded worker lean and steady.

    * The objects alive now (the model) move to the garbage collector's
      permanent generation (``gc.freeze``): full collections no longer walk
      the model's millions of objects, which otherwise pause a request now
      and then (the p99 latency).
    * The memory freed while loading goes back to the system: loading reads
      parquet and refits Stage 1 and the content model, and the allocators
      keep those pages (about 80 MB of a worker's RSS, thesis model). Arrow's
      pool releases its unused pages; glibc's ``malloc_trim`` its free heap
      (Linux; skipped where there is no glibc).
    """
    import pyarrow as pa

    gc.collect()
    gc.freeze()
    pa.default_memory_pool().release_unused()
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        trim = getattr(ctypes.CDLL(libc_name), "malloc_trim", None)
        if trim is not None:
            trim(0)


def app_from_env() -> FastAPI:
    """The app of one uvicorn worker, from ``RECSYS_MODEL``, ``RECSYS_API_KEYS``,
    ``RECSYS_REDIS_URL`` (optional) and ``RECSYS_REDIS_PREFIX``."""
    engine = load_model(os.environ["RECSYS_MODEL"])
    settle_after_load()
    keys = KeyStore.load(os.environ["RECSYS_API_KEYS"])
    url = os.environ.get("RECSYS_REDIS_URL")
    event_log: EventLog = LocalEventLog()
    if url:
        prefix = os.environ.get("RECSYS_REDIS_PREFIX") or f"recsys:{engine.data_hash_[:16]}"
        event_log = RedisEventLog(url, prefix)
    return create_app(engine, keys, event_log=event_log)


def serve(model: str | Path, api_keys: str | Path, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          redis_url: str | None = None, redis_prefix: str | None = None, access_log: bool = False) -> None:
    """``recsys serve``: check the inputs once, then run uvicorn with ``workers`` processes."""
    import uvicorn

    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if workers > 1 and not redis_url:
        raise ValueError("--workers > 1 needs --redis URL: the live history must be shared by every worker")
    KeyStore.load(api_keys)  # fail early, naming the file
    _check_model_dir(Path(model))
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
