"""Run the service: load a model directory, build the app, hand it to uvicorn.

A model directory (``recsys train --out DIR``, :mod:`recsys.serving.model_dir`)
holds ``engine/`` (a saved :class:`~recsys.serving.engine.RecommendationEngine`; a
``train`` job saves its new engine there) and ``artifacts/`` (its Stage 2
artifact versions; ``batch-process`` publishes new ones there); a restart
serves the latest of both. ``recsys serve`` passes its options to the workers
in environment variables (uvicorn starts several workers from an import
string), read once into :class:`~recsys.service.settings.ServiceSettings` by :func:`app_from_env`. With ``--redis`` the workers share the
live history, the job states, the published model versions and the deal rate
limit (:class:`~recsys.service.rate_limit_redis.RedisRateLimiter`) and the job lock
(:class:`~recsys.service.jobs.RedisJobLock`).

Start-up failures exit, whatever the worker count: ``serve`` checks the
options, the keys file, the model directory and Redis before starting
(:class:`StartupError`, one line); one worker is built in this process (a
model that does not load is the same one line); with several, a worker that
cannot start writes its one-line cause into ``RECSYS_STARTUP_FAILURE_FILE``
and stops the supervisor (no endless respawn), and ``serve`` raises it.
HTTP is parsed by h11 by default, with at most ``h11_max_incomplete_event_size``
bytes of request line and headers buffered per connection (``--http httptools``
is faster, but buffers headers of any size).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
from pathlib import Path

from fastapi import FastAPI

from recsys.service.app import create_app
from recsys.service.auth import KeysFile, KeyStore
from recsys.service.history import EventLog, LocalEventLog, RedisEventLog
from recsys.service.jobs import JobLock, RedisJobLock
from recsys.service.limits import Limits
from recsys.service.rate_limit_redis import RedisRateLimiter
from recsys.service.redact import redact_text, redact_url
from recsys.service.settings import ServiceSettings
from recsys.service.settle import settle_after_load
from recsys.serving.model_dir import check_model_dir, ensure_base, load_current
from recsys.store import StoreError, open_store

__all__ = ["MAX_WORKERS", "StartupError", "app_from_env", "app_from_settings", "serve"]

MAX_WORKERS = 64
HEADER_BUFFER_BYTES = 1_048_576
"""Request line and headers the HTTP parser buffers per connection at most (400 past it); the
middleware's own header limit (431) is far below it."""


class StartupError(RuntimeError):
    """The service cannot start; the message names the cause in one line."""


def app_from_settings(settings: ServiceSettings) -> FastAPI:
    """The app of one worker. With ``redis_url``, the live history, the deal rate
    limit (the model's ``DealConfig`` limit and window, one limiter this service
    builds and passes into every deals call) and the job lock are shared under ``redis_prefix``."""
    model_dir, api_keys = settings.require_model()
    try:
        engine, version = load_current(model_dir)
    except Exception as err:  # a corrupt or incompatible save: whatever the unpickler raised
        raise StartupError(f"model {model_dir}: cannot load it: {type(err).__name__}: {redact_text(str(err))}") from None
    settle_after_load()
    keys = KeysFile(api_keys)
    event_log: EventLog = LocalEventLog()
    limiter = None
    job_lock: JobLock | None = None
    if settings.redis_url:
        prefix = settings.redis_prefix or f"recsys:{engine.data_hash[:16]}"
        event_log = RedisEventLog(settings.redis_url, prefix)
        limiter = RedisRateLimiter.for_deals(engine.config.deals, settings.redis_url, prefix)
        job_lock = RedisJobLock(settings.redis_url, prefix)
    failure_file = settings.startup_failure_file
    try:
        store = open_store(settings.database(model_dir), engine.config)
        base_dir = ensure_base(model_dir, engine, version)
    except (StoreError, OSError, ValueError) as err:
        raise StartupError(f"event store: {redact_text(str(err))}") from None
    app = create_app(engine, keys, event_log=event_log, rate_limiter=limiter, model_dir=model_dir,
                     engine_version=version, multiprocess_metrics=settings.metrics_dir is not None,
                     limits=settings.limits, job_lock=job_lock,
                     event_clock_skew_seconds=settings.event_clock_skew_seconds,
                     on_startup_failure=None if failure_file is None else (lambda m: _worker_failed(failure_file, m)),
                     store=store, base_dir=base_dir, batch_every=settings.batch_every)
    app.state.owns_store = True  # closed when the worker stops
    return app


