"""Micro-batching: concurrent requests of one kind answered by one engine call.

Stage 3 (``full``) and the deals spend most of a one-user request on
per-call overhead (a few dozen numpy calls over the whole catalogue), which a
block of users shares: ``RecommendationEngine.full_many`` answers 16 users in
about a third of the time per user of 16 ``full`` calls (thesis model). So
the service coalesces what arrives together:

* a handler submits ``(key, user_id)`` and awaits its own answer; ``key``
  holds the request's other arguments (e.g. ``(num_recommendations,
  include_deals)``), and only requests with equal keys share a call;
* the first submission in an event-loop turn schedules one flush with
  ``loop.call_soon``: it runs after the handlers already ready in that turn
  (the requests that arrived together), never waits for more, so a lone
  request is answered at once;
* the flush calls ``run(key, user_ids)`` per key, at most ``max_batch`` users
  at a time (32 by default: 16 users already cost about a third per user of
  one-user calls, and larger blocks only grow the transient arrays), in
  arrival order, and resolves each request with its own answer; an answer
  that is an exception (a user past the deal rate limit) is raised in that
  request's handler only. If a whole call fails, each of its requests is
  retried alone, so one bad request cannot fail the others.

Each answer equals the one-user call's (tested in ``tests/test_engine.py``
and ``tests/test_service_batching.py``); the batch only changes how many users one
pass over the arrays serves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["RequestBatcher"]


class RequestBatcher:
    """Coalesce concurrent ``(key, user_id)`` requests into ``run(key, user_ids)`` calls (module docstring)."""

    def __init__(self, run: Callable[[Hashable, list[str]], list[Any]], max_batch: int = 32) -> None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be a positive int, got {max_batch!r}")
        self.run = run
        self.max_batch = max_batch
        self._pending: dict[Hashable, list[tuple[str, asyncio.Future]]] = {}
        self._scheduled = False
        self.calls = 0  # engine calls made
        self.requests = 0  # requests answered through them

    async def submit(self, key: Hashable, user_id: str) -> Any:
        """The answer for ``user_id`` (raises the answer when it is an exception)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._pending.setdefault(key, []).append((user_id, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        pending, self._pending, self._scheduled = self._pending, {}, False
        for key, requests in pending.items():
            for start in range(0, len(requests), self.max_batch):
                self._answer(key, requests[start : start + self.max_batch])

    def _answer(self, key: Hashable, requests: list[tuple[str, asyncio.Future]]) -> None:
        live = [(user, future) for user, future in requests if not future.done()]  # skip cancelled requests
        if not live:
            return
        try:
            answers = self.run(key, [user for user, _ in live])
        except Exception as error:
            if len(live) == 1:  # the request's own error, raised in its handler
                live[0][1].set_exception(error)
                return
            for one in live:  # isolate the failing request: each alone
                self._answer(key, [one])
            return
        self.calls += 1
        self.requests += len(live)
        for (_, future), answer in zip(live, answers, strict=True):
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)
