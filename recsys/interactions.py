"""Implicit feedback: events -> a weighted, time-decayed users x products matrix.

``w(u, i) = sum over events e of (u, i) of type_weight(e) * 0.5 ** (age_days(e) / half_life_days)``

with ``type_weight`` from :class:`recsys.config.InteractionWeights` (reviews
weigh ``review_weight_per_star * rating``) and ``age_days`` measured back from
the data set's ``as_of``. Rows follow ``dataset.users`` order and columns
``dataset.products`` order, so every model shares one index.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.config import EVENT_TYPES, ConfigError, InteractionWeights
from recsys.data.dataset import Dataset
from recsys.third_party import import_quietly

_CHUNK = 1 << 20  # events per chunk in _max_per_pair's position and value passes (8 MiB per int64 chunk)

__all__ = ["Interactions", "Weighting", "compact_csr", "dataset_event_weights", "event_weights", "model_matrix",
           "weighted_matrix"]


def compact_csr(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """``matrix`` with ``data`` and ``indices`` holding exactly ``nnz`` entries: after ``sum_duplicates``
    scipy keeps views into the per-event buffers (6.4M entries behind 4.5M at the large profile) unless
    they shrink by half; those views are copied here, so the buffers are freed. Same values, in place."""
    for name in ("data", "indices"):
        array = getattr(matrix, name)
        if array.base is not None and array.base.nbytes > array.nbytes:
            setattr(matrix, name, array.copy())
    return matrix


def event_weights(events: pd.DataFrame, as_of: pd.Timestamp, weights: InteractionWeights) -> np.ndarray:
    """Per-event weight: type weight times exponential time decay."""
    kind = pd.Index(EVENT_TYPES).get_indexer(events["event_type"])
    age_days = (pd.Timestamp(as_of) - events["timestamp"]).dt.total_seconds().to_numpy() / 86400.0
    return _decayed_weights(kind, events["rating"].to_numpy(dtype=float), age_days, weights)


def _decayed_weights(kind: np.ndarray, rating: np.ndarray, age_days: np.ndarray,
                     weights: InteractionWeights) -> np.ndarray:
    """:func:`event_weights` from per-event arrays: ``kind`` (position in
    ``EVENT_TYPES``), ``rating`` and ``age_days``."""
    # one weight per kind; reviews are set below, an unknown kind (-1: the appended 0) weighs 0
    per_kind = np.array([weights.type_weight(n) if n != "review" else 0.0 for n in EVENT_TYPES] + [0.0])
    base = per_kind[kind]
    is_review = kind == EVENT_TYPES.index("review")
    base[is_review] = weights.review_weight_per_star * rating[is_review]
    decay = np.clip(age_days, 0, None)  # the same operations, in place: one per-event temporary, not three
    decay /= weights.half_life_days
    np.power(0.5, decay, out=decay)
    base *= decay
    return base


def dataset_event_weights(dataset: Dataset, weights: InteractionWeights,
                          select: np.ndarray | None = None) -> np.ndarray:
    """:func:`event_weights` of ``dataset``'s events from its cached :meth:`~recsys.data.dataset.Dataset.event_index`;
    ``select`` (positions of events): those events' weights only, in that order (the same values, per event)."""
    index = dataset.event_index()
    kind, rating, age_days = index.kind, dataset.events["rating"].to_numpy(dtype=float), index.age_days
    if select is not None:
        kind, rating, age_days = kind[select], rating[select], age_days[select]
    return _decayed_weights(kind, rating, age_days, weights)


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
        index = dataset.event_index()
        rows, cols = index.user_row, index.product_col
        shape = (len(user_ids), len(product_ids))
        values = dataset_event_weights(dataset, weights)
        matrix = sp.csr_matrix((values, (rows, cols)), shape=shape, dtype=np.float64)
        matrix.sum_duplicates()
        matrix.sort_indices()
        compact_csr(matrix)
        is_purchase = index.kind == EVENT_TYPES.index("purchase")
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


# --------------------------------------------------------------------------- per-model input weighting
REPEATS = ("raw", "log", "binary")
SCHEMES = ("none", "bm25", "tfidf")


@dataclass(frozen=True)
class Weighting:
    """How one model weighs the events it learns from (or scores a profile from).

    Per event ``e`` of pair ``(u, i)``: ``w_e = type_weight(e) * 0.5 ** (age_days(e) / half_life_days)``
    (``half_life_days=None``: no decay; type weights from the data set's
    :class:`~recsys.config.InteractionWeights`). Per pair, by ``repeats``:
    ``raw`` ``sum_e w_e``; ``log`` ``log(1 + sum_e w_e)``; ``binary``
    ``max_e w_e`` (a repeated purchase counts once, at its strongest event).
    Then ``scheme`` reweights with ``implicit``'s IR weightings, treating items
    as documents and users as terms, as ``implicit``'s ``BM25Recommender`` and
    ``TFIDFRecommender`` do: ``bm25`` (``bm25_weight(X.T, K1, B).T``) or
    ``tfidf`` (``tfidf_weight(X.T).T``).
    """

    half_life_days: float | None = None
    repeats: str = "binary"
    scheme: str = "none"
    bm25_k1: float = 100.0
    bm25_b: float = 0.8

    def __post_init__(self) -> None:
        h = self.half_life_days
        if h is not None and (isinstance(h, bool) or not isinstance(h, (int, float)) or not h > 0):
            raise ConfigError(f"Weighting.half_life_days must be None or a number > 0, got {h!r}")
        if self.repeats not in REPEATS:
            raise ConfigError(f"Weighting.repeats must be one of {REPEATS}, got {self.repeats!r}")
        if self.scheme not in SCHEMES:
            raise ConfigError(f"Weighting.scheme must be one of {SCHEMES}, got {self.scheme!r}")
        if not isinstance(self.bm25_k1, (int, float)) or not self.bm25_k1 >= 0:
            raise ConfigError(f"Weighting.bm25_k1 must be a number >= 0, got {self.bm25_k1!r}")
        if not isinstance(self.bm25_b, (int, float)) or not 0 <= self.bm25_b <= 1:
            raise ConfigError(f"Weighting.bm25_b must be in [0, 1], got {self.bm25_b!r}")

    @classmethod
    def coerce(cls, value: Weighting | Mapping[str, Any] | None) -> Weighting | None:
        """``None``, a ``Weighting``, or its fields as a mapping (from a saved manifest or TOML file)."""
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            return cls(**dict(value))
        raise ConfigError(f"a Weighting must be None, a Weighting or a mapping of its fields, got {value!r}")


