"""Neighbourhood models on the weighted interaction matrix ``X`` (users x products).

Similarity (cosine with optional shrinkage in the denominator, Sarwar et al.
2001; shrinkage as in Koren/Bell):

``sim(a, b) = <x_a, x_b> / (||x_a|| ||x_b|| + shrinkage)``

over item columns (:class:`ItemKNN`) or user rows (:class:`UserKNN`); only the
``k`` most similar neighbours of each item (user) are kept, self-similarity
excluded, ties to the lower index. The neighbour matrix ``W`` is CSR float32.

Scores (Deshpande & Karypis 2004 for items):

* item-based: ``score(u, j) = sum_i x_ui W[i, j]``, i.e. ``x_u @ W``. One
  user's answer reads their row and the neighbour lists of the items in it.
* user-based: ``score(u, j) = sum_v W[u, v] x_vj``, i.e. ``W[u] @ X``.

Both are sparse: only products reachable through a neighbour get a score;
all others score 0 and come after them in column order (the base class's
tie rule), which :meth:`NeighbourRecommender.recommend` reproduces exactly
without densifying.
"""

from __future__ import annotations

import dataclasses
import importlib
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.data.dataset import Dataset
from recsys.interactions import Interactions, Weighting, model_matrix
from recsys.models.base import Recommender, check_n
from recsys.models.kernels import history_scores, row_flops, sparse_product
from recsys.models.ranking import (
    entries_frame,
    first_allowed,
    keep_topk,
    ranked_entries,
    row_of_entries,
    take_rows,
    top_n_positive,
)
from recsys.validation import check_ints, check_numbers

#: the k-NN's default input, chosen on Online Retail and the synthetic thesis profile (benchmarks/bench_quality.py):
#: repeats counted once (at the most recent, strongest event), 30-day half-life, TF-IDF over users
DEFAULT_KNN_WEIGHTING = Weighting(half_life_days=30.0, repeats="binary", scheme="tfidf")

__all__ = ["DEFAULT_KNN_WEIGHTING", "KNNConfig", "NeighbourRecommender", "ItemKNN", "UserKNN", "cosine_topk", "sparse_product"]


@dataclass(frozen=True)
class KNNConfig:
    """Settings of the neighbourhood models.

    ``k``: neighbours kept per item (user). ``shrinkage``: added to the
    cosine denominator, damping similarities built on little overlap (0 =
    plain cosine). ``min_similarity``: neighbours below it are dropped.
    ``block_entries``: bound on the multiply-adds (hence the similarity
    entries) of one block of rows in :func:`cosine_topk`'s scipy path (memory,
    not results; the compiled kernels the fit runs hold ``O(rows x k)`` and
    materialise no product). ``train_weighting``: the input the
    similarities are learned from; ``profile_weighting``: the user profile
    ``x_u`` scores are computed from (:class:`~recsys.interactions.Weighting`;
    ``None``: the shared interaction matrix passed to ``fit``).
    ``self_similarity``: the weight of an item's similarity to itself, added
    to ``W`` (item k-NN only): a product the user interacted with but did not
    buy (viewed, carted) scores ``self_similarity * x_ui`` on top of its
    neighbours' votes; ``1.0`` is what ``implicit``'s ``CosineRecommender``
    keeps (self among its neighbours, cosine 1), ``0`` recommends only other products.
    """

    k: int = 50
    shrinkage: float = 0.0
    min_similarity: float = 0.0
    block_entries: int = 1 << 23
    train_weighting: Weighting | None = field(default_factory=lambda: DEFAULT_KNN_WEIGHTING)
    profile_weighting: Weighting | None = field(default_factory=lambda: DEFAULT_KNN_WEIGHTING)
    self_similarity: float = 1.0

    @classmethod
    def plain(cls, **overrides: object) -> KNNConfig:
        """Plain cosine k-NN on the shared interaction matrix passed to ``fit``
        (no own weighting, no self similarity): the textbook model."""
        return cls(**{"train_weighting": None, "profile_weighting": None, "self_similarity": 0.0, **overrides})

    def __post_init__(self) -> None:
        check_ints(self, "k", "block_entries")
        check_numbers(self, "shrinkage", low=0)
        check_numbers(self, "min_similarity", low=0, high=1)
        check_numbers(self, "self_similarity", low=0)
        object.__setattr__(self, "train_weighting", Weighting.coerce(self.train_weighting))
        object.__setattr__(self, "profile_weighting", Weighting.coerce(self.profile_weighting))


