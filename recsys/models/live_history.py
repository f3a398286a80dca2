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

from recsys.config import EVENT_TYPES
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
        bad timestamps or ratings raise ``ValueError`` (nothing is applied)."""
        events = validate_events(events, self.product_ids)
        if len(events) == 0:
            return EventUpdate(0, 0, (), 0)
        ids = events["user_id"].tolist()
        known = self.rows_of(ids)
        new_ids = tuple(dict.fromkeys(u for u, r in zip(ids, known, strict=True) if r < 0))
        for user_id in new_ids:
            self.add_user(user_id)
        rows = self.rows_of(ids)
        cols = self.product_ids.get_indexer(events["product_id"])
        weight = event_weights(events, self.as_of, self.weights).astype(np.float32)
        is_purchase = (events["event_type"] == "purchase").to_numpy()
        unique_rows, local = np.unique(rows, return_inverse=True)
        shape = (len(unique_rows), self._matrix.shape[1])
        history, bought = self.block(unique_rows)
        history = (history + sp.csr_matrix((weight, (local, cols)), shape=shape, dtype=np.float32)).tocsr()
        bought = (bought + sp.csr_matrix((np.ones(int(is_purchase.sum()), dtype=bool),
                                          (local[is_purchase], cols[is_purchase])), shape=shape, dtype=bool)).tocsr()
        history.sort_indices()
        bought.sort_indices()
        for i, row in enumerate(unique_rows):
            a, b = history.indptr[i], history.indptr[i + 1]
            c, d = bought.indptr[i], bought.indptr[i + 1]
            self._overlay[int(row)] = (history.indices[a:b].copy(), history.data[a:b].copy(),
                                       bought.indices[c:d].copy())
        if len(self._overlay) > self.compact_threshold:
            self.compact()
        return EventUpdate(len(events), len(unique_rows), new_ids, int(is_purchase.sum()))

    def compact(self) -> None:
        """Merge the overlay and the new users into the base matrices."""
        rows = np.arange(self.n_users, dtype=np.int64)
        history, bought = self.block(rows)
        new = sorted(self._new_ids, key=self._new_ids.__getitem__)
        self._matrix, self._bought = history, bought
        self._base_ids = self._base_ids.append(pd.Index(new, dtype=object, name=self._base_ids.name))
        self._new_ids, self._overlay = {}, {}


def validate_events(events: pd.DataFrame, product_ids: pd.Index) -> pd.DataFrame:
    """Check new events and return them with ``timestamp`` as datetime and a ``rating`` column."""
    if not isinstance(events, pd.DataFrame):
        raise ValueError(f"events must be a pandas DataFrame, got {type(events).__name__}")
    missing = [c for c in REQUIRED_EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"events: missing column(s) {missing}; expected at least {list(REQUIRED_EVENT_COLUMNS)}")
    events = events.reset_index(drop=True)
    check_user_ids(events["user_id"].tolist())
    unknown = ~events["product_id"].isin(product_ids)
    if unknown.any():
        raise ValueError(
            f"events.product_id: {int(unknown.sum())} event(s) name products not in the fitted catalogue, "
            f"e.g. {events['product_id'][unknown].head(3).tolist()}; refit to add products"
        )
    bad_type = ~events["event_type"].isin(EVENT_TYPES)
    if bad_type.any():
        raise ValueError(
            f"events.event_type: unknown type(s) {sorted(set(events['event_type'][bad_type].astype(str)))[:5]}; "
            f"expected one of {list(EVENT_TYPES)}"
        )
    try:
        stamps = pd.to_datetime(events["timestamp"])
    except (ValueError, TypeError) as err:
        raise ValueError(f"events.timestamp: not parseable as datetimes ({err})") from None
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert(None)
    if stamps.isna().any():
        raise ValueError(f"events.timestamp: {int(stamps.isna().sum())} missing timestamp(s)")
    rating = pd.to_numeric(events["rating"], errors="coerce") if "rating" in events else pd.Series(np.nan, index=events.index)
    is_review = events["event_type"] == "review"
    bad_rating = is_review & ~rating.between(1, 5)
    if bad_rating.any():
        raise ValueError(f"events.rating: {int(bad_rating.sum())} review(s) without a rating in 1..5")
    out = events[["user_id", "product_id", "event_type"]].copy()
    out["timestamp"] = stamps.astype("datetime64[ns]")
    out["rating"] = rating.where(is_review).astype(float)
    return out