def _worker_failed(failure_file: Path, message: str) -> None:
    """A worker that cannot start: its cause into ``failure_file``, the supervisor stopped, the worker gone."""
    with open(failure_file, "a") as handle:
        handle.write(message.replace("\n", " ") + "\n")
    with contextlib.suppress(OSError):
        os.kill(os.getppid(), signal.SIGTERM)
    os._exit(3)


def app_from_env() -> FastAPI:
    """The app of one uvicorn worker, from the settings in the environment (read once)."""
    settings = ServiceSettings.from_env()
    try:
        return app_from_settings(settings)
    except Exception as err:
        if settings.startup_failure_file is None:
            raise
        _worker_failed(settings.startup_failure_file, f"{err}" if isinstance(err, StartupError | ValueError)
                       else f"{type(err).__name__}: {redact_text(str(err))}")
        raise  # not reached


def check_redis(url: str, timeout: float = 3.0) -> None:
    """``StartupError`` naming the (redacted) URL unless Redis answers a PING."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
    except Exception as err:
        raise StartupError(f"Redis at {redact_url(url)} does not answer: {type(err).__name__}: "
                           f"{redact_text(str(err))}") from None
    finally:
        client.close()


def check_options(host: str, port: int, workers: int, redis_url: str | None) -> None:
    """``ValueError`` naming the first bad option value."""
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"--host {host!r}: expected a host name or address")
    if not 1 <= port <= 65535:
        raise ValueError(f"--port {port}: expected 1..65535")
    if not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"--workers {workers}: expected 1..{MAX_WORKERS}")
    if workers > 1 and not redis_url:
        raise ValueError("--workers > 1 needs a Redis URL (--redis, --redis-url-file or RECSYS_REDIS_URL): "
                         "the live history must be shared by every worker")
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"Redis URL {redact_url(redis_url)!r}: expected redis://, rediss:// or unix://")


def serve(model: str | Path, api_keys: str | Path, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          redis_url: str | None = None, redis_prefix: str | None = None, access_log: bool = False,
          limits: Limits | None = None, event_clock_skew_seconds: float = 300.0,
          limit_concurrency: int | None = None, http: str = "h11", database: str | None = None,
          batch_every: float | None = None) -> None:
    """``recsys serve``: check the inputs once, then run uvicorn with ``workers`` processes.
    Raises ``ValueError`` for a bad option, :class:`StartupError` when the service cannot start."""
    import uvicorn

    check_options(host, port, workers, redis_url)
    KeyStore.load(api_keys)  # fail early, naming the file
    check_model_dir(Path(model))
    if redis_url:
        check_redis(redis_url)
    metrics_dir = ServiceSettings.from_env().metrics_dir
    if workers > 1 and metrics_dir is None:
        metrics_dir = Path(tempfile.mkdtemp(prefix="recsys-prometheus-"))
    failure_file = Path(tempfile.mkdtemp(prefix="recsys-start-")) / "failure" if workers > 1 else None
    settings = ServiceSettings(model_dir=Path(model).resolve(), api_keys=Path(api_keys).resolve(),
                               redis_url=redis_url, redis_prefix=redis_prefix, metrics_dir=metrics_dir,
                               limits=limits or Limits(), event_clock_skew_seconds=event_clock_skew_seconds,
                               startup_failure_file=failure_file, database_url=database, batch_every=batch_every)
    try:  # fail early, naming the database; the schema migrated once, before the workers start
        open_store(settings.database(settings.model_dir)).close()
    except StoreError as err:
        raise StartupError(redact_text(str(err))) from None
    server = {"host": host, "port": port, "access_log": access_log, "log_level": "info", "http": http,
              "h11_max_incomplete_event_size": HEADER_BUFFER_BYTES, "limit_concurrency": limit_concurrency}
    if workers == 1:  # built here: a model that does not load is one line, before anything listens
        app = app_from_settings(settings)
        app.state.on_startup_failure = _exit_one_line
        uvicorn.run(app, **server)
        return
    os.environ.update(settings.to_env())  # the workers' settings (uvicorn starts them from an import string)
    try:
        uvicorn.run("recsys.service.server:app_from_env", factory=True, workers=workers, **server)
    finally:
        failed = failure_file.read_text().splitlines() if failure_file is not None and failure_file.exists() else []
    if failed:
        raise StartupError(f"a worker could not start: {failed[0]}")


def _exit_one_line(message: str) -> None:
    print(f"recsys serve: error: {message}", file=sys.stderr)
    os._exit(1)
