"""The hourly loop: Stage 1-3 retrained on the base data plus the event store, one run at a time.

:func:`train_on_store` (blocking: run it in a thread) takes a cutoff -- the
newest committed event id and the wall time -- builds the training data set
(:func:`recsys.store.training.training_dataset`: the model directory's
``base/`` plus every stored event up to the cutoff, the stored products and
profiles) and trains a new engine on it with the served engine's
configuration. The new engine's ``training_data`` names the cutoff: a worker
serving it replays only the events after it.

One run at a time across workers and machines: :class:`BatchLease` holds
the store's ``batch`` lock (:meth:`recsys.store.base.EventStore.exclusive`:
a lease row in SQLite, an advisory lock in PostgreSQL) for the whole run.
A scheduled run (``recsys serve --batch-every 1h``) first takes the lease
and then checks the store's record of batch runs, so of several workers
waking at the same time exactly one runs and the others skip.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.data.dataset import Dataset
from recsys.serving.engine import RecommendationEngine
from recsys.store.base import EventStore, utc_now
from recsys.store.training import training_dataset

__all__ = ["BatchLease", "parse_interval", "train_on_store"]

LEASE_NAME = "batch"
LEASE_SECONDS = 6 * 3600.0
"""A lease outlives any run (a crashed holder's SQLite lease expires after this; PostgreSQL frees it at once)."""


def parse_interval(text: str) -> float:
    """``"1h"``, ``"30m"``, ``"45s"``, ``"1.5h"`` or plain seconds -> seconds (> 0); ``ValueError`` otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"--batch-every {text!r}: expected a positive duration such as 1h, 30m, 90s")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def train_on_store(engine: RecommendationEngine, store: EventStore, base_dir: Path, clock: Any,
                   artifacts_dir: Path | None = None) -> tuple[RecommendationEngine, dict[str, Any]]:
    """A new engine trained on ``base_dir`` plus ``store`` up to now's cutoff; and the build report.
    ``artifacts_dir``: where its Stage 2 version is written (default: the served engine's directory;
    a service passes :func:`~recsys.serving.model_dir.staging_dir`, published after the engine save)."""
    cutoff, cutoff_time = store.last_event_id(), utc_now()
    base = Dataset.load(base_dir, config=engine.config)
    data = training_dataset(base, store, cutoff, cutoff_time)
    new = engine.retrained_copy(clock, data.dataset, artifacts_dir)
    return new, data.report


class BatchLease:
    """The store's ``batch`` lock held by this process for one run (see the module doc)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self._context: Any = None

    async def acquire(self) -> bool:
        context = self.store.exclusive(LEASE_NAME, self.holder, LEASE_SECONDS)
        mine = await asyncio.to_thread(context.__enter__)
        if mine:
            self._context = context
        else:
            await asyncio.to_thread(context.__exit__, None, None, None)
        return mine

    async def release(self) -> None:
        context, self._context = self._context, None
        if context is not None:
            await asyncio.to_thread(context.__exit__, None, None, None)

    async def due(self, every: float) -> bool:
        """No batch run recorded in the store started within the last ``0.9 * every`` seconds."""
        last = await asyncio.to_thread(self.store.last_batch_run)
        if last is None:
            return True
        return (pd.Timestamp(utc_now()) - last["started_at"]).total_seconds() >= 0.9 * every
