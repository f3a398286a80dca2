"""A worker's place in the store's event log, applied in batches off the event loop.

Protocol: a served model was trained on the base data plus the stored
events with ``id <= cutoff``; the worker's **cursor** starts at that cutoff.
:meth:`LiveFeed.catch_up` reads the events after the cursor, up to
``batch_size`` at a time, and hands each batch to ``apply`` (one engine
update for many events) in a worker thread, so answers of other requests
never wait for it on the event loop; the cursor moves only after ``apply``
returned. Catch-ups are single flight: concurrent callers share the read in
flight, or the one queued after it, so each caller returns having seen
every event committed before it called.

Product and profile upserts follow the same way: each catch-up first reads
the rows changed after the feed's ``revision`` and hands them to
``apply_changes(products, profiles)`` (a new feed starts at revision 0: every
stored row, applied idempotently).

A new model (trained through a later cutoff) gets a new feed: the events
before its cutoff are never read again, so a worker's memory and start-up
work are bounded by the events since the last published batch.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pandas as pd

from recsys.store.base import EventStore

__all__ = ["LiveFeed"]


class LiveFeed:
    """Events after ``cursor`` in ``store``, applied with ``apply(frame)`` (see the module doc)."""

    def __init__(self, store: EventStore, cursor: int, apply: Callable[[pd.DataFrame], Any],
                 batch_size: int = 100_000,
                 apply_changes: Callable[[pd.DataFrame, pd.DataFrame], Any] | None = None) -> None:
        self.store = store
        self.cursor = int(cursor)
        self.apply = apply
        self.apply_changes = apply_changes
        self.batch_size = batch_size
        self.applied = 0  # events applied through this feed (``apply`` may leave some out: it returns how many it took)
        self.revision = 0  # product/profile rows applied up to this revision
        self._current: asyncio.Future | None = None
        self._queued: asyncio.Future | None = None
        self._applying = threading.RLock()  # one reader-applier at a time: no event is applied twice

    def _changes(self) -> None:
        """Apply the product and profile rows changed after ``revision`` (blocking)."""
        if self.apply_changes is None:
            return
        revision = self.store.revision()
        if revision > self.revision:
            self.apply_changes(self.store.products(self.revision), self.store.profiles(self.revision))
            self.revision = revision

    def _step(self) -> int:
        """Read one batch after the cursor and apply it (blocking); the events applied."""
        frame = self.store.events(after=self.cursor, limit=self.batch_size)
        if not len(frame):
            return 0
        applied = self.apply(frame)  # the events it took (None: all of them)
        self.cursor = int(frame["id"].iloc[-1])
        self.applied += len(frame) if applied is None else int(applied)
        return len(frame)

    def catch_up_blocking(self) -> int:
        """Apply everything committed so far, in this thread (start-up); the events applied.
        Serialised: a second caller waits, then reads after the cursor the first one moved."""
        with self._applying:
            self._changes()
            total = 0
            while n := self._step():
                total += n
            return total

    async def _run(self) -> int:
        return await asyncio.to_thread(self.catch_up_blocking)  # one hop: the reads and the applies together

    def up_to_date(self) -> bool:
        """Nothing committed that this feed has not applied, by the store's cheap head read (False when the
        store has none: a server round trip costs what a catch-up costs)."""
        head = self.store.head_now()
        return head is not None and head[0] <= self.cursor and (self.apply_changes is None or head[1] <= self.revision)

    async def catch_up(self) -> None:
        """Apply every event committed before this call (single flight, off the event loop); with nothing
        new (:meth:`up_to_date`), return at once, without the thread hop."""
        if self.up_to_date():
            return
        if self._queued is not None:  # not started yet: it reads everything committed before this call
            await asyncio.shield(self._queued)
            return
        current = self._current
        if current is None or current.done():
            self._current = asyncio.ensure_future(self._run())
            await asyncio.shield(self._current)
            return
        self._queued = asyncio.ensure_future(self._after(current))
        await asyncio.shield(self._queued)

    async def _after(self, previous: asyncio.Future) -> int:
        await asyncio.wait([previous])
        self._current, self._queued = self._queued, None
        return await self._run()
