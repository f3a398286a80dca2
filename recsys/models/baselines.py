"""Baselines every model is compared against, with the same interface.

* :class:`Popularity`: one ranking for everyone, ``score(i) = pop(i) /
  max_j pop(j)`` with ``pop(i) = sum_u x_ui`` (``measure="weight"``: the
  weighted, time-decayed interactions) or ``|{u : x_ui > 0}|``
  (``measure="users"``: distinct users).
* :class:`RandomRecommender`: ``score(u, i) = h(seed, u, i)``, a uniform
  [0, 1) hash (splitmix64) of seed, user row and product column, so the
  ranking is random, reproducible and independent of batching.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.config import ConfigError
from recsys.data.dataset import Dataset
from recsys.interactions import Interactions
from recsys.models.base import Recommender, check_n, check_user_ids
from recsys.models.ranking import entries_frame, first_allowed, take_rows

__all__ = ["PopularityConfig", "Popularity", "RandomRecommender"]

_MEASURES = ("weight", "users")


@dataclass(frozen=True)
class PopularityConfig:
    """``measure``: ``"weight"`` (sum of interaction weights) or ``"users"`` (distinct users)."""

    measure: str = "weight"

    def __post_init__(self) -> None:
        if self.measure not in _MEASURES:
            raise ConfigError(f"PopularityConfig.measure must be one of {list(_MEASURES)}, got {self.measure!r}")


class Popularity(Recommender):
    """Most popular products first, the same list for every user."""

    name = "popularity"
    reason = "Popular with all shoppers"

    popularity_: np.ndarray  # (products,) scores in [0, 1]
    order_: np.ndarray  # (products,) columns, best first, ties by column

    def __init__(self, config: PopularityConfig | None = None) -> None:
        self.config = config if config is not None else PopularityConfig()

    def _fit(self, dataset: Dataset, interactions: Interactions) -> None:
        matrix = interactions.matrix
        if matrix.nnz == 0:
            raise ValueError(f"cannot fit {type(self).__name__}: the data set has no events")
        if self.config.measure == "weight":
            pop = np.asarray(matrix.sum(axis=0)).ravel()
        else:
            pop = np.bincount(matrix.indices[matrix.data > 0], minlength=matrix.shape[1]).astype(np.float64)
        self.popularity_ = pop / pop.max()
        self.order_ = np.argsort(-self.popularity_, kind="stable")

    def score_users(self, rows: np.ndarray) -> np.ndarray:
        if not hasattr(self, "popularity_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(dataset) first")
        return np.broadcast_to(self.popularity_, (len(rows), len(self.popularity_))).copy()

    def recommend(self, user_ids: Sequence[str] | str, n: int = 10, exclude_purchased: bool = True) -> pd.DataFrame:
        """Top-``n`` of the global ranking minus each user's purchases (same
        frame as the dense base path, without building it)."""
        n = check_n(n)
        ids = check_user_ids(user_ids)
        if not hasattr(self, "popularity_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(dataset) first")
        n = check_n(n, limit=len(self.interactions_.product_ids))
        rows = self.interactions_.user_index(ids)
        banned = take_rows(self.interactions_.purchased, rows) if exclude_purchased else None
        n_banned = np.diff(banned.indptr) if banned is not None else np.zeros(len(rows), dtype=np.int64)
        width = min(len(self.order_), n + int(n_banned.max(initial=0)))
        orders = np.broadcast_to(self.order_[:width], (len(rows), width))
        r, c, pos = first_allowed(orders, banned, n)
        return entries_frame(ids, self.interactions_.product_ids, r, c, self.popularity_[c], pos + 1, self.reason)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: a well-mixed uint64 hash of uint64 input."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


class RandomRecommender(Recommender):
    """Uniformly random ranking per user, reproducible from ``seed``."""

    name = "random"
    reason = "Random pick"

    def __init__(self, seed: int = 0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.seed = int(seed)

    def _fit(self, dataset: Dataset, interactions: Interactions) -> None:
        self.n_products_ = interactions.shape[1]

    def score_users(self, rows: np.ndarray) -> np.ndarray:
        if not hasattr(self, "n_products_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(dataset) first")
        rows = np.asarray(rows, dtype=np.int64).astype(np.uint64)[:, None]
        cols = np.arange(self.n_products_, dtype=np.uint64)[None, :]
        with np.errstate(over="ignore"):
            key = _splitmix64(_splitmix64(np.uint64(self.seed) ^ rows) ^ cols)
        return (key >> np.uint64(11)).astype(np.float64) / float(1 << 53)
