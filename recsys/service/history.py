"""The live history every worker sees: an append-only event log.

Protocol (event sourcing): the served model is a saved engine plus the
prefix of the log it has applied. ``POST /events`` validates the events in
the worker that received them and appends them to the log; every worker,
before answering a request, reads the entries after its cursor and applies
them with ``RecommendationEngine.add_events``. Adding events is commutative
(weights add up per user and product), so workers that apply the same
entries in any interleaving reach the same rows. A model swapped in
(``train``, or a newer engine loaded from the model directory) replays the
log from the start.

Beside the log, two published versions, read in the same round trip as the
new entries:

* the **batch version** (``batch-process``): the Stage 2 artifact version
  every worker reloads;
* the **engine version** (``train``): the name of the engine save
  (``sNNNNNN``, :mod:`recsys.serving.engine_store`) the training worker wrote into
  the model directory, published together with its batch version. A worker
  that serves another one loads the model directory's current save in a
  thread, replays the log onto it and swaps it in.

Background job states are kept beside them, so any worker reports a job
another worker runs. With an event store (``recsys serve``) the events are
the store's, never appended here: a worker's sync reads only the two
versions (``read_versions``, one round trip), not the (empty) stream.

* :class:`LocalEventLog`: in-process, the single-worker default.
* :class:`RedisEventLog`: a Redis stream ``<prefix>:events`` (``XADD`` /
  ``XRANGE`` after the cursor, exclusive), hash ``<prefix>:jobs``, keys
  ``<prefix>:batch_version`` and ``<prefix>:engine_version``, shared by every
  worker and machine that uses the same Redis and key prefix.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from recsys.service.redact import redact_text, redact_url

__all__ = ["EventLog", "LocalEventLog", "LogRead", "RedisEventLog", "START", "SharedLogUnavailable",
           "SharedStoreUnavailable", "stream_id_key"]

START = "0-0"
"""The cursor before the first entry."""


class SharedStoreUnavailable(ConnectionError):
    """A store shared by the workers (Redis) did not answer (the service answers 503)."""

    what = "a shared store"


class SharedLogUnavailable(SharedStoreUnavailable):
    """The shared event log (Redis) did not answer (the service answers 503)."""

    what = "the shared live history"


def stream_id_key(entry_id: str) -> tuple[int, int]:
    """Order of stream ids ``<ms>-<seq>`` (Redis's own order)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class LogRead:
    """Entries after a cursor, oldest first, and the newest published batch and engine versions."""

    entries: list[tuple[str, list[dict[str, Any]]]]
    batch_version: str | None = None
    engine_version: str | None = None


class EventLog(Protocol):
    kind: str

    async def append(self, records: list[dict[str, Any]]) -> str: ...
    async def read_after(self, cursor: str) -> LogRead: ...
    async def read_versions(self) -> LogRead: ...
    async def put_job(self, job: dict[str, Any]) -> None: ...
    async def get_job(self, kind: str) -> dict[str, Any] | None: ...
    async def publish_batch_version(self, version: str) -> None: ...
    async def publish_engine_version(self, version: str, batch_version: str) -> None: ...
    async def close(self) -> None: ...


@dataclass
class LocalEventLog:
    """The log in this process only (one worker)."""

    kind: str = "in-process"
    _entries: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    _jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _batch_version: str | None = None
    _engine_version: str | None = None

    async def append(self, records: list[dict[str, Any]]) -> str:
        entry_id = f"{len(self._entries) + 1}-0"
        self._entries.append((entry_id, records))
        return entry_id

    async def read_after(self, cursor: str) -> LogRead:
        return LocalEventLog.read_now(self, cursor)

    async def read_versions(self) -> LogRead:
        return LogRead([], self._batch_version, self._engine_version)

    def read_now(self, cursor: str) -> LogRead:
        """The same read, synchronously (no I/O in process)."""
        start = stream_id_key(cursor)[0]  # ids are "<position>-0"
        return LogRead(self._entries[start:], self._batch_version, self._engine_version)

    async def put_job(self, job: dict[str, Any]) -> None:
        self._jobs[job["kind"]] = dict(job)

    async def get_job(self, kind: str) -> dict[str, Any] | None:
        job = self._jobs.get(kind)
        return None if job is None else dict(job)

    async def publish_batch_version(self, version: str) -> None:
        self._batch_version = version

    async def publish_engine_version(self, version: str, batch_version: str) -> None:
        self._engine_version, self._batch_version = version, batch_version

    async def close(self) -> None:
        return None


class RedisEventLog:
    """The log in Redis: stream ``<prefix>:events``, hash ``<prefix>:jobs``, keys ``<prefix>:batch_version``
    and ``<prefix>:engine_version``."""

    kind = "redis"

    def __init__(self, url: str, prefix: str = "recsys", max_read: int = 10_000, max_connections: int = 16,
                 timeout: float = 5.0) -> None:
        import redis.asyncio as redis

        self.url = url
        self.where = redact_url(url)  # what messages name: the password masked
        self.prefix = prefix
        self.max_read = max_read
        # a bounded pool that waits for a free connection (reads are single-flight per worker, see ServiceState.sync)
        pool = redis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=timeout,
                                                     socket_timeout=timeout, decode_responses=True)
        self._redis = redis.Redis(connection_pool=pool)
        self._events = f"{prefix}:events"
        self._jobs = f"{prefix}:jobs"
        self._version = f"{prefix}:batch_version"
        self._engine_version = f"{prefix}:engine_version"

    async def ping(self) -> None:
        """Raise ``ConnectionError`` (naming the URL) if Redis does not answer."""
        try:
            await self._redis.ping()
        except Exception as err:  # redis raises its own ConnectionError subclasses
            raise ConnectionError(f"Redis at {self.where} does not answer: {redact_text(str(err))}") from None

    async def append(self, records: list[dict[str, Any]]) -> str:
        with self._unavailable():
            return await self._redis.xadd(self._events, {"events": json.dumps(records, separators=(",", ":"))})

    async def read_after(self, cursor: str) -> LogRead:
        with self._unavailable():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xrange(self._events, min=f"({cursor}", max="+", count=self.max_read)
                pipe.get(self._version)
                pipe.get(self._engine_version)
                raw, version, engine_version = await pipe.execute()
        entries = [(entry_id, json.loads(fields["events"])) for entry_id, fields in raw]
        return LogRead(entries, version, engine_version)

    async def read_versions(self) -> LogRead:
        """The published batch and engine versions only (one round trip; no stream read: with an
        event store the events are read from the store)."""
        with self._unavailable():
            version, engine_version = await self._redis.mget(self._version, self._engine_version)
        return LogRead([], version, engine_version)

    async def put_job(self, job: dict[str, Any]) -> None:
        with self._unavailable():
            await self._redis.hset(self._jobs, job["kind"], json.dumps(job))

    async def get_job(self, kind: str) -> dict[str, Any] | None:
        with self._unavailable():
            raw = await self._redis.hget(self._jobs, kind)
        return None if raw is None else json.loads(raw)

    async def publish_batch_version(self, version: str) -> None:
        with self._unavailable():
            await self._redis.set(self._version, version)

    async def publish_engine_version(self, version: str, batch_version: str) -> None:
        """Both keys in one transaction: a reader never sees the engine without its batch version."""
        with self._unavailable():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._engine_version, version)
                pipe.set(self._version, batch_version)
                await pipe.execute()

    @contextlib.contextmanager
    def _unavailable(self):
        from redis.exceptions import RedisError

        try:
            yield
        except RedisError as err:
            raise SharedLogUnavailable(f"shared event log at {self.where}: {type(err).__name__}: {redact_text(str(err))}") from None

    async def close(self) -> None:
        await self._redis.aclose()
