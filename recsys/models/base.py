"""The one interface every recommendation strategy shares.

``fit(dataset) -> self`` learns from a :class:`~recsys.data.Dataset`;
``recommend(user_ids, n=10, exclude_purchased=True)`` returns a DataFrame with
columns :data:`RECOMMENDATION_COLUMNS` -- ``n`` rows per user (fewer if fewer
products qualify), ``rank`` 1..n, higher ``score`` is better, ties broken by
product column order (deterministic). ``score_users(rows)`` gives the dense
users x products score block that fusion and evaluation build on.
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.data.dataset import Dataset
from recsys.data.ids import check_ids
from recsys.interactions import Interactions
from recsys.models.fusion import take_at
from recsys.models.ranking import RECOMMENDATION_COLUMNS, take_rows, top_n_dense
from recsys.models.select import dense_top, range_top
from recsys.validation import InvalidRequest

__all__ = ["MAX_N", "RECOMMENDATION_COLUMNS", "Recommender", "check_n", "check_user_ids", "top_n_frame"]

MAX_N = 2**31 - 1
"""The largest ``n`` accepted at all (beyond it: a ValueError, before any work)."""


def check_n(n: object, name: str = "n", limit: int | None = None) -> int:
    """``n`` must be an int (not a bool) in ``1..MAX_N``; else an InvalidRequest (a ValueError)
    naming it. With ``limit`` (the catalogue size), the result is
    ``min(n, limit)``: nothing larger is ever allocated, and no list can be
    longer than the catalogue anyway."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise InvalidRequest(f"{name} must be a positive int, got {n!r}")
    if n > MAX_N:
        raise InvalidRequest(f"{name} must be at most {MAX_N}, got {n!r}")
    n = int(n)
    return max(1, min(n, int(limit))) if limit is not None else n


def check_user_ids(user_ids: object) -> list[str]:
    """A list of well-formed user ids (the rule of :mod:`recsys.data.ids`);
    a single string is accepted as one id."""
    return check_ids(user_ids, "user")


def top_n_frame(
    scores: np.ndarray,
    user_ids: Sequence[str],
    product_ids: pd.Index,
    n: int,
    reason: str | np.ndarray,
    exclude: sp.csr_matrix | None = None,
) -> pd.DataFrame:
    """Top-``n`` products per row of a dense ``scores`` block.

    Excluded entries (``exclude`` nonzero) and ``-inf`` scores never appear.
    Ties break by column order (stable sort on ``-score``). ``reason`` is one
    string, or an array shaped like ``scores`` with a reason per entry.
    """
    scores = np.array(scores, dtype=np.float64, copy=True)
    if exclude is not None and exclude.nnz:
        rows, cols = exclude.nonzero()
        scores[rows, cols] = -np.inf
    n_eff = min(n, scores.shape[1])
    order, _ = top_n_dense(scores, n_eff)  # the order of top_n_indices, without its per-row loop
    top = np.take_along_axis(scores, order, axis=1)
    keep = np.isfinite(top)
    row_idx = np.repeat(np.arange(scores.shape[0]), n_eff).reshape(-1, n_eff)
    frame = pd.DataFrame(
        {
            "user_id": np.asarray(user_ids, dtype=object)[row_idx[keep]],
            "product_id": np.asarray(product_ids, dtype=object)[order[keep]],
            "score": top[keep],
            "rank": (np.tile(np.arange(1, n_eff + 1), (scores.shape[0], 1)))[keep],
        }
    )
    if isinstance(reason, str):
        frame["reason"] = reason
    else:
        frame["reason"] = np.asarray(reason, dtype=object)[row_idx[keep], order[keep]]
    frame["rank"] = frame["rank"].astype("int64")
    return frame[RECOMMENDATION_COLUMNS]


