"""Implicit feedback: events -> a weighted, time-decayed users x products matrix.

``w(u, i) = sum over events e of (u, i) of type_weight(e) * 0.5 ** (age_days(e) / half_life_days)``

with ``type_weight`` from :class:`recsys.config.InteractionWeights` (reviews
weigh ``review_weight_per_star * rating``) and ``age_days`` measured back from
the data set's ``as_of``. Rows follow ``dataset.users`` order and columns
``dataset.products`` order, so every model shares one index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.config import InteractionWeights
from recsys.data.dataset import Dataset

__all__ = ["Interactions", "event_weights"]


def event_weights(events: pd.DataFrame, as_of: pd.Timestamp, weights: InteractionWeights) -> np.ndarray:
    """Per-event weight: type weight times exponential time decay."""
    kind = events["event_type"].to_numpy()
    base = np.zeros(len(events), dtype=np.float64)
    for name in ("view", "favorite", "cart", "purchase"):
        base[kind == name] = weights.type_weight(name)
    is_review = kind == "review"
    base[is_review] = weights.review_weight_per_star * events["rating"].to_numpy(dtype=float)[is_review]
    age_days = (pd.Timestamp(as_of) - events["timestamp"]).dt.total_seconds().to_numpy() / 86400.0
    return base * np.power(0.5, np.clip(age_days, 0, None) / weights.half_life_days)


@dataclass
class Interactions:
    """The weighted matrix plus the id <-> index maps.

    ``matrix``: CSR float64, users x products. ``purchased``: CSR bool of
    (user, product) pairs with a purchase event (for "exclude purchased").
    """

    matrix: sp.csr_matrix
    purchased: sp.csr_matrix
    user_ids: pd.Index
    product_ids: pd.Index
    weights: InteractionWeights

    @classmethod
    def from_dataset(cls, dataset: Dataset, weights: InteractionWeights | None = None) -> Interactions:
        weights = weights or dataset.config.interactions
        user_ids = pd.Index(dataset.users["user_id"], name="user_id")
        product_ids = pd.Index(dataset.products["product_id"], name="product_id")
        events = dataset.events
        rows = user_ids.get_indexer(events["user_id"])
        cols = product_ids.get_indexer(events["product_id"])
        shape = (len(user_ids), len(product_ids))
        values = event_weights(events, dataset.as_of, weights)
        matrix = sp.csr_matrix((values, (rows, cols)), shape=shape, dtype=np.float64)
        matrix.sum_duplicates()
        matrix.sort_indices()
        is_purchase = events["event_type"].to_numpy() == "purchase"
        purchased = sp.csr_matrix(
            (np.ones(int(is_purchase.sum()), dtype=bool), (rows[is_purchase], cols[is_purchase])), shape=shape
        )
        purchased.sum_duplicates()
        purchased.sort_indices()
        return cls(matrix, purchased, user_ids, product_ids, weights)

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    def user_index(self, user_ids: pd.Series | list[str] | np.ndarray) -> np.ndarray:
        """Row index of each user id, -1 for ids not in the matrix."""
        return self.user_ids.get_indexer(pd.Index(user_ids))

    def product_index(self, product_ids: pd.Series | list[str] | np.ndarray) -> np.ndarray:
        """Column index of each product id, -1 for unknown ids."""
        return self.product_ids.get_indexer(pd.Index(product_ids))

    def history_lengths(self) -> np.ndarray:
        """Number of distinct products each user interacted with."""
        return np.diff(self.matrix.indptr)
