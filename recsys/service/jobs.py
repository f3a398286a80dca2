"""One background job at a time, across every worker that shares the lock.

``train`` and ``batch-process`` both replace what is served (the engine, or
its Stage 2 version), so they take **one** lock: a second job of either kind,
in any worker, is refused (409) while one runs, and the version a finished
job publishes is the one every worker then serves and reports.

The interface is :class:`JobLock` (``acquire`` / ``release`` / ``ping`` /
``close``); implementations:

* :class:`LocalJobLock`: in this process (one worker, the default);
* :class:`RedisJobLock`: ``SET <prefix>:job-lock <holder> NX PX <ttl>``
  (atomic: only one worker's ``SET`` succeeds), renewed every ``ttl / 3``
  while the job runs (so a worker that dies mid-job frees the lock after at
  most ``ttl``), released with a compare-and-delete script (a worker never
  deletes a lock another worker took after its own expired). Used when the
  workers share Redis (``recsys serve --redis``).

A store of its own (e.g. a database holding the job table) can provide the
same four methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import Any, Protocol

from recsys.service.history import SharedStoreUnavailable
from recsys.service.redact import redact_url

__all__ = ["JobLock", "LocalJobLock", "RedisJobLock"]


class JobLock(Protocol):
    """Who may run a background job now."""

    async def acquire(self, kind: str, job_id: str) -> dict[str, Any] | None:
        """Take the lock for job ``job_id`` of ``kind``: None if taken, else the holder (kind, job_id, pid)."""
        ...

    async def release(self, job_id: str) -> None:
        """Free the lock if ``job_id`` holds it."""
        ...

    async def ping(self) -> None: ...
    async def close(self) -> None: ...


class LocalJobLock:
    """The lock of one process."""

    kind = "in-process"

    def __init__(self) -> None:
        self._holder: dict[str, Any] | None = None

    async def acquire(self, kind: str, job_id: str) -> dict[str, Any] | None:
        if self._holder is not None:
            return dict(self._holder)
        self._holder = {"kind": kind, "job_id": job_id, "worker_pid": os.getpid()}
        return None

    async def release(self, job_id: str) -> None:
        if self._holder is not None and self._holder["job_id"] == job_id:
            self._holder = None

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


_RELEASE = """if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"""
_RENEW = """if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"""


class RedisJobLock:
    """The lock in Redis at ``url``: key ``<prefix>:job-lock``, expiring ``ttl_seconds`` after its last renewal."""

    kind = "redis"

    def __init__(self, url: str, prefix: str = "recsys", ttl_seconds: float = 30.0, timeout: float = 5.0) -> None:
        import redis.asyncio as redis

        self.where = redact_url(url)
        self.key = f"{prefix}:job-lock"
        self.ttl_ms = int(ttl_seconds * 1000)
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                           decode_responses=True)
        self._held: dict[str, tuple[str, asyncio.Task]] = {}

    @contextlib.contextmanager
    def _unavailable(self):
        from redis.exceptions import RedisError

        try:
            yield
        except RedisError as err:
            raise SharedStoreUnavailable(f"job lock at {self.where}: {type(err).__name__}") from None

    async def acquire(self, kind: str, job_id: str) -> dict[str, Any] | None:
        value = json.dumps({"kind": kind, "job_id": job_id, "worker_pid": os.getpid()})
        with self._unavailable():
            if await self._redis.set(self.key, value, nx=True, px=self.ttl_ms):
                self._held[job_id] = (value, asyncio.get_running_loop().create_task(self._renew(value)))
                return None
            holder = await self._redis.get(self.key)
        return json.loads(holder) if holder else {"kind": "unknown", "job_id": None, "worker_pid": None}

    async def _renew(self, value: str) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            with contextlib.suppress(Exception):  # a missed renewal: the next one, or expiry, decides
                await self._redis.eval(_RENEW, 1, self.key, value, self.ttl_ms)

    async def release(self, job_id: str) -> None:
        value, renewal = self._held.pop(job_id, (None, None))
        if renewal is not None:
            renewal.cancel()
        if value is not None:
            with self._unavailable():
                await self._redis.eval(_RELEASE, 1, self.key, value)

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except Exception as err:
            raise ConnectionError(f"Redis at {self.where} does not answer: {type(err).__name__}") from None

    async def close(self) -> None:
        for _, renewal in self._held.values():
            renewal.cancel()
        await self._redis.aclose()
