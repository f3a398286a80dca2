"""Per-user rate limiting of deal generation (SPEC 'Safety rules').

A sliding-window log: a user may make at most ``requests`` calls in any
``window_seconds``-long interval. The call that would exceed it raises
:class:`RateLimitExceeded`, whose ``retry_after`` is the number of seconds
until the oldest call in the window leaves it. Refused calls are not
counted. The clock is injectable, so tests control time. Thread-safe.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from recsys.config import DealConfig
from recsys.validation import check_int, check_number

__all__ = ["RateLimitExceeded", "RateLimiter"]


class RateLimitExceeded(RuntimeError):
    """Too many deal requests for one user; ``retry_after`` seconds to wait."""

    def __init__(self, key: str, limit: int, window_seconds: float, retry_after: float) -> None:
        self.key, self.limit, self.window_seconds, self.retry_after = key, limit, window_seconds, retry_after
        super().__init__(
            f"rate limit exceeded for user {key!r}: at most {limit} deal requests per {window_seconds:g} s; "
            f"retry in {retry_after:.1f} s"
        )

    def renewed(self) -> RateLimitExceeded:
        """The same refusal as a new exception. Raise this, not a refusal held in a
        local variable: a raised exception's traceback holds the raising frame, whose
        local would hold the exception back, a cycle that keeps the frames (and a
        request's arrays) alive until a full garbage collection."""
        return RateLimitExceeded(self.key, self.limit, self.window_seconds, self.retry_after)


class RateLimiter:
    """At most ``requests`` calls per ``window_seconds`` per key (user id)."""

    def __init__(self, requests: int, window_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        check_int("RateLimiter", "requests", requests)
        check_number("RateLimiter", "window_seconds", window_seconds, low=0, high=math.inf, low_open=True, high_open=True)
        self.requests = requests
        self.window_seconds = float(window_seconds)
        self.clock = clock
        self._calls: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, deals: DealConfig, clock: Callable[[], float] = time.monotonic) -> RateLimiter:
        """The limiter ``DealConfig.rate_limit_requests`` per ``rate_limit_window_seconds``."""
        return cls(deals.rate_limit_requests, deals.rate_limit_window_seconds, clock)

    def _prune(self, calls: deque[float], now: float) -> None:
        while calls and now - calls[0] >= self.window_seconds:
            calls.popleft()

    def acquire(self, key: str) -> None:
        """Count one call for ``key``, or raise :class:`RateLimitExceeded`."""
        with self._lock:
            now = self.clock()
            calls = self._calls.setdefault(key, deque())
            self._prune(calls, now)
            if len(calls) >= self.requests:
                retry_after = self.window_seconds - (now - calls[0])
                raise RateLimitExceeded(key, self.requests, self.window_seconds, retry_after)
            calls.append(now)

    def acquire_many(self, keys: Sequence[str]) -> list[RateLimitExceeded | None]:
        """:meth:`acquire` for each key in turn (a key may repeat): None where
        the call was counted, the :class:`RateLimitExceeded` where it was refused."""
        out: list[RateLimitExceeded | None] = []
        for key in keys:
            try:
                self.acquire(key)
            except RateLimitExceeded as refused:
                # without its traceback: kept in ``out``, a local of a frame the traceback holds, the
                # exception would form a cycle keeping every caller's frame (a request's arrays) alive
                out.append(refused.with_traceback(None))
            else:
                out.append(None)
        return out

    def remaining(self, key: str) -> int:
        """Calls ``key`` may still make now."""
        with self._lock:
            calls = self._calls.get(key)
            if calls is None:
                return self.requests
            self._prune(calls, self.clock())
            return self.requests - len(calls)

    def reset(self, key: str | None = None) -> None:
        """Forget the calls of ``key`` (of every key when None)."""
        with self._lock:
            if key is None:
                self._calls.clear()
            else:
                self._calls.pop(key, None)
