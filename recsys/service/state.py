"""What one worker serves: the engine, its place in the shared event log, its background jobs.

Handlers run on the event loop and call the engine inline, so each engine
call is atomic with respect to the others in this worker; the only other
threads are a background job's and an engine load's, which never touch the
served engine: they compute or read (a Stage 2 artifact version, a whole new
engine) off the loop, and the result is installed on the loop between two
requests -- the atomic swap. A failed job leaves the served model as it was and is reported with
its error (``GET /recommendations/enhanced/jobs/{kind}``, ``model-info``).

Several workers (:mod:`recsys.service.history`): a ``batch-process`` job
publishes its artifact version, and every worker reloads it at its next
sync. A ``train`` job saves its new engine into the model directory (before
any live event is applied to it: a save is a trained model, the log is
replayed onto it) and publishes the save's version; every other worker sees
it at its next sync, loads the model directory's current save in a thread
while it keeps answering from the served engine, replays the log onto it and
swaps it in the same way. A failed load leaves that worker on its previous
model and is reported in its ``model-info`` (``engine_load_error``).

The engine is reached through its public methods only (``prepare_batch`` /
``install_batch``, ``retrained_copy``, ``batch_version``, ...; no batch or
publish module, no fitted attribute). The deal requests of every engine this
state serves are counted by the one ``rate_limiter`` it passes into each
deals call (the Redis one with several workers), so a swap neither resets nor
splits a user's limit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.deals.decision_log import ParquetDecisionLog
from recsys.deals.experiment import ExperimentConfig
from recsys.deals.rate_limit import RateLimiter
from recsys.serialization import iso_utc
from recsys.service.batching import RequestBatcher
from recsys.service.history import START, EventLog, LogRead, stream_id_key
from recsys.service.jobs import JobLock, LocalJobLock
from recsys.service.loop import BatchLease
from recsys.service.settle import settle_after_swap
from recsys.service.state_store import JobInProgress, StoreMissing, StoreSide
from recsys.serving.engine import RecommendationEngine
from recsys.serving.model_dir import (
    DECISIONS_SUBDIR,
    current_version,
    load_current,
    save_engine,
    save_staged,
    staging_dir,
    version_number,
)
from recsys.store.base import EventStore
from recsys.validation import InvalidRequest

__all__ = ["JobInProgress", "ServiceState", "StoreMissing"]

log = logging.getLogger("recsys.service")


def events_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Log records -> the frame ``RecommendationEngine.add_events`` takes."""
    frame = pd.DataFrame.from_records(records, columns=["user_id", "product_id", "event_type", "timestamp", "rating"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).dt.tz_convert(None)
    frame["rating"] = pd.to_numeric(frame["rating"])
    return frame


class ServiceState(StoreSide):
    """The served engine of one worker, synchronised with the shared event log.

    ``rate_limiter``: counts the deal requests of every engine served here
    (default: an in-process one with the engine's ``DealConfig`` limit).
    ``model_dir``: the model directory the engine came from (``train`` jobs
    save there, published engine versions are loaded from there); None: train
    jobs swap their engine in this worker only. ``engine_version``: the save
    ``engine`` was loaded from (default: the model directory's current one).
    """

    def __init__(self, engine: RecommendationEngine, event_log: EventLog,
                 clock: Callable[[], pd.Timestamp], rate_limiter: RateLimiter | None = None,
                 model_dir: str | Path | None = None, engine_version: str | None = None,
                 job_lock: JobLock | None = None, event_clock_skew_seconds: float = 300.0,
                 store: EventStore | None = None, base_dir: str | Path | None = None) -> None:
        if not isinstance(engine, RecommendationEngine) or not engine.is_trained:
            raise ValueError("engine: the service needs a trained RecommendationEngine (train or load one first)")
        self.engine = engine
        self.event_log = event_log
        self.clock = clock
        self.cursor = START
        self._log_applied = 0  # log entries' events applied (without an event store)
        self.events_rejected = 0
        self._batch_seen = engine.batch_version  # the newest published batch version acted upon
        self.job_lock: JobLock = job_lock if job_lock is not None else LocalJobLock()
        self.event_clock_skew = pd.Timedelta(seconds=event_clock_skew_seconds)
        self.rate_limiter = (rate_limiter if rate_limiter is not None
                             else RateLimiter.from_config(engine.config.deals, engine.clock))
        # concurrent full/deals requests share one engine pass (of the engine serving then: a job may swap it)
        self.full_batcher = RequestBatcher(
            lambda key, users: self.engine.full_many(users, *key, rate_limiter=self.rate_limiter))
        self.deals_batcher = RequestBatcher(
            lambda num_deals, users: self.engine.deals_many(users, num_deals, rate_limiter=self.rate_limiter))
        self.model_dir = None if model_dir is None else Path(model_dir)
        # every deal decision (with its propensity) into the model directory's decision log
        self.decision_log = (None if self.model_dir is None
                             else ParquetDecisionLog(self.model_dir / DECISIONS_SUBDIR, flush_rows=4096))
        engine.use_decision_sink(self.decision_log)
        if engine_version is None and self.model_dir is not None:
            engine_version = current_version(self.model_dir)
        self.engine_version = engine_version
        self.engine_load_error: str | None = None
        self._engine_seen = engine_version  # the newest published engine version acted upon
        self._swapping = False  # a new engine is being replayed and installed here
        self._engine_load: asyncio.Task | None = None
        self._tasks: dict[str, asyncio.Task] = {}
        self._sync_current: asyncio.Future | None = None
        self._sync_queued: asyncio.Future | None = None
        # the event store (the source of truth): events, products and profiles; None: the log only
        self.store = store
        self.base_dir = None if base_dir is None else Path(base_dir)
        self.events_not_in_catalogue = 0  # stored events of products the served model does not know yet
        self.stored_products: frozenset[str] = frozenset()  # stored products the served model does not know yet
        self.feed = self._feed_for(engine) if store is not None else None
        self._posted: dict[str, int] = {}  # see StoreSide.new_users
        self._named: dict[str, int] = {}
        self._scanned = self._pruned_at = 0
        self._bounding = False  # a catch-up started to bound _posted and _named is running
        self._scan_lock = asyncio.Lock()

    @property
    def batch_version(self) -> str | None:
        """The Stage 2 version the served engine uses (what is served is what is reported)."""
        return self.engine.batch_version

    @property
    def events_applied(self) -> int:
        """Live events in the served engine now: the store's feed counts each batch as it is applied (an
        answer computed meanwhile already uses it), the log path each entry."""
        return self.feed.applied if self.feed is not None else self._log_applied

    # -- the shared event log ----------------------------------------------------------
    async def sync(self) -> None:
        """Apply every log entry appended before this call; reload a newer batch version;
        start loading a newer published engine version (in the background).

        Single flight: concurrent requests share reads. A read already in flight may
        have started before this request arrived (and miss an entry appended just
        before it), so a request joins the read queued *after* it -- at most one is
        queued. At most two reads per worker are ever pending, however many
        requests wait, and each request still sees every entry appended before it.

        With an event store, the stored events, products and profiles after this worker's
        cursor are applied first (:class:`~recsys.store.live.LiveFeed`: in batches, off the
        event loop); a feed replaced meanwhile (a new model) is caught up too."""
        while self.feed is not None:
            feed = self.feed
            await feed.catch_up()
            if feed is self.feed:
                self._forget_posted(feed.cursor)
                break
        read_now = getattr(self.event_log, "read_now", None)
        if read_now is not None:  # an in-process log: no I/O, no task needed
            self._after_read(read_now(self.cursor))
            return
        current = self._sync_current
        if current is None or current.done():
            self._sync_current = asyncio.ensure_future(self._sync_once())
            await asyncio.shield(self._sync_current)
            return
        if self._sync_queued is None:
            self._sync_queued = asyncio.ensure_future(self._sync_after(current))
        await asyncio.shield(self._sync_queued)

    async def _sync_after(self, previous: asyncio.Future) -> None:
        await asyncio.wait([previous])
        self._sync_current, self._sync_queued = self._sync_queued, None
        await self._sync_once()

    async def _sync_once(self) -> None:
        if self.store is not None:  # events come from the store: only the published versions from the log
            self._after_read(await self.event_log.read_versions())
            return
        self._after_read(await self.event_log.read_after(self.cursor))

    def _after_read(self, read: LogRead) -> None:
        self._apply(read)
        if self._swapping or (self._engine_load is not None and not self._engine_load.done()):
            return  # the engine being loaded or installed brings its own versions
        if self._newer_engine_published(read.engine_version):
            self._engine_seen = read.engine_version
            self._engine_load = asyncio.get_running_loop().create_task(self._load_engine(read.engine_version))
            return
        if read.batch_version is not None and read.batch_version != self._batch_seen:
            self._reload_batch(read.batch_version)

    def _newer_engine_published(self, version: str | None) -> bool:
        """A published engine version not acted upon yet, newer than the served one (save names grow)."""
        if version is None or version == self._engine_seen:
            return False
        return version_number(version) > version_number(self.engine_version)

    def _apply(self, read: LogRead) -> None:
        """No ``await`` in here: concurrent syncs of this worker cannot apply an entry twice."""
        done = stream_id_key(self.cursor)
        for entry_id, records in read.entries:
            key = stream_id_key(entry_id)
            if key <= done:
                continue
            self._apply_records(self.engine, entry_id, records)
            self.cursor, done = entry_id, key

    def _apply_records(self, engine: RecommendationEngine, entry_id: str, records: list[dict[str, Any]]) -> int:
        """Apply one log entry to ``engine``; returns the events applied (0 if refused)."""
        try:
            engine.add_events(events_frame(records))
        except ValueError as err:  # validated before it was appended: should not happen; never poison a worker
            self.events_rejected += len(records)
            log.error("event log entry %s not applied: %s", entry_id, err)
            return 0
        if engine is self.engine:
            self._log_applied += len(records)
        return len(records)

    async def append_events(self, records: list[dict[str, Any]]) -> str:
        """Append validated events to the shared log and apply everything up to them here. With an
        event store: committed there (durable when this returns; the id of the last one); every worker,
        this one included, applies them before its next answer (reads sync first), so the write path
        does not wait for the engine update."""
        if self.store is not None:
            try:
                _, last = await self.store.append_events_async(records)
            except ValueError as err:  # the store's row rules (e.g. a rating on an event that is not a review)
                raise InvalidRequest(str(err)) from None
            for record in records:
                self._posted[record["user_id"]] = last
            if len(self._posted) + len(self._named) > 100_000 and self.feed is not None and not self._bounding:
                self._bounding = True  # bound them: one catch-up in the background applies (and forgets) them
                asyncio.ensure_future(self._apply_posted())
            return str(last)
        entry_id = await self.event_log.append(records)
        await self.sync()
        return entry_id

    async def _apply_posted(self) -> None:
        try:
            await self.sync()
        finally:
            self._bounding = False

    def _reload_batch(self, version: str) -> None:
        try:
            self.engine.reload_batch()
        except Exception as err:  # e.g. a machine without the shared artifacts directory
            log.error("batch version %s published but not loadable here: %s", version, err)
        self._batch_seen = version  # do not retry on every request

    async def unavailable(self, timeout: float = 2.0) -> list[str]:
        """What the data paths need and does not answer now (the shared live history, the deal rate
        limit, the job lock), each named with its error; empty when all answer."""
        checks: list[tuple[str, Any]] = []
        ping = getattr(self.event_log, "ping", None)
        if ping is not None:
            checks.append(("shared live history", ping()))
        ping_limiter = getattr(self.rate_limiter, "ping", None)
        if ping_limiter is not None:
            checks.append(("deal rate limit", asyncio.to_thread(ping_limiter)))
        checks.append(("job lock", self.job_lock.ping()))
        causes = []
        for what, check in checks:
            try:
                await asyncio.wait_for(check, timeout)
            except Exception as err:  # each store raises its own errors; the message is redacted at the source
                causes.append(f"{what}: {type(err).__name__}: {err}" if str(err) else f"{what}: {type(err).__name__}")
        return causes

    # -- background jobs -------------------------------------------------------------------
    async def job(self, kind: str) -> dict[str, Any] | None:
        return await self.event_log.get_job(kind)

    async def start_job(self, kind: str, lease: BatchLease | None = None) -> dict[str, Any]:
        """Start ``batch-process`` or ``train`` in the background; 409 while a job of either kind runs
        in any worker sharing the job lock (:mod:`recsys.service.jobs`). ``lease``: the event store's
        batch lock, already held for this job (a scheduled run; released when the job ends)."""
        job_id = uuid.uuid4().hex
        holder = await self.job_lock.acquire(kind, job_id)
        if holder is not None:
            if lease is not None:
                await lease.release()
            raise JobInProgress(f"a {holder.get('kind')} job is running (worker pid {holder.get('worker_pid')}); "
                                "train and batch-process run one at a time")
        job = {"job_id": job_id, "kind": kind, "status": "running", "started_at": iso_utc(self.clock()),
               "finished_at": None, "error": None, "result": None, "worker_pid": os.getpid()}
        try:
            await self.event_log.put_job(job)
        except BaseException:
            await self.job_lock.release(job_id)
            if lease is not None:
                await lease.release()
            raise
        if self.store is not None:
            async def runner() -> dict[str, Any]:
                return await self._run_store_job(kind, lease)
        else:
            runner = self._run_batch_job if kind == "batch-process" else self._run_train_job
        self._tasks[kind] = asyncio.create_task(self._supervise(job, runner))
        return job

    async def wait_jobs(self) -> None:
        """Wait for the running jobs (tests, shutdown)."""
        tasks = [t for t in self._tasks.values() if not t.done()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _supervise(self, job: dict[str, Any], runner: Callable[[], Any]) -> None:
        try:
            result = await runner()
            job.update(status="completed", result=result)
        except Exception as err:
            log.error("%s job %s failed: %s: %s", job["kind"], job["job_id"], type(err).__name__, err)
            job.update(status="failed", error=f"{type(err).__name__}: {err}")
        job["finished_at"] = iso_utc(self.clock())
        try:
            await self.event_log.put_job(job)
        finally:
            await self.job_lock.release(job["job_id"])

    async def _run_batch_job(self) -> dict[str, Any]:
        """Stage 2 in a thread, published as a new artifact version; then swapped in
        here (one call on the loop) and announced so every worker reloads it."""
        engine = self.engine
        prepared = await asyncio.to_thread(engine.prepare_batch)
        if engine is not self.engine:
            raise RuntimeError(f"batch version {prepared.version} not installed: a train job replaced the engine "
                               "meanwhile (it brings its own Stage 2 version)")
        info = engine.install_batch(prepared)
        self._batch_seen = prepared.version
        await self.event_log.publish_batch_version(prepared.version)
        return info

    async def _run_train_job(self) -> dict[str, Any]:
        """A new engine trained in a thread on the served engine's data; saved into the
        model directory (a new engine version); the whole event log replayed onto it;
        then it replaces the served engine (one assignment) and its version is published."""
        engine, model_dir = self.engine, self.model_dir
        version = None
        if model_dir is not None:  # saved before any live event is applied: the log is replayed on loads
            def build() -> tuple[RecommendationEngine, str]:
                with staging_dir(model_dir) as staging:  # the crash-safe order of recsys.serving.model_dir
                    new = engine.retrained_copy(self.clock, artifacts_dir=staging)
                    return new, save_staged(new, model_dir, staging)

            new, version = await asyncio.to_thread(build)
        else:
            new = await asyncio.to_thread(engine.retrained_copy, self.clock)
        info = new.model_info()
        if model_dir is None and self.event_log.kind != "in-process":
            log.warning("train job: no model directory to save the new engine in; only worker %d serves it",
                        os.getpid())
        applied = await self._swap_in(new, version)
        return {"trained_at": info.get("trained_at"), "fit_seconds": info.get("fit_seconds"),
                "events_replayed": applied, "batch_version": self.batch_version, "engine_version": version}

    async def _swap_in(self, new: RecommendationEngine, version: str | None) -> int:
        """Serve ``new`` (saved as ``version``, if any) and tell the other workers; returns the events applied."""
        self._swapping = True
        try:
            applied = await self._install(new, version)
            if version is not None:
                self._engine_seen = version
                await self.event_log.publish_engine_version(version, self.batch_version)
        finally:
            self._swapping = False
        return applied

    async def _install(self, new: RecommendationEngine, version: str | None) -> int:
        """Replay the whole event log onto ``new`` and serve it; returns the events replayed.
        The last read and the swap happen with no ``await`` between them. With an event store:
        the stored events after ``new``'s training cutoff (a new feed), then the swap; anything
        committed after the feed's last read is applied by the next sync."""
        if self.store is not None:
            feed = self._feed_for(new)
            await feed.catch_up()
            self.engine, self.feed = new, feed
            self._batch_seen = new.batch_version
            self.engine_version = version
            settle_after_swap()
            return feed.applied
        cursor, applied = START, 0
        while True:
            read = await self.event_log.read_after(cursor)
            if not read.entries:
                break
            for entry_id, records in read.entries:
                applied += self._apply_records(new, entry_id, records)
                cursor = entry_id
        new.use_decision_sink(self.decision_log)
        self.engine, self.cursor, self._log_applied = new, cursor, applied
        self._batch_seen = new.batch_version
        self.engine_version = version
        settle_after_swap()
        return applied

    async def set_experiment(self, experiment: ExperimentConfig) -> str | None:
        """Serve deals under ``experiment`` (an inactive one ends it). With a model directory:
        the current save is loaded in a thread, changed, saved as a new engine version,
        installed here (the log replayed) and published, so every worker loads it; without
        one, the served engine changes in this worker only. Returns the version."""
        if self.model_dir is None:
            self.engine.deal_policy(experiment=experiment)
            return None
        model_dir = self.model_dir

        def build() -> tuple[RecommendationEngine, str]:
            new, _ = load_current(model_dir, self.clock)
            new.deal_policy(experiment=experiment)
            return new, save_engine(new, model_dir)

        new, version = await asyncio.to_thread(build)
        self._swapping = True
        try:
            await self._install(new, version)
            self._engine_seen = version
            await self.event_log.publish_engine_version(version, self.batch_version)
        finally:
            self._swapping = False
        return version

    async def _load_engine(self, published: str) -> None:
        """Serve the model directory's current save, announced as ``published`` by another worker:
        loaded in a thread while requests are answered from the served engine, then installed.
        A failure leaves the served engine and is reported (``engine_load_error``)."""
        try:
            if self.model_dir is None:
                raise FileNotFoundError("this worker was started without a model directory to load it from")
            new, loaded = await asyncio.to_thread(load_current, self.model_dir, self.clock)
            self._swapping = True
            try:
                await self._install(new, loaded)
            finally:
                self._swapping = False
        except Exception as err:
            self.engine_load_error = f"engine version {published} not loaded: {type(err).__name__}: {err}"
            log.error("%s; still serving %s", self.engine_load_error, self.engine_version)
        else:
            self.engine_load_error = None
            log.info("engine version %s loaded (published %s)", loaded, published)

    async def wait_engine_load(self) -> None:
        """Wait for a load of a published engine (tests, shutdown)."""
        if self._engine_load is not None:
            await asyncio.gather(self._engine_load, return_exceptions=True)
