"""The decision log: every deal offered (or withheld in the holdout), with its
propensity and context, and the join of outcomes from the events.

One row per decision, columns :data:`DECISION_COLUMNS`: who (``user_id``),
what (``product_id``, ``rank``), when (``decided_at``, ``period``,
``expires_at``), which policy (``policy``, ``policy_version``, ``variant`` of
an experiment or ""), the ``arm`` (formula, explore, holdout), whether the deal
was shown (``offered``; False in the holdout), the ``discount`` offered (a
fraction; 0 in the holdout), the formula's ``formula_discount``, the
``propensity`` of that discount under the logging policy, the prices
(``original_price``, ``deal_price``, ``cost``) and the context the policy read
(``region``, ``age_group``, ``segment``, ``demand_score``, ``season``).

Sinks: anything with ``write(frame)`` (:class:`DecisionSink`).
:class:`ParquetDecisionLog` writes one parquet part per call into a folder
(atomically: a temporary file renamed into place), :class:`MemoryDecisionLog`
keeps frames in memory; an event store can take the same frames later.

Outcomes (:func:`join_outcomes`): a decision converts when the user buys the
product within ``[decided_at, expires_at]``; ``revenue = deal_price x
quantity`` and ``margin = (deal_price - cost) x quantity`` summed over those
purchases (the list price in the holdout, where ``deal_price`` is it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

__all__ = ["DECISION_COLUMNS", "DecisionSink", "MemoryDecisionLog", "ParquetDecisionLog", "check_sink",
           "decisions_frame", "join_outcomes"]

DECISION_COLUMNS: tuple[str, ...] = (
    "user_id", "product_id", "rank", "decided_at", "period", "expires_at", "policy", "policy_version", "variant",
    "arm", "offered", "discount", "formula_discount", "propensity", "original_price", "deal_price", "cost",
    "region", "age_group", "segment", "demand_score", "season",
)
CONTEXT_COLUMNS: tuple[str, ...] = ("region", "age_group", "segment")


@runtime_checkable
class DecisionSink(Protocol):
    """Where decisions go: ``write(frame)`` with :data:`DECISION_COLUMNS`."""

    def write(self, decisions: pd.DataFrame) -> None: ...


def check_sink(sink: Any) -> DecisionSink | None:
    """``sink`` if it is None or has ``write(frame)``, else ``TypeError``."""
    if sink is not None and not isinstance(sink, DecisionSink):
        raise TypeError(f"a decision sink must have a write(frame) method, got {type(sink).__name__}")
    return sink


def _check(decisions: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(decisions, pd.DataFrame):
        raise ValueError(f"decisions must be a DataFrame, got {type(decisions).__name__}")
    missing = [c for c in DECISION_COLUMNS if c not in decisions.columns]
    if missing:
        raise ValueError(f"decisions lack column(s) {missing}; expected {list(DECISION_COLUMNS)}")
    p = decisions["propensity"].to_numpy(dtype=float)
    if ((p <= 0) | (p > 1) | np.isnan(p)).any():
        raise ValueError(f"decisions: propensity must be in (0, 1]; {int(((p <= 0) | (p > 1) | np.isnan(p)).sum())} "
                         "rows are not")
    return decisions[list(DECISION_COLUMNS)]


class MemoryDecisionLog:
    """Decisions kept in memory (tests, notebooks)."""

    def __init__(self) -> None:
        self.frames: list[pd.DataFrame] = []

    def write(self, decisions: pd.DataFrame) -> None:
        self.frames.append(_check(decisions).copy())

    def read(self) -> pd.DataFrame:
        if not self.frames:
            return pd.DataFrame(columns=list(DECISION_COLUMNS))
        return pd.concat(self.frames, ignore_index=True)


class ParquetDecisionLog:
    """Decisions as parquet parts in ``directory`` (created on first write);
    :meth:`read` returns the written parts in write order. ``flush_rows``:
    decisions are kept in memory until this many are waiting (then one part
    is written), or until :meth:`flush` (a service flushes at shutdown)."""

    def __init__(self, directory: str | Path, flush_rows: int = 1) -> None:
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise ValueError(f"decision log {self.directory} exists and is not a folder")
        if isinstance(flush_rows, bool) or not isinstance(flush_rows, int) or flush_rows < 1:
            raise ValueError(f"flush_rows must be an int >= 1, got {flush_rows!r}")
        self.flush_rows = flush_rows
        self._waiting: list[pd.DataFrame] = []

    def write(self, decisions: pd.DataFrame) -> None:
        frame = _check(decisions)
        if not frame.empty:
            self._waiting.append(frame)
        if sum(len(f) for f in self._waiting) >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        """Write the waiting decisions as one part (nothing if none wait)."""
        if not self._waiting:
            return
        frame = pd.concat(self._waiting, ignore_index=True)
        self._waiting = []
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"part-{pd.Timestamp.now(tz='UTC').value:020d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = self.directory / f".{name}.tmp"
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, self.directory / name)

    def read(self) -> pd.DataFrame:
        parts = sorted(self.directory.glob("part-*.parquet")) if self.directory.is_dir() else []
        if not parts:
            return pd.DataFrame(columns=list(DECISION_COLUMNS))
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


def decisions_frame(applied: Mapping[str, Any], context: Mapping[str, Mapping[str, Any]], decided_at: Any,
                    period: int, variant: str = "") -> pd.DataFrame:
    """The :data:`DECISION_COLUMNS` of deals a
    :meth:`~recsys.deals.exploration.LoggingPolicy.apply` returned.
    ``context[user_id]`` gives ``region``, ``age_group`` and ``segment``
    (missing keys are logged as "unknown")."""
    users = np.asarray(applied["user_id"], dtype=object)
    decided = pd.Timestamp(decided_at)
    days = np.asarray(applied["expiry_days"], dtype=np.int64)
    arm = np.asarray(applied["arm"], dtype=object)
    frame = pd.DataFrame({
        "user_id": users,
        "product_id": np.asarray(applied["product_id"], dtype=object),
        "rank": np.asarray(applied["rank"], dtype=np.int64),
        "decided_at": np.full(len(users), decided, dtype="datetime64[ns]"),
        "period": np.full(len(users), int(period), dtype=np.int64),
        "expires_at": decided + pd.to_timedelta(days, unit="D"),
        "policy": np.asarray(applied["policy"], dtype=object),
        "policy_version": np.asarray(applied["policy_version"], dtype=object),
        "variant": np.full(len(users), str(variant), dtype=object),
        "arm": arm,
        "offered": arm != "holdout",
        "discount": np.asarray(applied["discount_percentage"], dtype=float) / 100.0,
        "formula_discount": np.asarray(applied["formula_discount"], dtype=float) / 100.0,
        "propensity": np.asarray(applied["propensity"], dtype=float),
        "original_price": np.asarray(applied["original_price"], dtype=float),
        "deal_price": np.asarray(applied["deal_price"], dtype=float),
        "cost": np.asarray(applied["cost"], dtype=float),
        **{c: np.array([str(context.get(u, {}).get(c, "unknown")) for u in users], dtype=object)
           for c in CONTEXT_COLUMNS},
        "demand_score": np.asarray(applied["demand_score"], dtype=float),
        "season": np.asarray(applied["season"], dtype=object),
    })
    return frame


def join_outcomes(decisions: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """``decisions`` with ``converted`` (0/1), ``quantity``, ``revenue`` and
    ``margin`` from the purchase events (``user_id, product_id, event_type,
    timestamp``, optional ``quantity``) within each decision's window (module
    docstring)."""
    decisions = _check(decisions).reset_index(drop=True)
    missing = [c for c in ("user_id", "product_id", "event_type", "timestamp") if c not in events.columns]
    if missing:
        raise ValueError(f"events lack column(s) {missing} needed to join outcomes")
    buys = events.loc[events["event_type"] == "purchase", ["user_id", "product_id", "timestamp"]].copy()
    buys["quantity"] = (events.loc[buys.index, "quantity"].to_numpy(dtype=float) if "quantity" in events.columns
                        else 1.0)
    left = decisions[["user_id", "product_id", "decided_at", "expires_at"]].reset_index(names="row")
    hits = left.merge(buys, on=["user_id", "product_id"], how="inner")
    hits = hits[(hits["timestamp"] >= hits["decided_at"]) & (hits["timestamp"] <= hits["expires_at"])]
    quantity = hits.groupby("row")["quantity"].sum().reindex(decisions.index, fill_value=0.0).to_numpy()
    out = decisions.copy()
    out["quantity"] = quantity
    out["converted"] = (quantity > 0).astype(np.int64)
    out["revenue"] = quantity * out["deal_price"].to_numpy(dtype=float)
    out["margin"] = quantity * (out["deal_price"].to_numpy(dtype=float) - out["cost"].to_numpy(dtype=float))
    return out