def _row_norms(matrix: sp.csr_matrix) -> np.ndarray:
    return np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())


def cosine_topk(
    left: sp.csr_matrix,
    right: sp.csr_matrix,
    k: int,
    shrinkage: float = 0.0,
    min_similarity: float = 0.0,
    self_columns: np.ndarray | None = None,
    block_entries: int = 1 << 23,
    method: str = "auto",
) -> sp.csr_matrix:
    """Top-``k`` shrunk cosine similarities of each row of ``left`` to the rows of ``right``.

    Returns CSR float32 ``(left rows x right rows)``, sorted indices; row ``a``
    keeps at most ``k`` entries ``sim(a, b) > 0`` and ``>= min_similarity``,
    never ``b == self_columns[a]``; ties at the ``k``-th value go to the lower
    ``b``. Dot products (summed over the shared features in ascending order),
    norms and the selection are float64, then cast; a NaN similarity (0/0,
    inf/inf) is dropped. Inputs are taken in canonical form (float64, sorted
    indices, duplicates summed).

    ``method``: ``"compiled"`` runs the fused numba kernels of
    :mod:`recsys.models.knn_kernels` (no materialised product; ``left is
    right`` with ``self_columns = arange`` computes each pair once);
    ``"scipy"`` the reference path (:func:`_cosine_topk_scipy`, blocks of at
    most ``block_entries`` multiply-adds); ``"auto"`` the compiled kernels
    where numba imports. Both give the same result bit for bit
    (``tests/test_knn_kernels.py``).
    """
    if method not in ("auto", "compiled", "scipy"):
        raise ValueError(f"cosine_topk: method must be 'auto', 'compiled' or 'scipy', got {method!r}")
    same = left is right
    left = _canonical(left)
    right = left if same else _canonical(right)
    left_norm = _row_norms(left)
    right_norm = left_norm if same else _row_norms(right)
    # the kernels index rows and columns with int32
    fits = max(left.shape[0], right.shape[0]) < np.iinfo(np.int32).max
    kernels = _compiled_kernels() if method != "scipy" and fits else None
    if method == "compiled" and kernels is None:
        raise RuntimeError("cosine_topk(method='compiled') needs numba, which cannot be imported" if fits else
                           f"cosine_topk(method='compiled'): {max(left.shape[0], right.shape[0])} rows exceed int32")
    if kernels is None:
        return _cosine_topk_scipy(left, right, left_norm, right_norm, k, shrinkage, min_similarity, self_columns,
                                  block_entries)
    n_left = left.shape[0]
    if self_columns is not None and _is_identity(left, right, self_columns):
        return kernels.topk_symmetric(left, _transposed(left), left_norm, k, shrinkage, min_similarity)
    own = np.full(n_left, -1, dtype=np.int64) if self_columns is None else np.asarray(self_columns, dtype=np.int64)
    return kernels.topk_general(left, _transposed(right), left_norm, right_norm, k, shrinkage, min_similarity, own)


def _compiled_kernels() -> ModuleType | None:
    """:mod:`recsys.models.knn_kernels` (imports numba; compiles on first call), or None without numba."""
    try:
        return importlib.import_module("recsys.models.knn_kernels")
    except ImportError:  # numba is a core dependency: an environment without it still fits, slower
        return None


def _scoring_kernels() -> ModuleType | None:
    """:mod:`recsys.models.knn_scoring` (the compiled block path), or None without numba."""
    try:
        return importlib.import_module("recsys.models.knn_scoring")
    except ImportError:  # the numpy/scipy block path gives the same results, slower
        return None


def _float32_sparse(hint: object) -> bool:
    """``hint`` is sparse float32 scores (what the k-NN's block scoring returns)."""
    return sp.issparse(hint) and hint.dtype == np.float32 and hint.format == "csr"


