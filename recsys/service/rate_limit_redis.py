"""The deal rate limit shared by every service worker and machine: a sliding-window log in Redis.

Same rule as :class:`recsys.deals.rate_limit.RateLimiter` (at most
``requests`` calls per user in any ``window_seconds``-long interval; a refused
call is not counted; ``retry_after`` = the time until the oldest call in the
window leaves it), kept where every worker sees it:

* one sorted set per user, ``<prefix>:deal-rate:<user_id>``, member = one
  accepted call (a unique id), score = its time in seconds;
* one Lua script per call (atomic in Redis, so two workers can never both
  take the last free call): drop the members with ``score <= now - window``,
  count the rest; under the limit add the call, else answer the oldest score;
* ``PEXPIRE window`` on every accepted call, so an idle user's key vanishes
  once all its calls have left the window.

The engine calls :meth:`RedisRateLimiter.acquire_many` synchronously inside a
request (``DealGenerator.generate_each``: one round trip for a batch of requests), so the client is redis-py's sync one,
with a short socket timeout and a single immediate retry; a Redis that does
not answer raises :class:`SharedRateLimitUnavailable` (the service answers
503), never a 500. Times come from ``clock``: wall time (``time.time``, the
same in every process of a machine, and across NTP-synchronised machines),
injectable for tests; the key expiry runs on Redis's own clock, so an
injected clock must not run slower than real time for longer than a window.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence

from recsys.config import DealConfig
from recsys.deals.rate_limit import RateLimiter, RateLimitExceeded
from recsys.service.history import SharedStoreUnavailable
from recsys.service.redact import redact_text, redact_url

__all__ = ["ACQUIRE_SCRIPT", "RedisRateLimiter", "SharedRateLimitUnavailable"]

ACQUIRE_SCRIPT = """
-- KEYS[1]: the user's sorted set; ARGV: now, now - window, limit, member, window in ms
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local count = redis.call('ZCARD', KEYS[1])
if count >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, count, oldest[2]}
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, count + 1, ARGV[1]}
"""
"""Times travel as strings both ways (Redis turns Lua numbers into integers or 14-digit strings)."""


class SharedRateLimitUnavailable(SharedStoreUnavailable):
    """The shared rate limit (Redis) did not answer (the service answers 503)."""

    what = "the shared deal rate limit"


class RedisRateLimiter(RateLimiter):
    """At most ``requests`` calls per ``window_seconds`` per key (user id), counted in Redis at ``url``.

    ``prefix``: the service's Redis key prefix (workers with the same URL and
    prefix share the limit). ``timeout``: socket timeout in seconds of each
    call (the request waits at most about twice this before a 503).
    """

    def __init__(self, url: str, requests: int, window_seconds: float, prefix: str = "recsys",
                 clock: Callable[[], float] = time.time, timeout: float = 0.5) -> None:
        super().__init__(requests, window_seconds, clock)
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url = url
        self.where = redact_url(url)  # what messages name: the password masked
        self.prefix = prefix
        # one immediate retry (a pooled connection broken by a Redis restart), never the default
        # exponential backoff: the call blocks a worker's event loop while it waits
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                           retry=Retry(NoBackoff(), 1), decode_responses=True)
        self._acquire = self._redis.register_script(ACQUIRE_SCRIPT)
        self._window_ms = max(1, math.ceil(self.window_seconds * 1000))

    @classmethod
    def for_deals(cls, deals: DealConfig, url: str, prefix: str = "recsys",
                  clock: Callable[[], float] = time.time) -> RedisRateLimiter:
        """The limiter ``DealConfig.rate_limit_requests`` per ``rate_limit_window_seconds``, in Redis."""
        return cls(url, deals.rate_limit_requests, deals.rate_limit_window_seconds, prefix, clock)

    def key(self, user_id: str) -> str:
        """The Redis key of ``user_id``'s calls."""
        return f"{self.prefix}:deal-rate:{user_id}"

    def acquire(self, key: str) -> None:
        """Count one call for ``key``, or raise :class:`RateLimitExceeded` (nothing counted)."""
        (refused,) = self.acquire_many([key])
        if refused is not None:
            raise refused

    def acquire_many(self, keys: Sequence[str]) -> list[RateLimitExceeded | None]:
        """One call for each key, in order, in one round trip (a pipeline of the
        script: each still atomic, so a repeated key counts twice): None where
        counted, the :class:`RateLimitExceeded` where refused (a batch of requests)."""
        now = float(self.clock())
        args = [repr(now), repr(now - self.window_seconds), self.requests]
        with self._unavailable():
            pipe = self._redis.pipeline(transaction=False)
            for key in keys:
                member = f"{now!r}:{os.urandom(8).hex()}"
                self._acquire(keys=[self.key(key)], args=[*args, member, self._window_ms], client=pipe)
            replies = pipe.execute()
        out: list[RateLimitExceeded | None] = []
        for key, (accepted, _, oldest) in zip(keys, replies, strict=True):
            retry_after = max(0.0, float(oldest) + self.window_seconds - now)
            out.append(None if accepted else RateLimitExceeded(key, self.requests, self.window_seconds, retry_after))
        return out

    def remaining(self, key: str) -> int:
        """Calls ``key`` may still make now."""
        cutoff = float(self.clock()) - self.window_seconds
        with self._unavailable():
            in_window = self._redis.zcount(self.key(key), f"({cutoff!r}", "+inf")
        return max(0, self.requests - int(in_window))

    def reset(self, key: str | None = None) -> None:
        """Forget the calls of ``key`` (of every key under this prefix when None)."""
        with self._unavailable():
            if key is not None:
                self._redis.delete(self.key(key))
                return
            pattern = _glob_escape(self.key("")) + "*"
            batch: list[str] = []
            for name in self._redis.scan_iter(match=pattern, count=500):
                batch.append(name)
                if len(batch) >= 500:
                    self._redis.unlink(*batch)
                    batch.clear()
            if batch:
                self._redis.unlink(*batch)

    def ping(self) -> None:
        """Raise ``ConnectionError`` (naming the URL) if Redis does not answer."""
        try:
            self._redis.ping()
        except Exception as err:  # redis raises its own ConnectionError subclasses
            raise ConnectionError(f"Redis at {self.where} does not answer: {redact_text(str(err))}") from None

    def close(self) -> None:
        self._redis.close()

    @contextlib.contextmanager
    def _unavailable(self) -> Iterator[None]:
        from redis.exceptions import RedisError

        try:
            yield
        except RedisError as err:
            raise SharedRateLimitUnavailable(
                f"shared deal rate limit at {self.where}: {type(err).__name__}: {redact_text(str(err))}") from None


def _glob_escape(text: str) -> str:
    """``text`` matched literally by Redis's ``SCAN MATCH`` glob."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
