"""Stage 1: real-time recommendations -- k-NN with a demographic fallback.

For each requested user:

1. *k-NN* answers a user with at least ``min_history`` products in their
   (live) history: item-based ``x_u @ W`` (or user-based, see
   :mod:`recsys.models.knn`), top-``n`` of the products with a positive score.
2. The *demographic fallback* (:class:`~recsys.models.demographic.DemographicRecommender`)
   answers unknown or history-less users, and (``backfill``) tops up a
   k-NN list that has fewer than ``n`` products with the user's segment
   ranking, after the k-NN products.

The output has the base columns plus ``method`` (``item_knn``/``user_knn``
or ``demographic``: which path produced the row); ``score`` is that path's
score, so compare scores within one method only.

Real time: :meth:`RealtimeRecommender.add_events` writes new events into the
users' rows (:class:`~recsys.models.live_history.LiveHistory`) without
refitting. The next call sees them: a user who just viewed three products
gets those products' neighbours, and a new user id leaves the fallback after
their first events. A request reads the user's row and the neighbour lists of
the items in it -- no work proportional to the number of users.

Concurrency: a request reads one :class:`~recsys.models.live_history.HistorySnapshot`
(taken once, immutable) and the current new-user segment dict (replaced,
never mutated); :meth:`RealtimeRecommender.add_events` and
:meth:`RealtimeRecommender.register_users` serialise on one lock and publish
by reference assignment. So any number of threads may call ``recommend``,
``recommend_one`` and ``add_events`` at once: no event is lost and no
reader sees half an update.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.config import ConfigError
from recsys.data.dataset import Dataset
from recsys.interactions import Interactions
from recsys.models.base import RECOMMENDATION_COLUMNS, Recommender, check_n, check_user_ids
from recsys.models.demographic import REASONS, DemographicConfig, DemographicRecommender
from recsys.models.knn import ItemKNN, KNNConfig, NeighbourRecommender, UserKNN, top_n_sparse
from recsys.models.live_history import EventUpdate, HistorySnapshot, LiveHistory
from recsys.models.ranking import take_rows, top_n_dense_row
from recsys.validation import check_ints

__all__ = ["RealtimeConfig", "RealtimeRecommender", "REALTIME_COLUMNS", "FALLBACK_METHOD", "UserTop"]

REALTIME_COLUMNS = RECOMMENDATION_COLUMNS + ["method"]
FALLBACK_METHOD = "demographic"
_NEIGHBOURS = {"item": ItemKNN, "user": UserKNN}
_NO_COLUMNS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class RealtimeConfig:
    """``neighbours``: ``"item"`` or ``"user"`` k-NN; ``min_history``:
    distinct products a user needs before k-NN answers; ``backfill``: top up
    short k-NN lists from the fallback; ``compact_threshold``: overlaid rows
    before :class:`LiveHistory` merges them into its base matrix; ``n_jobs``:
    threads answering blocks of users in :meth:`RealtimeRecommender.recommend`
    (scipy and numpy release the GIL; the output does not depend on it)."""

    neighbours: str = "item"
    knn: KNNConfig = field(default_factory=KNNConfig)
    fallback: DemographicConfig = field(default_factory=DemographicConfig)
    min_history: int = 1
    backfill: bool = True
    compact_threshold: int = 5000
    n_jobs: int = 1

    def __post_init__(self) -> None:
        if self.neighbours not in _NEIGHBOURS:
            raise ConfigError(f"RealtimeConfig.neighbours must be one of {list(_NEIGHBOURS)}, got {self.neighbours!r}")
        check_ints(self, "min_history", "compact_threshold", "n_jobs")


@dataclass(frozen=True)
class UserTop:
    """One user's real-time top-``n`` as arrays (rank order): ``cols`` index
    the products, ``scores`` the answering path's score, ``reason_codes`` 0 =
    the k-NN reason and ``1 + c`` = :data:`REASONS` ``[c]``, ``method_codes``
    0 = k-NN and 1 = the demographic fallback."""

    cols: np.ndarray
    scores: np.ndarray
    reason_codes: np.ndarray
    method_codes: np.ndarray
    reason_strings: np.ndarray

    @property
    def reasons(self) -> list[str]:
        """The reason of each row, as text."""
        return self.reason_strings[self.reason_codes].tolist()

    @property
    def fallback_only(self) -> bool:
        """True when every row came from the demographic fallback (and there is one)."""
        return len(self.method_codes) > 0 and bool((self.method_codes == 1).all())


class RealtimeRecommender(Recommender):
    """Stage 1: k-NN for users with history, demographic fallback otherwise."""

    name = "realtime"

    knn_: NeighbourRecommender
    fallback_: DemographicRecommender
    history_: LiveHistory

    def __init__(self, config: RealtimeConfig | None = None) -> None:
        self.config = config if config is not None else RealtimeConfig()

    @property
    def reason(self) -> str:  # type: ignore[override]
        return _NEIGHBOURS[self.config.neighbours].reason

    def _fit(self, dataset: Dataset, interactions: Interactions) -> None:
        cfg = self.config
        self.knn_ = _NEIGHBOURS[cfg.neighbours](cfg.knn).fit(dataset, interactions)
        self.fallback_ = DemographicRecommender(cfg.fallback).fit(dataset, interactions)
        self.history_ = LiveHistory(self.knn_.profile_interactions(), dataset.as_of, cfg.compact_threshold)
        self.new_user_segment_: dict[str, int] = {}  # replaced on update, never mutated (see the module doc)
        self._write_lock = threading.Lock()
        # the frame's string columns are taken from these by code (no per-row string conversion)
        self.product_strings_ = np.asarray(self.history_.product_ids, dtype=object)
        self.reason_strings_ = np.array([self.reason, *REASONS], dtype=object)
        self.method_strings_ = np.array([self.knn_.name, FALLBACK_METHOD], dtype=object)

    def _check_fitted(self) -> None:
        if not hasattr(self, "history_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(dataset) first")

    # -- real-time updates --------------------------------------------------------
    def register_users(self, users: pd.DataFrame) -> None:
        """Demographics of users not in the data set: ``user_id`` plus any of
        ``age``, ``region``, ``spending_tier`` (missing = unknown). Their
        fallback uses that segment; unregistered new users get the
        all-shoppers ranking."""
        segments = self._new_user_segments(users)
        with self._writer():
            self.new_user_segment_ = {**self.new_user_segment_, **segments}

    def update_profiles(self, users: pd.DataFrame) -> dict[str, list[str]]:
        """Changed demographics (``user_id`` plus the whole profile: ``region``, ``age_group`` or ``age``,
        ``spending_tier``): users of the fitted data set move to that segment at once (the fallback and
        the Stage 3 demographic strategy, :meth:`DemographicRecommender.with_user_segments`), others are
        registered (:meth:`register_users`). Returns ``updated`` and ``registered`` ids."""
        self._check_fitted()
        if not isinstance(users, pd.DataFrame) or "user_id" not in users.columns:
            raise ValueError("users must be a DataFrame with a user_id column")
        rows = self.interactions_.user_index(check_user_ids(users["user_id"].tolist()))
        fitted = rows >= 0
        if fitted.any():
            segments = self.fallback_.segment_codes(users[fitted])
            with self._writer():
                self.fallback_.with_user_segments(rows[fitted], segments)
        if (~fitted).any():
            self.register_users(users[~fitted])
        ids = users["user_id"].astype(str).to_numpy()
        return {"updated": ids[fitted].tolist(), "registered": ids[~fitted].tolist()}

    def _writer(self) -> threading.Lock:
        """The lock writers hold (created on first use after a load)."""
        lock = self.__dict__.get("_write_lock")
        if lock is None:
            lock = self.__dict__.setdefault("_write_lock", threading.Lock())
        return lock

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_write_lock", None)
        return state

    def _new_user_segments(self, users: pd.DataFrame) -> dict[str, int]:
        """Validated segments of new users (nothing is stored)."""
        self._check_fitted()
        if not isinstance(users, pd.DataFrame) or "user_id" not in users.columns:
            raise ValueError("users must be a DataFrame with a user_id column")
        ids = check_user_ids(users["user_id"].tolist())
        fitted = self.interactions_.user_index(ids) >= 0
        if fitted.any():
            raise ValueError(
                f"user(s) {[u for u, f in zip(ids, fitted, strict=True) if f][:3]} are in the fitted data set; "
                "their demographics come from it"
            )
        return dict(zip(ids, self.fallback_.segment_codes(users).tolist(), strict=True))

    def add_events(self, events: pd.DataFrame, users: pd.DataFrame | None = None) -> EventUpdate:
        """Write new events into the users' rows at once (no refit). ``events``
        needs ``user_id, product_id, event_type, timestamp`` (``rating`` for
        reviews); unknown user ids become new users, optionally described by
        ``users`` (see :meth:`register_users`). Invalid input raises
        ``ValueError`` and changes nothing."""
        segments = self._new_user_segments(users) if users is not None else {}
        with self._writer():
            update = self.history_.add(events)
            if segments:
                self.new_user_segment_ = {**self.new_user_segment_, **segments}
        return update

    # -- scoring ------------------------------------------------------------------
    def _segments(self, rows: np.ndarray, ids: Sequence[str] | None = None,
                  history: HistorySnapshot | None = None) -> np.ndarray:
        """Fallback segment per user: from the data set for fitted users, from
        :meth:`register_users` for new ones (all shoppers if unregistered).
        ``ids`` (same order as ``rows``) also finds registered users without
        events; without it ids are looked up from the rows."""
        rows = np.asarray(rows, dtype=np.int64)
        segments = self.fallback_.segments_of_rows(rows)
        registered = self.new_user_segment_
        if registered:
            outside = np.flatnonzero((rows < 0) | (rows >= len(self.fallback_.user_segment_)))
            snapshot = history if history is not None else self.history_.snapshot()
            names = [ids[i] for i in outside] if ids is not None else snapshot.ids_of(rows[outside])
            for i, name in zip(outside, names, strict=True):
                segments[i] = registered.get(name, 0)
        return segments

    def _knn_history(self, history: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
        """History rows of the users k-NN answers (others emptied), and that mask."""
        use_knn = np.diff(history.indptr) >= self.config.min_history
        if use_knn.all():
            return history, use_knn
        return take_rows(history, np.where(use_knn, np.arange(history.shape[0]), -1)), use_knn

    def score_users(self, rows: np.ndarray) -> np.ndarray:
        """Dense scores: the k-NN row for users k-NN answers, else the
        fallback's segment row (``-inf`` = filtered by the spending tier)."""
        self._check_fitted()
        rows = np.asarray(rows, dtype=np.int64)
        snapshot = self.history_.snapshot()
        history, _ = snapshot.block(rows)
        knn_history, use_knn = self._knn_history(history)
        scores = self.knn_.score_history(knn_history, rows, snapshot.fresh(rows)).toarray().astype(np.float64)
        fallback = self.fallback_.segment_scores_[self._segments(rows, history=snapshot)]
        return np.where(use_knn[:, None], scores, fallback)

    def reasons_for(self, rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
        snapshot = self.history_.snapshot()
        history, _ = snapshot.block(np.asarray(rows, dtype=np.int64))
        _, use_knn = self._knn_history(history)
        segments = self._segments(rows, history=snapshot)
        codes = self.fallback_.segment_reasons_[segments][:, self.fallback_.product_category_]
        fallback = np.asarray(REASONS, dtype=object)[codes]
        return np.where(use_knn[:, None], np.asarray(self.reason, dtype=object), fallback)

    def recommend(
        self, user_ids: Sequence[str] | str, n: int = 10, exclude_purchased: bool = True
    ) -> pd.DataFrame:
        """Top-``n`` per user as :data:`REALTIME_COLUMNS` (the base columns plus ``method``)."""
        n = check_n(n)
        ids = check_user_ids(user_ids)
        self._check_fitted()
        n = check_n(n, limit=len(self.history_.product_ids))
        snapshot = self.history_.snapshot()
        rows = snapshot.rows_of(ids)
        starts = range(0, max(len(ids), 1), self.chunk_size)

        def block(start: int) -> tuple[np.ndarray, ...]:
            end = start + self.chunk_size
            r, *rest = self._recommend_block(snapshot, ids[start:end], rows[start:end], n, exclude_purchased)
            return (r + start, *rest)

        if self.config.n_jobs > 1 and len(starts) > 1:
            with ThreadPoolExecutor(max_workers=self.config.n_jobs) as pool:
                parts = list(pool.map(block, starts))
        else:
            parts = [block(start) for start in starts]
        return self._frame(ids, *(np.concatenate(column) for column in zip(*parts, strict=True)))

    def recommend_one(self, user_id: str, n: int = 10, exclude_purchased: bool = True) -> pd.DataFrame:
        """One user's top-``n`` as the frame of ``recommend([user_id], n)``
        (:meth:`top_one` in :data:`REALTIME_COLUMNS`)."""
        top = self.top_one(user_id, n, exclude_purchased)
        return self._frame([user_id], np.zeros(len(top.cols), dtype=np.int64), top.cols, top.scores,
                           np.arange(1, len(top.cols) + 1), top.reason_codes, top.method_codes)

    def top_one(self, user_id: str, n: int = 10, exclude_purchased: bool = True) -> UserTop:
        """One user's top-``n`` as arrays: the real-time request path.

        The same products, scores and order as ``recommend([user_id], n)``,
        computed from the user's row and the neighbour lists of its items with
        plain arrays (no sparse objects, no frame, nothing proportional to the
        number of users).
        """
        if not isinstance(user_id, str):
            raise ValueError(f"user_id must be a string, got {type(user_id).__name__}")
        check_user_ids([user_id])
        n = check_n(n)
        self._check_fitted()
        n = check_n(n, limit=len(self.history_.product_ids))
        snapshot = self.history_.snapshot()
        row = snapshot.row_of(user_id)
        items, weights, bought = snapshot.row_arrays(row)
        banned = bought if exclude_purchased else _NO_COLUMNS
        n_eff = min(n, len(self.history_.product_ids))
        use_knn = len(items) >= self.config.min_history
        top, top_scores = _NO_COLUMNS, np.zeros(0)
        if use_knn:
            scores = self.knn_.score_one(items, weights, row, snapshot.is_fresh(row))
            scores[banned] = 0.0
            top = top_n_dense_row(scores, n_eff)
            top_scores = scores[top].astype(np.float64)
        need = n_eff - len(top) if (self.config.backfill or not use_knn) else 0
        cols, values = [top], [top_scores]
        reasons = [np.zeros(len(top), dtype=np.int64)]
        methods = [np.zeros(len(top), dtype=np.int64)]
        if need > 0:
            fb = self.fallback_
            seg = self._segments(np.array([row]), [user_id], snapshot)[0]
            excluded = np.union1d(banned, top)
            order = fb.segment_order_[seg, : need + len(excluded)]
            order = order[(order >= 0) & ~np.isin(order, excluded)][:need].astype(np.int64)
            cols.append(order)
            values.append(fb.segment_scores_[seg, order])
            reasons.append(1 + fb.segment_reasons_[seg, fb.product_category_[order]].astype(np.int64))
            methods.append(np.ones(len(order), dtype=np.int64))
        return UserTop(np.concatenate(cols), np.concatenate(values).astype(np.float64, copy=False),
                       np.concatenate(reasons), np.concatenate(methods), self.reason_strings_)

    def _frame(self, ids: Sequence[str], rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, ranks: np.ndarray,
               reason_codes: np.ndarray, method_codes: np.ndarray) -> pd.DataFrame:
        """The output frame; ``rows`` index ``ids``, ``cols`` the products,
        ``reason_codes`` 0 = k-NN reason, ``1 + c`` = :data:`REASONS` ``[c]``,
        ``method_codes`` 0 = k-NN, 1 = fallback. String columns are taken by
        code from object arrays built once at fit time."""
        user_col = np.asarray(ids, dtype=object)[rows]
        product_col = self.product_strings_[cols]
        reason_col = self.reason_strings_[reason_codes]
        method_col = self.method_strings_[method_codes]
        return pd.DataFrame(
            {
                "user_id": user_col,
                "product_id": product_col,
                "score": np.asarray(scores, dtype=np.float64),
                "rank": np.asarray(ranks, dtype=np.int64),
                "reason": reason_col,
                "method": method_col,
            }
        )

    def method_of(self, user_ids: Sequence[str] | str) -> pd.Series:
        """Which path answers each user now: the k-NN name or ``demographic``."""
        ids = check_user_ids(user_ids)
        self._check_fitted()
        snapshot = self.history_.snapshot()
        history, _ = snapshot.block(snapshot.rows_of(ids))
        _, use_knn = self._knn_history(history)
        return pd.Series(np.where(use_knn, self.knn_.name, FALLBACK_METHOD), index=pd.Index(ids, name="user_id"),
                         name="method", dtype=object)

    def _recommend_block(
        self, snapshot: HistorySnapshot, ids: list[str], rows: np.ndarray, n: int, exclude_purchased: bool
    ) -> tuple[np.ndarray, ...]:
        """``rows, cols, scores, ranks, reason_codes, method_codes`` of one
        block of users (``rows`` index ``ids``), ordered by (row, rank); see :meth:`_frame`."""
        history, bought = snapshot.block(rows)
        banned = bought if exclude_purchased else None
        knn_history, use_knn = self._knn_history(history)
        n_products = history.shape[1]
        if use_knn.any():
            scores = self.knn_.score_history(knn_history, rows, snapshot.fresh(rows))
            r, c, v, rank = top_n_sparse(scores, banned, n, pad_zeros=False)
        else:
            r = c = rank = np.zeros(0, dtype=np.int64)
            v = np.zeros(0)
        got = np.bincount(r, minlength=len(rows))
        need = np.where(use_knn & (not self.config.backfill), 0, np.maximum(min(n, n_products) - got, 0))
        short = np.flatnonzero(need > 0)
        parts_reason: list[np.ndarray] = [np.zeros(len(r), dtype=np.int64)]
        parts_method: list[np.ndarray] = [np.zeros(len(r), dtype=np.int64)]
        if len(short):
            taken = sp.csr_matrix((np.ones(len(r), dtype=bool), (r, c)), shape=history.shape)
            excluded = take_rows((taken + banned) if banned is not None else taken, short).astype(bool)
            fr, fc, fv, fpos, freason = self.fallback_.top_n_for_segments(
                self._segments(rows[short], [ids[i] for i in short], snapshot), excluded, need[short]
            )
            rows_out = short[fr]
            r = np.concatenate([r, rows_out])
            c = np.concatenate([c, fc])
            v = np.concatenate([v, fv])
            rank = np.concatenate([rank, got[rows_out] + fpos + 1])
            parts_reason.append(1 + pd.Index(REASONS).get_indexer(freason))
            parts_method.append(np.ones(len(fr), dtype=np.int64))
            reasons = np.concatenate(parts_reason)
            methods = np.concatenate(parts_method)
            order = np.lexsort((rank, r))
            return r[order], c[order], v[order], rank[order], reasons[order], methods[order]
        return r, c, v, rank, parts_reason[0], parts_method[0]
