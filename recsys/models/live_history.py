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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.config import EVENT_TYPES, InteractionWeights
from recsys.interactions import Interactions, event_weights
from recsys.models.base import check_user_ids
from recsys.models.ranking import take_rows

__all__ = ["EventUpdate", "LiveHistory", "REQUIRED_EVENT_COLUMNS"]

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


class LiveHistory:
    """Users x products interaction rows, updatable event by event."""

    def __init__(self, interactions: Interactions, as_of: pd.Timestamp, compact_threshold: int = 5000) -> None:
        self.as_of = pd.Timestamp(as_of)
        self.weights = interactions.weights
        self.product_ids = interactions.product_ids
        self.compact_threshold = int(compact_threshold)
        self._matrix = sp.csr_matrix(interactions.matrix, dtype=np.float32)
        self._matrix.sort_indices()
        self._bought = sp.csr_matrix(interactions.purchased, dtype=bool)
        self._bought.sort_indices()
        self._base_ids = interactions.user_ids
        self._new_ids: dict[str, int] = {}
        self._overlay: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    # -- ids and rows -------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return self._matrix.shape[0] + len(self._new_ids)

    @property
    def n_base(self) -> int:
        return self._matrix.shape[0]

    @property
    def n_overlay(self) -> int:
        return len(self._overlay)

    def rows_of(self, user_ids: list[str]) -> np.ndarray:
        """Row of each user id; ``-1`` for ids never seen (not in the data, no events added)."""
        rows = self._base_ids.get_indexer(pd.Index(user_ids, dtype=object))
        if self._new_ids:
            for i in np.flatnonzero(rows < 0):
                rows[i] = self._new_ids.get(user_ids[i], -1)
        return rows.astype(np.int64)

    def row_of(self, user_id: str) -> int:
        """Row of one user id (``-1`` if never seen); a hash look-up."""
        try:
            return int(self._base_ids.get_loc(user_id))
        except KeyError:
            return self._new_ids.get(user_id, -1)

    def row_arrays(self, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One user's ``(product columns, weights, purchased columns)`` as
        arrays, without building sparse objects (``-1``: all empty)."""
        if row in self._overlay:
            return self._overlay[row]
        if 0 <= row < self.n_base:
            m, b = self._matrix, self._bought
            a, z = m.indptr[row], m.indptr[row + 1]
            return m.indices[a:z], m.data[a:z], b.indices[b.indptr[row] : b.indptr[row + 1]]
        return _EMPTY_INT, _EMPTY_FLOAT, _EMPTY_INT

    def is_fresh(self, row: int) -> bool:
        return row >= self.n_base or row in self._overlay

    def ids_of(self, rows: np.ndarray) -> list[str | None]:
        """User id of each row (``None`` for ``-1``)."""
        new = sorted(self._new_ids, key=self._new_ids.__getitem__)
        base = np.asarray(self._base_ids, dtype=object)
        n = self.n_base
        return [None if r < 0 else (base[r] if r < n else new[r - n]) for r in np.asarray(rows, dtype=np.int64)]

    def add_user(self, user_id: str) -> int:
        """The row of ``user_id``, creating an empty one for a new id."""
        row = self.rows_of([user_id])[0]
        if row < 0:
            row = self.n_users
            self._new_ids[user_id] = row
        return int(row)

    def fresh(self, rows: np.ndarray) -> np.ndarray:
        """Rows whose history changed since the fit (overlaid or new)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = rows >= self.n_base
        if self._overlay:
            out |= np.isin(rows, np.fromiter(self._overlay, dtype=np.int64, count=len(self._overlay)))
        return out

    # -- reading ------------------------------------------------------------------
    def block(self, rows: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """Current ``(history, purchased)`` rows for ``rows`` (``-1``: empty)."""
        rows = np.asarray(rows, dtype=np.int64)
        if not self._overlay:
            return take_rows(self._matrix, rows), take_rows(self._bought, rows)
        keys = np.fromiter(self._overlay, dtype=np.int64, count=len(self._overlay))
        over = np.flatnonzero(np.isin(rows, keys))
        if len(over) == 0:
            return take_rows(self._matrix, rows), take_rows(self._bought, rows)
        plain = rows.copy()
        plain[over] = -1
        parts = [self._overlay[int(rows[p])] for p in over]
        counts = np.array([len(p[0]) for p in parts])
        bought_counts = np.array([len(p[2]) for p in parts])
        shape = (len(rows), self._matrix.shape[1])
        extra = sp.csr_matrix(
            (np.concatenate([p[1] for p in parts]), (np.repeat(over, counts), np.concatenate([p[0] for p in parts]))),
            shape=shape, dtype=np.float32,
        )
        extra_bought = sp.csr_matrix(
            (np.ones(int(bought_counts.sum()), dtype=bool),
             (np.repeat(over, bought_counts), np.concatenate([p[2] for p in parts]))),
            shape=shape, dtype=bool,
        )
        history = (take_rows(self._matrix, plain) + extra).tocsr()
        bought = (take_rows(self._bought, plain) + extra_bought).tocsr()
        history.sort_indices()
        bought.sort_indices()
        return history, bought

    # -- writing ------------------------------------------------------------------
    def add(self, events: pd.DataFrame) -> EventUpdate:
        """Apply new events; unknown products or event types, malformed ids,
        bad timestamps or ratings raise ``ValueError`` (nothing is applied).

        Work is proportional to the events and the rows of their users.
        """
        batch = validate_events(events, self.product_ids, self.as_of, self.weights)
        if len(batch.cols) == 0:
            return EventUpdate(0, 0, (), 0)
        order = np.argsort(batch.user_ids, kind="stable")
        users, starts = np.unique(batch.user_ids[order], return_index=True)
        bounds = np.append(starts, len(order))
        new_ids = []
        for i, user_id in enumerate(users):
            row = self.row_of(user_id)
            if row < 0:
                row = self.add_user(user_id)
                new_ids.append(user_id)
            mine = order[bounds[i] : bounds[i + 1]]
            indices, data, bought = self.row_arrays(row)
            merged, slot = np.unique(np.concatenate([indices, batch.cols[mine]]), return_inverse=True)
            values = np.zeros(len(merged), dtype=np.float32)
            np.add.at(values, slot, np.concatenate([data, batch.weights[mine]]))
            bought = np.union1d(bought, batch.cols[mine][batch.is_purchase[mine]])
            self._overlay[row] = (merged.astype(np.int32), values, bought.astype(np.int32))
        if len(self._overlay) > self.compact_threshold:
            self.compact()
        first_seen = tuple(u for u in dict.fromkeys(batch.user_ids) if u in set(new_ids))
        return EventUpdate(len(batch.cols), len(users), first_seen, int(batch.is_purchase.sum()))

    def compact(self) -> None:
        """Merge the overlay and the new users into the base matrices."""
        rows = np.arange(self.n_users, dtype=np.int64)
        history, bought = self.block(rows)
        new = sorted(self._new_ids, key=self._new_ids.__getitem__)
        self._matrix, self._bought = history, bought
        self._base_ids = self._base_ids.append(pd.Index(new, dtype=object, name=self._base_ids.name))
        self._new_ids, self._overlay = {}, {}


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
    values) and weigh them like the fitted ones (:func:`recsys.interactions.event_weights`)."""
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
    try:
        stamps = pd.to_datetime(events["timestamp"])
    except (ValueError, TypeError) as err:
        raise ValueError(f"events.timestamp: not parseable as datetimes ({err})") from None
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert(None)
    if stamps.isna().any():
        raise ValueError(f"events.timestamp: {int(stamps.isna().sum())} missing timestamp(s)")
    is_review = kinds == "review"
    rating = np.full(len(kinds), np.nan)
    if "rating" in events.columns:
        rating = pd.to_numeric(events["rating"], errors="coerce").to_numpy(dtype=float)
    bad_rating = is_review & ~((rating >= 1) & (rating <= 5))
    if bad_rating.any():
        raise ValueError(f"events.rating: {int(bad_rating.sum())} review(s) without a rating in 1..5")
    lean = pd.DataFrame({"event_type": kinds, "rating": np.where(is_review, rating, np.nan),
                         "timestamp": stamps.to_numpy(dtype="datetime64[ns]")})
    weight = event_weights(lean, as_of, weights).astype(np.float32)
    return EventBatch(user_ids, cols.astype(np.int64), weight, kinds == "purchase")
