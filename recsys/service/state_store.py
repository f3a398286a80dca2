"""The event store side of a worker's state: stored rows applied, new users, upserts, the hourly loop.

Mixed into :class:`~recsys.service.state.ServiceState` (which holds the
attributes declared here). With an event store (``recsys serve`` always has
one), every worker applies the stored events, products and profiles after its
model's training cutoff through a :class:`~recsys.store.live.LiveFeed` before
it answers; ``POST /events`` commits and answers without reading the store
(:meth:`StoreSide.new_users`); ``train`` and ``batch-process`` are the hourly
loop on the base data plus the store (:mod:`recsys.service.loop`), saved into
the model directory in the crash-safe order of :mod:`recsys.serving.model_dir`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.service.loop import BatchLease, train_on_store
from recsys.serving.engine import RecommendationEngine
from recsys.serving.model_dir import save_staged, staging_dir
from recsys.store.base import EventStore
from recsys.store.base import utc_now as store_now
from recsys.store.live import LiveFeed
from recsys.store.schema import PROFILE_FIELDS
from recsys.validation import InvalidRequest

__all__ = ["JobInProgress", "StoreMissing", "StoreSide"]

log = logging.getLogger("recsys.service")


class JobInProgress(RuntimeError):
    """A job of the same kind is already running (answered with 409)."""


class StoreMissing(RuntimeError):
    """The path needs the event store and this service has none (answered with 503)."""


class StoreSide:
    """The event store's part of :class:`~recsys.service.state.ServiceState` (see the module doc)."""

    engine: RecommendationEngine
    store: EventStore | None
    feed: LiveFeed | None
    base_dir: Path | None
    model_dir: Path | None
    clock: Callable[[], pd.Timestamp]
    events_not_in_catalogue: int
    events_rejected: int
    stored_products: frozenset[str]
    _posted: dict[str, int]  # users of events this worker stored -> the last such id (until applied)
    _named: dict[str, int]  # users of another writer's events read by new_users -> an id bound (until applied)
    _scanned: int  # every other writer's event up to this id has its user in _named (or is applied)
    _pruned_at: int  # the feed cursor of the last _forget_posted
    _scan_lock: asyncio.Lock

    async def sync(self) -> None: ...  # provided by ServiceState
    async def start_job(self, kind: str, lease: BatchLease | None = None) -> dict[str, Any]: ...
    async def wait_jobs(self) -> None: ...
    async def _swap_in(self, new: RecommendationEngine, version: str | None) -> int: ...

    async def new_user_candidates(self, users: set[str]) -> list[str]:
        """The users of a post that neither the served engine knows (trained on, or applied here) nor a
        stored event this worker knows of names (its own posts; another writer's it has read), before the
        write. With a store, the store is read before the next answer, not before a post; without one,
        the log is caught up with first."""
        if self.store is None:
            await self.sync()
        known = self._posted, self._named
        return sorted(self.engine.unknown_users([u for u in users if not any(u in k for k in known)]))

    async def new_users(self, candidates: list[str], first_id: int, last_id: int) -> list[str]:
        """Of :meth:`new_user_candidates`, after their post was stored as ids ``first_id..last_id``: those no
        earlier event names. No I/O unless another writer committed events this worker has not read
        (:meth:`~recsys.store.base.EventStore.foreign_events_after` its ``_scanned`` mark): then the users of
        the events between that mark and ``first_id`` are read once (one range scan by id) and remembered
        until the feed applies them. Without a store: the candidates."""
        if self.store is None or self.feed is None:
            return candidates
        if self.store.foreign_events_after(max(self._scanned, self.feed.cursor)):
            async with self._scan_lock:  # one scan at a time: a concurrent post's may cover this one's range
                scanned = max(self._scanned, self.feed.cursor)
                if scanned < first_id - 1:
                    named = await asyncio.to_thread(self.store.users_between, scanned, first_id)
                    self._named.update(dict.fromkeys(named, first_id - 1))
                self._scanned = max(self._scanned, last_id)
        # every other writer's event below first_id is read (or applied); ids first..last are this post's
        self._scanned = max(self._scanned, last_id)
        return [u for u in candidates if u not in self._named]

    def _forget_posted(self, cursor: int) -> None:
        """Drop the remembered users whose events the feed has applied (now known to the engine);
        amortised: once per advance of the feed's cursor, and only when there are many or every one
        is applied (a sync joined by many requests prunes once, not once per request)."""
        if cursor <= self._pruned_at:
            return
        self._pruned_at = cursor
        for name in ("_posted", "_named"):
            users: dict[str, int] = getattr(self, name)
            if users and (len(users) > 4096 or max(users.values()) <= cursor):
                setattr(self, name, {u: last for u, last in users.items() if last > cursor})

    def _feed_for(self, engine: RecommendationEngine) -> LiveFeed:
        """The store's events after ``engine``'s training cutoff, its products and profiles, applied to it."""
        return LiveFeed(self.store, engine.training_data()["cutoff_event_id"],
                        lambda frame: self._apply_stored(engine, frame),
                        apply_changes=lambda products, profiles: self._apply_changes(engine, products, profiles))

    def _apply_stored(self, engine: RecommendationEngine, frame: pd.DataFrame) -> int:
        """One batch of stored events into ``engine`` (a worker thread; the engine's writes are locked);
        returns the events applied. Events of products the model does not know yet stay in the store
        for the next training."""
        known = frame["product_id"].map(engine.knows_product).to_numpy(dtype=bool)
        if not known.all():
            self.events_not_in_catalogue += int((~known).sum())
            frame = frame[known]
        if not len(frame):
            return 0
        try:
            engine.add_events(frame[["user_id", "product_id", "event_type", "timestamp", "rating"]])
        except ValueError as err:  # validated before it was stored: should not happen; never poison a worker
            self.events_rejected += len(frame)
            log.error("%d stored events not applied: %s", len(frame), err)
            return 0
        return len(frame)

    def _apply_changes(self, engine: RecommendationEngine, products: pd.DataFrame, profiles: pd.DataFrame) -> None:
        """Stored product values and user profiles into ``engine`` (a worker thread)."""
        try:
            if len(products):
                result = engine.update_products(products[["product_id", "name", "category", "description",
                                                          "price", "cost", "stock"]])
                self.stored_products = self.stored_products | frozenset(result["not_in_catalogue"])
            if len(profiles):
                engine.update_profiles(profiles[["user_id", *PROFILE_FIELDS]])
        except ValueError as err:
            log.error("stored product or profile changes not applied: %s", err)

    def knows_product(self, product_id: str) -> bool:
        """In the served catalogue, or stored (``PUT /products``) and joining it at the next training."""
        return self.engine.knows_product(product_id) or product_id in self.stored_products

    def _require_store(self) -> EventStore:
        if self.store is None:
            raise StoreMissing("this service runs without an event store (start it with `recsys serve`)")
        return self.store

    async def upsert_products(self, records: list[dict[str, Any]]) -> int:
        """Commit product upserts to the store, then apply them here (the other workers at their next sync)."""
        return await self._upsert(self._require_store().upsert_products_async, records)

    async def upsert_profiles(self, records: list[dict[str, Any]]) -> int:
        """Commit user profile upserts to the store, then apply them here (the others at their next sync)."""
        return await self._upsert(self._require_store().upsert_profiles_async, records)

    async def _upsert(self, write: Callable[[list[dict[str, Any]]], Awaitable[int]],
                      records: list[dict[str, Any]]) -> int:
        """``write`` (a store's upsert) then catch up; a row the store refuses is the caller's fault (422)."""
        try:
            written = await write(records)
        except ValueError as err:
            raise InvalidRequest(str(err)) from None
        await self.sync()
        return written

    async def _run_store_job(self, kind: str, lease: BatchLease | None) -> dict[str, Any]:
        """With an event store, ``train`` and ``batch-process`` are the hourly loop: Stages 1-3 retrained
        in a thread on the base data plus the store up to a cutoff (:mod:`recsys.service.loop`), saved into
        the model directory, the stored events after the cutoff applied, swapped in and published; the run
        recorded in the store. One run at a time across workers and machines (the store's batch lock)."""
        store = self._require_store()
        if lease is None:
            lease = BatchLease(store)
            if not await lease.acquire():
                raise JobInProgress("a batch or train job is running in another worker or machine "
                                    "(the event store's batch lock is held)")
        try:
            if self.base_dir is None:
                raise FileNotFoundError("no base data set (the model directory's base/) to add the stored data to")
            started = store_now()
            new, report, version = await asyncio.to_thread(self._train_and_save, store)
            applied = await self._swap_in(new, version)
            training = new.training_data()
            await asyncio.to_thread(store.record_batch_run, report["cutoff_event_id"],
                                    pd.Timestamp(report["cutoff_time"]).to_pydatetime(), started,
                                    {"kind": kind, "engine_version": version, **training})
            info = new.model_info()
            return {"trained_at": info.get("trained_at"), "fit_seconds": info.get("fit_seconds"),
                    "training_data": training, "stored_events_dropped": report["stored_events_dropped"],
                    "new_products_dropped_incomplete": report["new_products_dropped_incomplete"],
                    "users_defaulted": report["users_defaulted"], "events_replayed": applied,
                    "version": self.batch_version, "batch_version": self.batch_version, "engine_version": version}
        finally:
            await lease.release()

    def _train_and_save(self, store: EventStore) -> tuple[RecommendationEngine, dict[str, Any], str | None]:
        """(A worker thread.) The new engine trained on the base data plus the store, and, with a model
        directory, saved in the crash-safe order (:mod:`recsys.serving.model_dir`): the Stage 2 version
        staged, the engine saved, then the version published -- before any live event is applied to it
        (the store is replayed on loads)."""
        assert self.base_dir is not None
        if self.model_dir is None:
            return (*train_on_store(self.engine, store, self.base_dir, self.clock), None)
        with staging_dir(self.model_dir) as staging:
            new, report = train_on_store(self.engine, store, self.base_dir, self.clock, staging)
            return new, report, save_staged(new, self.model_dir, staging)

    async def run_scheduled(self, every: float) -> None:
        """``recsys serve --batch-every``: every ``every`` seconds, run the batch if this worker takes the
        store's batch lock and no run started within the last ``0.9 * every`` seconds (else skip)."""
        store = self._require_store()
        while True:
            await asyncio.sleep(every)
            try:
                lease = BatchLease(store)
                if not await lease.acquire():
                    continue
                if not await lease.due(every):
                    await lease.release()
                    continue
                await self.start_job("batch-process", lease)
                await self.wait_jobs()
            except JobInProgress:
                continue
            except Exception as err:  # a store that does not answer: try again at the next tick
                log.error("scheduled batch not run: %s: %s", type(err).__name__, err)

