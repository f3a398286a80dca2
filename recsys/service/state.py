"""What one worker serves: the engine, its place in the shared event log, its background jobs.

Handlers run on the event loop and call the engine inline, so each engine
call is atomic with respect to the others in this worker; the only other
thread is a background job's, which never touches the served engine: a job
computes (a Stage 2 artifact version, or a whole new engine) off the loop,
and the result is installed on the loop between two requests -- the atomic
swap. A failed job leaves the served model as it was and is reported with
its error (``GET /recommendations/enhanced/jobs/{kind}``, ``model-info``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.batch import run_batch
from recsys.engine import RecommendationEngine
from recsys.service.clock import iso
from recsys.service.history import START, EventLog, LogRead, stream_id_key

__all__ = ["JobInProgress", "ServiceState"]

log = logging.getLogger("recsys.service")


class JobInProgress(RuntimeError):
    """A job of the same kind is already running (answered with 409)."""


def events_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Log records -> the frame ``RecommendationEngine.add_events`` takes."""
    frame = pd.DataFrame.from_records(records, columns=["user_id", "product_id", "event_type", "timestamp", "rating"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).dt.tz_convert(None)
    frame["rating"] = pd.to_numeric(frame["rating"])
    return frame


class ServiceState:
    """The served engine of one worker, synchronised with the shared event log."""

    def __init__(self, engine: RecommendationEngine, event_log: EventLog,
                 clock: Callable[[], pd.Timestamp]) -> None:
        if not hasattr(engine, "hybrid_"):
            raise ValueError("engine: the service needs a trained RecommendationEngine (train or load one first)")
        if engine.artifacts_dir is None:  # batch-process publishes versions somewhere this worker can reload from
            engine.artifacts_dir = Path(tempfile.mkdtemp(prefix="recsys-service-artifacts-"))
        self.engine = engine
        self.event_log = event_log
        self.clock = clock
        self.cursor = START
        self.events_applied = 0
        self.events_rejected = 0
        self.batch_version = engine.stage2_.artifacts.version
        self.product_ids = frozenset(engine.dataset_.products["product_id"].tolist())
        self._tasks: dict[str, asyncio.Task] = {}
        self._sync_current: asyncio.Future | None = None
        self._sync_queued: asyncio.Future | None = None

    # -- the shared event log ----------------------------------------------------------
    async def sync(self) -> None:
        """Apply every log entry appended before this call; reload a newer batch version.

        Single flight: concurrent requests share reads. A read already in flight may
        have started before this request arrived (and miss an entry appended just
        before it), so a request joins the read queued *after* it -- at most one is
        queued. At most two reads per worker are ever pending, however many
        requests wait, and each request still sees every entry appended before it."""
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
        self._after_read(await self.event_log.read_after(self.cursor))

    def _after_read(self, read: LogRead) -> None:
        self._apply(read)
        if read.batch_version is not None and read.batch_version != self.batch_version:
            self._reload_batch(read.batch_version)

    def _apply(self, read: LogRead) -> None:
        """No ``await`` in here: concurrent syncs of this worker cannot apply an entry twice."""
        done = stream_id_key(self.cursor)
        for entry_id, records in read.entries:
            key = stream_id_key(entry_id)
            if key <= done:
                continue
            self._apply_records(self.engine, entry_id, records)
            self.cursor, done = entry_id, key

    def _apply_records(self, engine: RecommendationEngine, entry_id: str, records: list[dict[str, Any]]) -> None:
        try:
            engine.add_events(events_frame(records))
            self.events_applied += len(records)
        except ValueError as err:  # validated before it was appended: should not happen; never poison a worker
            self.events_rejected += len(records)
            log.error("event log entry %s not applied: %s", entry_id, err)

    async def append_events(self, records: list[dict[str, Any]]) -> str:
        """Append validated events to the shared log and apply everything up to them here."""
        entry_id = await self.event_log.append(records)
        await self.sync()
        return entry_id

    def _reload_batch(self, version: str) -> None:
        try:
            self.engine.reload_batch()
        except Exception as err:  # e.g. a machine without the shared artifacts directory
            log.error("batch version %s published but not loadable here: %s", version, err)
        self.batch_version = version  # do not retry on every request

    # -- background jobs -------------------------------------------------------------------
    async def job(self, kind: str) -> dict[str, Any] | None:
        return await self.event_log.get_job(kind)

    async def start_job(self, kind: str) -> dict[str, Any]:
        """Start ``batch-process`` or ``train`` in the background; 409 while one of that kind runs here."""
        running = self._tasks.get(kind)
        if running is not None and not running.done():
            raise JobInProgress(f"a {kind} job is already running in this worker")
        job = {"job_id": uuid.uuid4().hex, "kind": kind, "status": "running", "started_at": iso(self.clock()),
               "finished_at": None, "error": None, "result": None, "worker_pid": os.getpid()}
        await self.event_log.put_job(job)
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
        job["finished_at"] = iso(self.clock())
        await self.event_log.put_job(job)

    async def _run_batch_job(self) -> dict[str, Any]:
        """Stage 2 in a thread, published as a new artifact version; then swapped in
        here (one call on the loop) and announced so every worker reloads it."""
        engine = self.engine
        artifacts = await asyncio.to_thread(run_batch, engine.dataset_, engine.artifacts_dir,
                                            engine.engine_config.batch)
        info = engine.reload_batch()  # raises before changing anything if the version does not fit
        self.batch_version = artifacts.version
        await self.event_log.publish_batch_version(artifacts.version)
        return {"version": info["version"], "as_of": info["as_of"], "run_seconds": info["run_seconds"]}

    async def _run_train_job(self) -> dict[str, Any]:
        """A new engine trained in a thread on the served engine's data; the whole
        event log replayed onto it; then it replaces the served engine (one assignment)."""
        old = self.engine
        new = RecommendationEngine(old.config, old.engine_config, old.weights, artifacts_dir=old.artifacts_dir,
                                   clock=old.clock, now=self.clock)
        info = await asyncio.to_thread(new.train, old.dataset_)
        cursor, applied = START, 0
        while True:  # replay; the last read and the swap happen with no await between them
            read = await self.event_log.read_after(cursor)
            if not read.entries:
                break
            for entry_id, records in read.entries:
                self._apply_records(new, entry_id, records)
                cursor, applied = entry_id, applied + len(records)
        self.engine, self.cursor = new, cursor
        self.batch_version = new.stage2_.artifacts.version
        return {"trained_at": info.get("trained_at"), "fit_seconds": info.get("fit_seconds"),
                "events_replayed": applied, "batch_version": self.batch_version}