class Recommender(ABC):
    """Base of all strategies. Subclasses implement :meth:`_fit` and
    :meth:`score_users`; this class supplies validation and top-n."""

    #: reason shown with this strategy's recommendations
    reason: str = "Recommended for you"
    #: short name used by fusion, evaluation and the engine
    name: str = "base"
    #: users scored per block in :meth:`recommend` (bounds memory: chunk x products floats)
    chunk_size: int = 1024

    interactions_: Interactions
    dataset_: Dataset

    def fit(self, dataset: Dataset, interactions: Interactions | None = None) -> Recommender:
        """Learn from ``dataset``; ``interactions`` may be passed to share one matrix."""
        if not isinstance(dataset, Dataset):
            raise TypeError(f"fit expects a recsys Dataset, got {type(dataset).__name__}")
        if dataset.n_users == 0 or dataset.n_products == 0:
            raise ValueError(
                f"cannot fit {type(self).__name__} on an empty data set "
                f"({dataset.n_users} users, {dataset.n_products} products)"
            )
        self.dataset_ = dataset
        self.interactions_ = interactions or Interactions.from_dataset(dataset)
        self._fit(dataset, self.interactions_)
        return self

    @abstractmethod
    def _fit(self, dataset: Dataset, interactions: Interactions) -> None: ...

    @abstractmethod
    def score_users(self, rows: np.ndarray) -> np.ndarray:
        """Dense scores (len(rows) x n_products) for user rows of the
        interactions matrix; row -1 means an unknown user."""

    def reasons_for(self, rows: np.ndarray, scores: np.ndarray) -> str | np.ndarray:
        """The reason text for each scored entry (one string by default)."""
        return self.reason

    def score_block(self, rows: np.ndarray) -> tuple[np.ndarray | None, object]:
        """:meth:`score_users` as float64, and a ``hint`` that this strategy's :meth:`score_range`,
        :meth:`top_candidates` and :meth:`scores_at` may use for the same block (None here; the k-NN
        passes its sparse scores). A strategy that answers those three from its hint alone may return
        ``None`` for the dense block (the fusion then never builds it unless asked: :meth:`dense_block`).
        A float32 block is allowed where :meth:`dense_block` and :meth:`scores_at` widen it (content)."""
        return np.asarray(self.score_users(rows), dtype=np.float64), None

    def dense_block(self, rows: np.ndarray, scores: np.ndarray | None, hint: object = None) -> np.ndarray:
        """The float64 users x products block of :meth:`score_block` (``scores``), built from
        :meth:`score_users` where the strategy returned ``None``."""
        return scores if scores is not None else np.asarray(self.score_users(rows), dtype=np.float64)

    def scores_at(self, rows: np.ndarray, r: np.ndarray, c: np.ndarray, scores: np.ndarray | None,
                  hint: object = None) -> np.ndarray:
        """float64 scores of the entries ``(r[i], c[i])`` (any shape) of a block scored for ``rows``
        by :meth:`score_block` (``scores``, ``hint``): the dense block read there by default
        (:func:`~recsys.models.fusion.take_at`: compiled for 2-d indices)."""
        return take_at(self.dense_block(rows, scores, hint), r, c)

    def score_range(self, rows: np.ndarray, scores: np.ndarray,
                    hint: object = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row of a block scored for ``rows``: the largest and the smallest finite score
        (``-inf``/``inf`` where none is finite) and the plain row minimum (``np.min``: ``-inf``
        and NaN as they are). Strategies that know these per row cheaper override it."""
        high, low = np.max(scores, axis=1), np.min(scores, axis=1)
        floor = low.copy()
        for ext, fn, start in ((high, np.max, -np.inf), (low, np.min, np.inf)):
            odd = np.flatnonzero(~np.isfinite(ext))  # rows with -inf/nan: the range of the finite scores
            if len(odd):
                sub = scores[odd]
                ext[odd] = fn(sub, axis=1, where=np.isfinite(sub), initial=start)
        return high, low, floor

    def top_candidates(self, rows: np.ndarray, scores: np.ndarray, m: int, floor: np.ndarray,
                       allowed: np.ndarray, hint: object = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``m`` best ``allowed`` columns per row strictly above ``floor``, best first, ties to
        the lower column: ``cols, ok`` as :func:`~recsys.models.ranking.top_n_dense` (the default;
        a float64 or float32 block with a mask: its compiled twin :func:`~recsys.models.select.dense_top`)."""
        if allowed is not None and scores.ndim == 2 and scores.dtype in (np.float64, np.float32):
            return dense_top(scores, m, floor, allowed)
        return top_n_dense(scores, m, floor, allowed)

    def range_and_top(self, rows: np.ndarray, scores: np.ndarray | None, m: int, allowed: np.ndarray,
                      hint: object = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`score_range` and :meth:`top_candidates` (at that range's ``floor``) of one block:
        ``high, low, floor, cols, ok``. A strategy keeping both defaults, with a dense float64
        block, gets them from one compiled visit of each row (:func:`~recsys.models.select.range_top`:
        the same values; a float32 block is read as it is, widened value by value); one overriding
        either gets its own two, in turn."""
        cls = type(self)
        if (scores is not None and cls.score_range is Recommender.score_range
                and cls.top_candidates is Recommender.top_candidates
                and scores.ndim == 2 and scores.dtype in (np.float64, np.float32)):
            return range_top(scores, m, allowed)
        high, low, floor = self.score_range(rows, scores, hint)
        cols, ok = self.top_candidates(rows, scores, m, floor, allowed, hint)
        return high, low, floor, cols, ok

    def reasons_at(self, rows: np.ndarray, r: np.ndarray, c: np.ndarray, scores: np.ndarray) -> str | np.ndarray:
        """The reasons of the entries ``(r[i], c[i])`` of a block scored for
        ``rows``: :meth:`reasons_for` at those entries (one string, or one per
        entry). Strategies whose reasons vary override it to build only these."""
        given = self.reasons_for(rows, scores)
        return given if isinstance(given, str) else np.asarray(given, dtype=object)[r, c]

    def _request(self, user_ids: Sequence[str] | str, n: object) -> tuple[list[str], int, np.ndarray]:
        """A checked request: the ids, ``n`` bounded by the catalogue, the users' rows (-1: unknown)."""
        n = check_n(n)
        ids = check_user_ids(user_ids)
        if not hasattr(self, "interactions_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(dataset) first")
        return ids, check_n(n, limit=len(self.interactions_.product_ids)), self.interactions_.user_index(ids)

    def recommend(self, user_ids: Sequence[str] | str, n: int = 10, exclude_purchased: bool = True) -> pd.DataFrame:
        """Top-``n`` for each user, as :data:`RECOMMENDATION_COLUMNS`."""
        ids, n, rows = self._request(user_ids, n)
        frames = []
        for start in range(0, max(len(ids), 1), self.chunk_size):
            chunk = rows[start : start + self.chunk_size]
            scores = self.score_users(chunk)
            exclude = take_rows(self.interactions_.purchased, chunk) if exclude_purchased else None
            frames.append(
                top_n_frame(scores, ids[start : start + self.chunk_size], self.interactions_.product_ids, n,
                            self.reasons_for(chunk, scores), exclude)
            )
        return pd.concat(frames, ignore_index=True)