def _product(history: sp.spmatrix, right: sp.csr_matrix) -> sp.csr_matrix:
    """``history @ right`` in float32, exactly :func:`~recsys.models.kernels.sparse_product`
    (compiled: :func:`~recsys.models.knn_scoring.block_product` where numba imports)."""
    left = sp.csr_matrix(history, dtype=np.float32)
    kernels = _scoring_kernels()
    got = kernels.block_product(left, right) if kernels is not None else None
    return got if got is not None else sparse_product(left, right)


def _canonical(matrix: sp.spmatrix) -> sp.csr_matrix:
    """CSR float64 with sorted indices and no duplicates (a copy only when needed)."""
    out = sp.csr_matrix(matrix, dtype=np.float64)
    if not out.has_canonical_format:
        out = out.copy()
        out.sum_duplicates()
    return out


def _transposed(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """``matrix^T`` as canonical CSR (each row's entries in ascending column order)."""
    return _canonical(matrix.T.tocsr())


def _is_identity(left: sp.csr_matrix, right: sp.csr_matrix, self_columns: np.ndarray) -> bool:
    """``left`` and ``right`` are the same matrix and every row's self column is its own row."""
    own = np.asarray(self_columns)
    if left.shape != right.shape or own.shape != (left.shape[0],) or not np.array_equal(own, np.arange(len(own))):
        return False
    return left is right or (np.array_equal(left.indptr, right.indptr) and np.array_equal(left.indices, right.indices)
                             and np.array_equal(left.data, right.data))


def _cosine_topk_scipy(
    left: sp.csr_matrix,
    right: sp.csr_matrix,
    left_norm: np.ndarray,
    right_norm: np.ndarray,
    k: int,
    shrinkage: float,
    min_similarity: float,
    self_columns: np.ndarray | None,
    block_entries: int,
) -> sp.csr_matrix:
    """The reference path of :func:`cosine_topk` (canonical float64 inputs and their row norms).

    Computed in row blocks of at most ``block_entries`` multiply-adds (one row
    at least; :func:`~recsys.models.kernels.row_flops`) by scipy's product
    kernel (:func:`~recsys.models.kernels.sparse_product`, no symbolic pass),
    so memory stays bounded; a row's result does not depend on the blocks.
    Each block keeps its rows' top ``k + 1`` of all similarities; the filters
    (self, ``> 0``, ``>= min_similarity``) then run on those few entries: every
    entry they drop ranks below every entry they keep, and at most one (self)
    of the kept ones is missing, so the top ``k`` of what remains is the top
    ``k`` of the filtered row.
    """
    # 0/0 or inf/inf make NaN, which ranks nowhere: such inputs clear NaN per block (as dropped entries)
    careful = not (np.isfinite(left.data).all() and np.isfinite(right.data).all()) or bool(
        ((left_norm == 0) & (np.diff(left.indptr) > 0)).any() or ((right_norm == 0) & (np.diff(right.indptr) > 0)).any())
    right_t = right.T.tocsr()
    bounds = _blocks(row_flops(left, right_t), block_entries)
    blocks = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        block = sparse_product(left[start:stop], right_t)
        with np.errstate(invalid="ignore" if careful else "warn"):
            block.data /= np.repeat(left_norm[start:stop], np.diff(block.indptr)) * right_norm[block.indices] + shrinkage
        if careful:
            block.data[np.isnan(block.data)] = 0.0
        blocks.append(keep_topk(block, k + 1))
    if not blocks:
        return sp.csr_matrix(left.shape[:1] + right.shape[:1], dtype=np.float32)
    out = sp.vstack(blocks, format="csr")
    drop = ~(out.data > 0) | (out.data < min_similarity)
    if self_columns is not None:
        drop |= out.indices == np.asarray(self_columns)[row_of_entries(out)]
    out.data[drop] = 0.0
    out.eliminate_zeros()
    out = keep_topk(out, k).astype(np.float32)
    out.sort_indices()
    return out


def _blocks(flops: np.ndarray, budget: int) -> np.ndarray:
    """Row boundaries ``[0, ..., n]`` of consecutive blocks whose summed ``flops`` stay
    within ``budget`` (a row above it forms a block of its own)."""
    bounds, start, total = [0], 0, np.concatenate(([0], np.cumsum(flops)))
    while start < len(flops):
        stop = int(np.searchsorted(total, total[start] + budget, side="right")) - 1
        start = max(stop, start + 1)
        bounds.append(start)
    return np.asarray(bounds, dtype=np.int64)


class NeighbourRecommender(Recommender):
    """Shared scoring and the sparse top-n path of the neighbourhood models.

    Subclasses implement :meth:`score_history`: sparse scores for a block of
    user histories. :meth:`recommend` gives exactly the frame of the base
    class's dense path (same scores, ranks and ties) from sparse scores.
    The hybrid's block path (product, row range, top candidates, scores at
    candidates) runs compiled (:mod:`recsys.models.knn_scoring`) where numba
    imports, with the same results as the numpy/scipy path it falls back to.
    """

    def __init__(self, config: KNNConfig | None = None) -> None:
        self.config = config if config is not None else KNNConfig()

    similarity_: sp.csr_matrix

    def _check_fitted(self) -> None:
        if not hasattr(self, "similarity_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(dataset) first")

    def neighbour_entries(self) -> int:
        """Stored neighbour entries (nonzeros of the similarity matrix)."""
        self._check_fitted()
        return int(self.similarity_.nnz)

    @abstractmethod
    def score_history(
        self, history: sp.csr_matrix, rows: np.ndarray | None = None, fresh: np.ndarray | None = None
    ) -> sp.csr_matrix:
        """Sparse scores (``len(history)`` x products) for user histories.

        ``history`` holds one interaction row per user (weights as in
        :class:`~recsys.interactions.Interactions`); ``rows`` their rows in the
        fitted matrix (``-1``/beyond: not in it); ``fresh`` marks histories
        that changed since ``fit`` (a user-based model recomputes those
        users' neighbours).
        """

    def score_one(
        self, items: np.ndarray, weights: np.ndarray, row: int = -1, fresh: bool = False
    ) -> np.ndarray:
        """Dense float32 scores (products,) for one history (``items`` with
        ``weights``), bit-identical to that row of :meth:`score_history`."""
        n_items = self.interactions_.shape[1]
        history = sp.csr_matrix((np.asarray(weights, dtype=np.float32), np.asarray(items),
                                 np.array([0, len(items)])), shape=(1, n_items))
        scores = self.score_history(history, np.array([row]), np.array([fresh]))
        return scores.toarray().ravel().astype(np.float32)

    def score_users(self, rows: np.ndarray) -> np.ndarray:
        """Dense scores of fitted user rows (-1: unknown, all zero); one known
        row goes through :meth:`score_one` (same scores, no sparse objects)."""
        self._check_fitted()
        rows = np.asarray(rows, dtype=np.int64)
        profiles = self._profiles()
        if len(rows) == 1 and 0 <= rows[0] < profiles.shape[0]:
            start, end = profiles.indptr[rows[0]], profiles.indptr[rows[0] + 1]
            one = self.score_one(profiles.indices[start:end], profiles.data[start:end], int(rows[0]))
            return one.astype(np.float64)[None, :]
        history = take_rows(profiles, rows)
        return self.score_history(history, rows).toarray().astype(np.float64)

    def score_block(self, rows: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix | None]:
        """:meth:`score_users` and, for more than one row, the sparse scores it densified: the hint
        from which :meth:`score_range` and :meth:`top_candidates` read the few stored entries."""
        self._check_fitted()
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 1:
            return self.score_users(rows), None
        scores = self.score_history(take_rows(self._profiles(), rows), rows).tocsr()
        return scores.toarray().astype(np.float64), scores  # exactly score_users' block

    def score_range(self, rows: np.ndarray, scores: np.ndarray,
                    hint: sp.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The base class's row range from the stored entries (and an implicit 0 where a row has one):
        compiled (:func:`~recsys.models.knn_scoring.range_top`) for positive float32 scores."""
        kernels = _scoring_kernels() if _float32_sparse(hint) else None
        got = kernels.range_top(hint, 0, None) if kernels is not None else None
        return got[:3] if got is not None else self._score_range_numpy(rows, scores, hint)

    def top_candidates(self, rows: np.ndarray, scores: np.ndarray, m: int, floor: np.ndarray,
                       allowed: np.ndarray, hint: sp.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The base class's top ``m`` from the stored entries: with ``floor >= 0`` an unstored 0
        never counts, so the candidates are the stored entries above the floor that are allowed
        (all positive), best first, ties to the lower column (compiled:
        :func:`~recsys.models.knn_scoring.top_above`; else :func:`~recsys.models.ranking.top_n_positive`)."""
        kernels = _scoring_kernels() if _float32_sparse(hint) else None
        got = kernels.top_above(hint, m, floor, allowed) if kernels is not None else None
        return got if got is not None else self._top_candidates_numpy(rows, scores, m, floor, allowed, hint)

    def range_and_top(self, rows: np.ndarray, scores: np.ndarray | None, m: int, allowed: np.ndarray,
                      hint: sp.csr_matrix | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`score_range` and :meth:`top_candidates` at its floor in one compiled visit of the
        stored entries (:func:`~recsys.models.knn_scoring.range_top`; positive float32 scores)."""
        kernels = _scoring_kernels() if _float32_sparse(hint) else None
        got = kernels.range_top(hint, m, allowed) if kernels is not None else None
        if got is not None:
            return got
        high, low, floor = self._score_range_numpy(rows, scores, hint)
        cols, ok = self._top_candidates_numpy(rows, scores, m, floor, allowed, hint)
        return high, low, floor, cols, ok

    def scores_at(self, rows: np.ndarray, r: np.ndarray, c: np.ndarray, scores: np.ndarray | None,
                  hint: object = None) -> np.ndarray:
        """float64 scores at ``(r[i], c[i])``: read from the sparse scores (``hint``) where no dense
        block was built (:func:`~recsys.models.knn_scoring.values_at`: ``hint.toarray()[r, c]``)."""
        if scores is not None or not sp.issparse(hint):
            return super().scores_at(rows, r, c, scores, hint)
        kernels = _scoring_kernels()
        if kernels is None:
            return hint.toarray()[r, c].astype(np.float64)
        return kernels.values_at(hint if hint.format == "csr" else hint.tocsr(), r, c)

    def _score_range_numpy(self, rows: np.ndarray, scores: np.ndarray,
                           hint: sp.csr_matrix | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`score_range` in numpy (any finite hint; without one, the base class's)."""
        if hint is None or not np.isfinite(hint.data).all():
            return super().score_range(rows, scores)
        counts = np.diff(hint.indptr)
        high, low = np.full(len(counts), -np.inf), np.full(len(counts), np.inf)
        has = np.flatnonzero(counts > 0)
        if len(has):
            data, starts = hint.data.astype(np.float64), hint.indptr[has]
            high[has], low[has] = np.maximum.reduceat(data, starts), np.minimum.reduceat(data, starts)
        partial = counts < hint.shape[1]  # the row holds an unstored 0
        high[partial], low[partial] = np.maximum(high[partial], 0.0), np.minimum(low[partial], 0.0)
        return high, low, low.copy()

    def _top_candidates_numpy(self, rows: np.ndarray, scores: np.ndarray, m: int, floor: np.ndarray,
                              allowed: np.ndarray, hint: sp.csr_matrix | None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`top_candidates` in numpy (float32 finite hint, ``floor >= 0``; else the base class's)."""
        if hint is None or hint.dtype != np.float32 or (np.asarray(floor) < 0).any() \
                or not np.isfinite(hint.data).all():
            return super().top_candidates(rows, scores, m, floor, allowed)
        n_rows, n_cols = hint.shape
        r = row_of_entries(hint)
        keep = (hint.data.astype(np.float64) > floor[r]) & allowed.ravel()[r * n_cols + hint.indices]
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(r[keep], minlength=n_rows), out=indptr[1:])
        kept = sp.csr_matrix((hint.data[keep], hint.indices[keep], indptr), shape=hint.shape)
        m = min(m, n_cols)
        top = top_n_positive(kept, None, m)
        if top is None:
            return super().top_candidates(rows, scores, m, floor, allowed)
        tr, tc, _, rank = top
        cols, ok = np.zeros((n_rows, m), dtype=np.int64), np.zeros((n_rows, m), dtype=bool)
        cols[tr, rank - 1], ok[tr, rank - 1] = tc, True
        return cols, ok

    def profile_interactions(self) -> Interactions:
        """The fitted :class:`~recsys.interactions.Interactions` with the
        profile matrix scores are computed from (``profile_weighting``), for a
        live history that must score fitted users exactly as :meth:`recommend`
        does. Events added later are weighed by the shared rule
        (:func:`~recsys.interactions.event_weights`), not re-transformed."""
        self._check_fitted()
        return dataclasses.replace(self.interactions_, matrix=self._profiles())

    def _profiles(self) -> sp.csr_matrix:
        """The users' profiles ``x_u`` scores are computed from (``profile_weighting``)."""
        return getattr(self, "profile_matrix_", self.interactions_.matrix)

    def _fit(self, dataset: Dataset, interactions: Interactions) -> None:
        if interactions.matrix.nnz == 0:
            raise ValueError(
                f"cannot fit {type(self).__name__}: the data set has no events "
                f"({dataset.n_users} users, {dataset.n_products} products)"
            )
        cfg = self.config
        train = model_matrix(dataset, interactions, cfg.train_weighting)
        self._fit_neighbours(train)
        if cfg.profile_weighting is not None:  # the same weighting: the same matrix, built once
            self.profile_matrix_ = train if cfg.profile_weighting == cfg.train_weighting \
                else model_matrix(dataset, interactions, cfg.profile_weighting)
        elif hasattr(self, "profile_matrix_"):
            del self.profile_matrix_

    @abstractmethod
    def _fit_neighbours(self, matrix: sp.csr_matrix) -> None: ...

    def recommend(self, user_ids: Sequence[str] | str, n: int = 10, exclude_purchased: bool = True) -> pd.DataFrame:
        """Top-``n`` per user from sparse scores; identical to the dense base path."""
        self._check_fitted()
        ids, n, rows = self._request(user_ids, n)
        frames = []
        for start in range(0, max(len(ids), 1), self.chunk_size):
            chunk = rows[start : start + self.chunk_size]
            history = take_rows(self._profiles(), chunk)
            banned = take_rows(self.interactions_.purchased, chunk) if exclude_purchased else None
            scores = self.score_history(history, chunk)
            r, c, v, rank = top_n_sparse(scores, banned, n)
            frames.append(
                entries_frame(ids[start : start + self.chunk_size], self.interactions_.product_ids,
                              r, c, v, rank, self.reason)
            )
        return pd.concat(frames, ignore_index=True)


def top_n_sparse(
    scores: sp.csr_matrix, banned: sp.csr_matrix | None, n: int, pad_zeros: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Top-``n`` per row of sparse non-negative ``scores`` without the ``banned`` entries.

    Rows with fewer than ``n`` positive scores are padded, if ``pad_zeros``,
    with score-0 products in column order (what a dense ranking with ties
    broken by column gives). Returns ``rows, cols, scores, rank`` ordered by
    (row, rank).
    """
    scores = sp.csr_matrix(scores, dtype=np.float32)  # the neighbour scores are float32 already (no copy)
    fast = top_n_positive(scores, banned, n)
    if fast is None:
        raise ValueError(f"top_n_sparse: {scores.shape[1]} columns or {scores.nnz} entries exceed 2**31")
    r, c, v, rank = fast
    n_products = scores.shape[1]
    got = np.bincount(r, minlength=scores.shape[0])
    short = np.flatnonzero(got < min(n, n_products))
    if not pad_zeros or len(short) == 0:
        return r, c, v.astype(np.float64), rank
    taken = sp.csr_matrix((np.ones(len(r), dtype=bool), (r, c)), shape=scores.shape)
    excluded = take_rows(taken + banned if banned is not None else taken, short).astype(bool)
    width = min(n_products, n + int(np.diff(excluded.indptr).max(initial=0)))
    orders = np.broadcast_to(np.arange(width, dtype=np.int64), (len(short), width))
    pr, pc, pos = first_allowed(orders, excluded, n - got[short])
    rows = np.concatenate([r, short[pr]])
    cols = np.concatenate([c, pc])
    vals = np.concatenate([v.astype(np.float64), np.zeros(len(pr))])
    ranks = np.concatenate([rank, got[short][pr] + pos + 1])
    order = np.lexsort((ranks, rows))
    return rows[order], cols[order], vals[order], ranks[order]


class ItemKNN(NeighbourRecommender):
    """Item-based cosine k-NN: ``score(u, .) = x_u @ W`` with ``W`` the
    top-``k`` item-item similarities (CSR float32, ``similarity_``)."""

    name = "item_knn"
    reason = "Similar to products you interacted with"

    def _fit_neighbours(self, matrix: sp.csr_matrix) -> None:
        items = matrix.T.tocsr()
        cfg = self.config
        self.similarity_ = cosine_topk(items, items, cfg.k, cfg.shrinkage, cfg.min_similarity,
                                       np.arange(items.shape[0]), cfg.block_entries)
        if cfg.self_similarity > 0:
            eye = sp.identity(items.shape[0], dtype=np.float32, format="csr") * np.float32(cfg.self_similarity)
            self.similarity_ = sp.csr_matrix(self.similarity_ + eye, dtype=np.float32)
            self.similarity_.sort_indices()

    def score_history(
        self, history: sp.csr_matrix, rows: np.ndarray | None = None, fresh: np.ndarray | None = None
    ) -> sp.csr_matrix:
        self._check_fitted()
        return _product(history, self.similarity_)

    def score_one(
        self, items: np.ndarray, weights: np.ndarray, row: int = -1, fresh: bool = False
    ) -> np.ndarray:
        """``x_u @ W`` for one user without building sparse objects
        (:func:`~recsys.models.kernels.history_scores`; identical scores)."""
        return history_scores(self.similarity_, items, weights)

    def neighbours(self, product_id: str, n: int | None = None) -> pd.DataFrame:
        """The stored neighbours of one product: ``neighbour_id, similarity, rank``."""
        self._check_fitted()
        col = self.interactions_.product_index([product_id])[0]
        if col < 0:
            raise ValueError(f"unknown product id {product_id!r}: not in the fitted catalogue")
        r, c, v, rank = ranked_entries(take_rows(self.similarity_, np.array([col])))
        other = c != col  # self_similarity > 0 stores the item itself; it is no neighbour
        r, c, v, rank = r[other], c[other], v[other], np.arange(1, int(other.sum()) + 1)
        frame = pd.DataFrame({"product_id": product_id,
                              "neighbour_id": np.asarray(self.interactions_.product_ids, dtype=object)[c],
                              "similarity": v.astype(np.float64), "rank": rank})
        return frame.head(check_n(n)) if n is not None else frame


class UserKNN(NeighbourRecommender):
    """User-based cosine k-NN: ``score(u, .) = W[u] @ X`` with ``W`` the
    top-``k`` user-user similarities (``similarity_``). A user whose history
    changed after ``fit`` (or who is new) gets their neighbours recomputed
    against the fitted profiles (work proportional to their co-raters)."""

    name = "user_knn"
    reason = "Similar users also liked this"

    profiles_: sp.csr_matrix

    def _fit_neighbours(self, matrix: sp.csr_matrix) -> None:
        cfg = self.config
        self.profiles_ = sp.csr_matrix(matrix, dtype=np.float32)
        self.similarity_ = cosine_topk(matrix, matrix, cfg.k, cfg.shrinkage, cfg.min_similarity,
                                       np.arange(matrix.shape[0]), cfg.block_entries)

    def score_history(
        self, history: sp.csr_matrix, rows: np.ndarray | None = None, fresh: np.ndarray | None = None
    ) -> sp.csr_matrix:
        self._check_fitted()
        n_users = self.similarity_.shape[0]
        rows = np.full(history.shape[0], -1, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        fresh = np.zeros(len(rows), dtype=bool) if fresh is None else np.asarray(fresh, dtype=bool)
        known = (rows >= 0) & (rows < n_users)
        recompute = np.flatnonzero(~known | fresh)
        sims = take_rows(self.similarity_, np.where(known & ~fresh, rows, -1))
        if len(recompute):
            cfg = self.config
            own = np.where(known[recompute], rows[recompute], -1)
            new = cosine_topk(take_rows(sp.csr_matrix(history), recompute), self.profiles_, cfg.k,
                              cfg.shrinkage, cfg.min_similarity, own, cfg.block_entries)
            place = sp.csr_matrix((np.ones(len(recompute), dtype=np.float32), (recompute, np.arange(len(recompute)))),
                                  shape=(len(rows), len(recompute)))
            sims = (sims + place @ new).tocsr()
        return _product(sims, self.profiles_)