def weighted_matrix(dataset: Dataset, weighting: Weighting, user_ids: pd.Index, product_ids: pd.Index) -> sp.csr_matrix:
    """The users x products CSR float64 matrix of ``dataset``'s events under
    ``weighting`` (see :class:`Weighting`), rows and columns in the order of
    ``user_ids`` / ``product_ids`` (events of other ids are left out)."""
    index = dataset.event_index()
    rows, cols = _reindex(index.user_row, dataset.users["user_id"], user_ids), \
        _reindex(index.product_col, dataset.products["product_id"], product_ids)
    keep = (rows >= 0) & (cols >= 0)
    base = dataset.config.interactions
    half_life = weighting.half_life_days if weighting.half_life_days is not None else math.inf
    decayed = replace(base, half_life_days=half_life)
    values = dataset_event_weights(dataset, decayed)
    if not keep.all():
        values, rows, cols = values[keep], rows[keep], cols[keep]
    shape = (len(user_ids), len(product_ids))
    if weighting.repeats == "binary":
        matrix = _max_per_pair(rows, cols, values, shape)
    else:
        matrix = sp.csr_matrix((values, (rows, cols)), shape=shape, dtype=np.float64)
        matrix.sum_duplicates()
        if weighting.repeats == "log":
            matrix.data = np.log1p(matrix.data)
    if weighting.scheme != "none":
        neighbours = import_quietly("implicit.nearest_neighbours")

        items = matrix.T.tocoo()
        del matrix  # each copy is dropped once the next exists: two at a time, not four
        weighted = neighbours.bm25_weight(items, weighting.bm25_k1, weighting.bm25_b) if weighting.scheme == "bm25" \
            else neighbours.tfidf_weight(items)
        del items
        matrix = sp.csr_matrix(weighted.T, dtype=np.float64)
        del weighted
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


def _reindex(codes: np.ndarray, ids: pd.Series, index: pd.Index) -> np.ndarray:
    """``codes`` (positions in ``ids``) as positions in ``index`` (-1: not in it);
    no remapping when ``index`` lists ``ids`` in the same order."""
    if len(index) == len(ids) and index.equals(pd.Index(ids)):
        return codes
    return index.get_indexer(ids)[codes]


def _max_per_pair(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """CSR float64 with ``max`` of ``values`` over the events of each ``(row, col)`` pair
    (sorted indices, no duplicates): a sort by the pair key ``row * n_cols + col``, then
    ``np.maximum.reduceat`` over each run of equal keys (the max does not depend on the order within a run).
    The key arrays are updated in place (each fresh 8-byte-per-event array costs page faults)."""
    key = rows.astype(np.int64)
    key *= shape[1]
    key += cols
    pos_bits = max(1, int(len(key)).bit_length())
    if (max(1, shape[0] * shape[1]).bit_length() + pos_bits) <= 63:  # (key, position) packed in one int64:
        key <<= pos_bits
        for start in range(0, len(key), _CHUNK):  # positions and sorted values in chunks: no per-event temporaries
            key[start : start + _CHUNK] |= np.arange(start, min(start + _CHUNK, len(key)), dtype=np.int64)
        key.sort()  # a plain (SIMD) sort
        sorted_values = np.empty(len(key), dtype=values.dtype)
        for start in range(0, len(key), _CHUNK):
            sorted_values[start : start + _CHUNK] = values[key[start : start + _CHUNK] & ((1 << pos_bits) - 1)]
        key >>= pos_bits
    else:
        order = np.argsort(key)
        key, sorted_values = key[order], values[order]
        del order
    new = np.empty(len(key), dtype=bool)
    new[:1] = True
    np.not_equal(key[1:], key[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    del new
    data = np.maximum.reduceat(sorted_values, starts) if len(key) else np.zeros(0)
    del sorted_values
    pair = key[starts]
    del key, starts
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(pair // shape[1], minlength=shape[0]), out=indptr[1:])
    return sp.csr_matrix((data, (pair % shape[1]).astype(np.int32), indptr), shape=shape)


def model_matrix(dataset: Dataset, interactions: Interactions, weighting: Weighting | None) -> sp.csr_matrix:
    """``interactions.matrix`` when ``weighting`` is None (the shared matrix),
    else :func:`weighted_matrix` on the same row and column index."""
    if weighting is None:
        return interactions.matrix
    return weighted_matrix(dataset, weighting, interactions.user_ids, interactions.product_ids)
