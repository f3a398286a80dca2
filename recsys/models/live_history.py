"""Interaction rows that take new events at once, without refitting anything.

The fitted weighted matrix (see :mod:`recsys.interactions`) is kept as the
*base* (CSR float32); a user touched by :meth:`LiveHistory.add` gets an
*overlay* row (base row plus the new events' weights), and a user id not in
the data set gets a new row after the fitted ones. Reading a block of users
costs the entries of those rows only. A new event weighs
``type_weight * 0.5 ** (max(0, as_of - t) / half_life)`` like the fitted ones
(events after ``as_of`` weigh their full type weight). When more than
``compact_threshold`` rows are overlaid they are merged into the base in one
vectorised pass.

Concurrency (copy-on-write): the state is one immutable
:class:`HistorySnapshot`; readers take the current snapshot (one reference
read, no lock) and read only from it, so they never see half an update.
Writers (:meth:`LiveHistory.add`, :meth:`LiveHistory.compact`) hold one lock,
build the next snapshot from the current one (copying the overlay's dict,
never its arrays) and publish it with one reference assignment, so no
writer loses another's events.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.config import EVENT_TYPES, InteractionWeights
from recsys.data.dataset import check_event_amounts
from recsys.data.errors import DataValidationError
from recsys.data.timestamps import naive_utc_ns
from recsys.interactions import Interactions, event_weights
from recsys.models.base import check_user_ids
from recsys.models.ranking import take_rows

__all__ = ["EventUpdate", "HistorySnapshot", "LiveHistory", "REQUIRED_EVENT_COLUMNS"]

REQUIRED_EVENT_COLUMNS = ("user_id", "product_id", "event_type", "timestamp")
_EMPTY_INT = np.zeros(0, dtype=np.int32)
_EMPTY_FLOAT = np.zeros(0, dtype=np.float32)


@dataclass(frozen=True)
class EventUpdate:
    """What one :meth:`LiveHistory.add` call changed."""

    events: int
    users_updated: int
    new_users: tuple[str, ...]
    purchases: int


@dataclass(frozen=True)
class HistorySnapshot:
    """One immutable state of the live rows (never modified once published).

    ``matrix``/``bought``: the base rows (CSR float32 / bool) of ``base_ids``;
    ``new_ids``: ids first seen after the base was built, with their rows
    (after the base rows); ``overlay``: current ``(columns, weights,
    purchased columns)`` of rows changed since the base was built;
    ``n_fitted``: rows of the fitted matrix; ``compacted``: rows changed
    since the fit that a compaction merged into the base (sorted).
    """

    matrix: sp.csr_matrix
    bought: sp.csr_matrix
    base_ids: pd.Index
    new_ids: Mapping[str, int]
    overlay: Mapping[int, tuple[np.ndarray, np.ndarray, np.ndarray]]
    n_fitted: int
    compacted: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def n_users(self) -> int:
        return self.matrix.shape[0] + len(self.new_ids)

    @property
    def n_base(self) -> int:
        return self.matrix.shape[0]

    def rows_of(self, user_ids: list[str]) -> np.ndarray:
        """Row of each user id; ``-1`` for ids never seen (not in the data, no events added)."""
        rows = self.base_ids.get_indexer(pd.Index(user_ids, dtype=object))
        if self.new_ids:
            for i in np.flatnonzero(rows < 0):
                rows[i] = self.new_ids.get(user_ids[i], -1)
        return rows.astype(np.int64)

    def row_of(self, user_id: str) -> int:
        """Row of one user id (``-1`` if never seen); a hash look-up."""
        try:
            return int(self.base_ids.get_loc(user_id))
        except KeyError:
            return self.new_ids.get(user_id, -1)

    def row_arrays(self, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One user's ``(product columns, weights, purchased columns)`` as
        arrays, without building sparse objects (``-1``: all empty)."""
        if row in self.overlay:
            return self.overlay[row]
        if 0 <= row < self.n_base:
            m, b = self.matrix, self.bought
            a, z = m.indptr[row], m.indptr[row + 1]
            return m.indices[a:z], m.data[a:z], b.indices[b.indptr[row] : b.indptr[row + 1]]
        return _EMPTY_INT, _EMPTY_FLOAT, _EMPTY_INT

    def is_fresh(self, row: int) -> bool:
        """Has this row's history changed since the fit (overlaid, compacted or new)?"""
        return row >= self.n_fitted or row in self.overlay or (len(self.compacted) > 0 and bool(np.isin(row, self.compacted)))

    def fresh(self, rows: np.ndarray) -> np.ndarray:
        """Rows whose history changed since the fit (overlaid, compacted or new)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = rows >= self.n_fitted
        if self.overlay:
            out |= np.isin(rows, np.fromiter(self.overlay, dtype=np.int64, count=len(self.overlay)))
        if len(self.compacted):
            out |= np.isin(rows, self.compacted)
        return out

    def ids_of(self, rows: np.ndarray) -> list[str | None]:
        """User id of each row (``None`` for ``-1``)."""
        new = sorted(self.new_ids, key=self.new_ids.__getitem__)
        base = np.asarray(self.base_ids, dtype=object)
        n = self.n_base
        return [None if r < 0 else (base[r] if r < n else new[r - n]) for r in np.asarray(rows, dtype=np.int64)]

    def block(self, rows: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """Current ``(history, purchased)`` rows for ``rows`` (``-1``: empty)."""
        rows = np.asarray(rows, dtype=np.int64)
        if not self.overlay:
            return take_rows(self.matrix, rows), take_rows(self.bought, rows)
        keys = np.fromiter(self.overlay, dtype=np.int64, count=len(self.overlay))
        over = np.flatnonzero(np.isin(rows, keys))
        if len(over) == 0:
            return take_rows(self.matrix, rows), take_rows(self.bought, rows)
        plain = rows.copy()
        plain[over] = -1
        parts = [self.overlay[int(rows[p])] for p in over]
        counts = np.array([len(p[0]) for p in parts])
        bought_counts = np.array([len(p[2]) for p in parts])
        shape = (len(rows), self.matrix.shape[1])
        extra = sp.csr_matrix(
            (np.concatenate([p[1] for p in parts]), (np.repeat(over, counts), np.concatenate([p[0] for p in parts]))),
            shape=shape, dtype=np.float32,
        )
        extra_bought = sp.csr_matrix(
            (np.ones(int(bought_counts.sum()), dtype=bool),
             (np.repeat(over, bought_counts), np.concatenate([p[2] for p in parts]))),
            shape=shape, dtype=bool,
        )
        history = (take_rows(self.matrix, plain) + extra).tocsr()
        bought = (take_rows(self.bought, plain) + extra_bought).tocsr()
        history.sort_indices()
        bought.sort_indices()
        return history, bought

    def compacted_copy(self) -> HistorySnapshot:
        """The same state with the overlay and the new users merged into the base."""
        history, bought = self.block(np.arange(self.n_users, dtype=np.int64))
        new = sorted(self.new_ids, key=self.new_ids.__getitem__)
        changed = np.fromiter(self.overlay, dtype=np.int64, count=len(self.overlay))
        changed = np.union1d(self.compacted, changed[changed < self.n_fitted])
        base_ids = self.base_ids.append(pd.Index(new, dtype=object, name=self.base_ids.name))
        return HistorySnapshot(history, bought, base_ids, {}, {}, self.n_fitted, changed)


class LiveHistory:
    """Users x products interaction rows, updatable event by event, safe to
    share between threads (see the module docstring): the read methods
    below answer from the current :class:`HistorySnapshot`; a caller that
    needs several reads to agree takes :meth:`snapshot` once."""

    def __init__(self, interactions: Interactions, as_of: pd.Timestamp, compact_threshold: int = 5000) -> None:
        self.as_of = pd.Timestamp(as_of)
        self.weights = interactions.weights
        self.product_ids = interactions.product_ids
        self.compact_threshold = int(compact_threshold)
        matrix = sp.csr_matrix(interactions.matrix, dtype=np.float32)
        matrix.sort_indices()
        bought = sp.csr_matrix(interactions.purchased, dtype=bool)
        bought.sort_indices()
        self._lock = threading.Lock()
        self._state = HistorySnapshot(matrix, bought, interactions.user_ids, {}, {}, matrix.shape[0])

    @classmethod
    def from_snapshot(cls, snapshot: HistorySnapshot, product_ids: pd.Index, weights: InteractionWeights,
                      as_of: pd.Timestamp, compact_threshold: int = 5000) -> LiveHistory:
        """A live history continuing from ``snapshot`` (e.g. read back from disk)."""
        live = cls.__new__(cls)
        live.as_of, live.weights, live.product_ids = pd.Timestamp(as_of), weights, product_ids
        live.compact_threshold = int(compact_threshold)
        live._lock = threading.Lock()
        live._state = snapshot
        return live

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def snapshot(self) -> HistorySnapshot:
        """The current immutable state (consistent for any number of reads)."""
        return self._state

    # -- reads of the current snapshot ------------------------------------------
    @property
    def n_users(self) -> int:
        return self._state.n_users

    @property
    def n_base(self) -> int:
        return self._state.n_base

    @property
    def n_overlay(self) -> int:
        return len(self._state.overlay)

    def rows_of(self, user_ids: list[str]) -> np.ndarray:
        return self._state.rows_of(user_ids)

    def row_of(self, user_id: str) -> int:
        return self._state.row_of(user_id)

    def row_arrays(self, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._state.row_arrays(row)

    def is_fresh(self, row: int) -> bool:
        return self._state.is_fresh(row)

    def fresh(self, rows: np.ndarray) -> np.ndarray:
        return self._state.fresh(rows)

    def ids_of(self, rows: np.ndarray) -> list[str | None]:
        return self._state.ids_of(rows)

    def block(self, rows: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        return self._state.block(rows)

    # -- writing ------------------------------------------------------------------
    def add(self, events: pd.DataFrame) -> EventUpdate:
        """Apply new events; unknown products or event types, malformed ids,
        bad timestamps or ratings raise ``ValueError`` (nothing is applied).

        Work is proportional to the events, the rows of their users and the
        number of overlaid rows (one dict copy).
        """
        batch = validate_events(events, self.product_ids, self.as_of, self.weights)
        if len(batch.cols) == 0:
            return EventUpdate(0, 0, (), 0)
        order = np.argsort(batch.user_ids, kind="stable")
        users, starts = np.unique(batch.user_ids[order], return_index=True)
        bounds = np.append(starts, len(order))
        with self._lock:
            state = self._state
            new_ids, overlay = dict(state.new_ids), dict(state.overlay)
            n_users = state.n_users
            first_seen = []
            for i, user_id in enumerate(users):
                row = state.row_of(user_id)
                if row < 0:
                    row = new_ids.get(user_id, -1)
                if row < 0:
                    row = n_users
                    n_users += 1
                    new_ids[user_id] = row
                    first_seen.append(user_id)
                mine = order[bounds[i] : bounds[i + 1]]
                indices, data, bought = overlay[row] if row in overlay else state.row_arrays(row)
                merged, slot = np.unique(np.concatenate([indices, batch.cols[mine]]), return_inverse=True)
                values = np.zeros(len(merged), dtype=np.float32)
                np.add.at(values, slot, np.concatenate([data, batch.weights[mine]]))
                bought = np.union1d(bought, batch.cols[mine][batch.is_purchase[mine]])
                overlay[row] = (merged.astype(np.int32), values, bought.astype(np.int32))
            state = HistorySnapshot(state.matrix, state.bought, state.base_ids, new_ids, overlay,
                                    state.n_fitted, state.compacted)
            if len(overlay) > self.compact_threshold:
                state = state.compacted_copy()
            self._state = state  # publish: one reference assignment
        seen = set(first_seen)
        new_in_order = tuple(u for u in dict.fromkeys(batch.user_ids) if u in seen)
        return EventUpdate(len(batch.cols), len(users), new_in_order, int(batch.is_purchase.sum()))

    def compact(self) -> None:
        """Merge the overlay and the new users into the base matrices."""
        with self._lock:
            self._state = self._state.compacted_copy()


@dataclass(frozen=True)
class EventBatch:
    """Validated new events as arrays: user ids, product columns, weights."""

    user_ids: np.ndarray
    cols: np.ndarray
    weights: np.ndarray
    is_purchase: np.ndarray


def validate_events(events: pd.DataFrame, product_ids: pd.Index, as_of: pd.Timestamp,
                    weights: InteractionWeights) -> EventBatch:
    """Check new events (``ValueError`` naming the column and a few bad
    values) and weigh them like the fitted ones (:func:`recsys.interactions.event_weights`).

    The data set's rules apply: timestamps by :mod:`recsys.data.timestamps`
    (tz-aware -> UTC, zone dropped), and the optional ``quantity`` and ``value``
    columns by :func:`recsys.data.dataset.check_event_amounts` (finite, not
    negative, a purchase's quantity >= 1), as in ``Dataset``."""
    if not isinstance(events, pd.DataFrame):
        raise ValueError(f"events must be a pandas DataFrame, got {type(events).__name__}")
    missing = [c for c in REQUIRED_EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"events: missing column(s) {missing}; expected at least {list(REQUIRED_EVENT_COLUMNS)}")
    user_ids = events["user_id"].to_numpy(dtype=object)
    check_user_ids(list(user_ids))
    products = events["product_id"].to_numpy(dtype=object)
    cols = product_ids.get_indexer(products)
    if (cols < 0).any():
        raise ValueError(
            f"events.product_id: {int((cols < 0).sum())} event(s) name products not in the fitted catalogue, "
            f"e.g. {list(products[cols < 0][:3])}; refit to add products"
        )
    kinds = events["event_type"].to_numpy(dtype=object)
    bad = [k for k in kinds if k not in EVENT_TYPES]
    if bad:
        raise ValueError(f"events.event_type: unknown type(s) {sorted(set(map(str, bad)))[:5]}; "
                         f"expected one of {list(EVENT_TYPES)}")
    stamps = naive_utc_ns(events["timestamp"], "events", "timestamp")
    if stamps.isna().any():
        raise DataValidationError("events", "timestamp", "missing timestamp(s)", int(stamps.isna().sum()))
    check_event_amounts(events.reset_index(drop=True))
    is_review = kinds == "review"
    rating = np.full(len(kinds), np.nan)
    if "rating" in events.columns:
        rating = pd.to_numeric(events["rating"], errors="coerce").to_numpy(dtype=float)
    bad_rating = is_review & ~((rating >= 1) & (rating <= 5))
    if bad_rating.any():
        raise ValueError(f"events.rating: {int(bad_rating.sum())} review(s) without a rating in 1..5")
    lean = pd.DataFrame({"event_type": kinds, "rating": np.where(is_review, rating, np.nan),
                         "timestamp": stamps.to_numpy()})
    weight = event_weights(lean, as_of, weights).astype(np.float32)
    return EventBatch(user_ids, cols.astype(np.int64), weight, kinds == "purchase")
