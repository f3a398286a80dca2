"""Stage 2 collaborative model: PureSVD for ranking.

``PureSVD`` (Cremonesi, Koren, Turrin, RecSys 2010) factorises the weighted,
time-decayed implicit matrix ``R`` (users x products, see
:mod:`recsys.interactions`) by a rank-``k`` truncated SVD ``R ~ U_k S_k V_k^T``
and scores ``r_hat_u = r_u V_k V_k^T = (U_k S_k)_u V_k^T``. Missing entries
count as zeros, which is what makes it a good top-N ranker on implicit data.
``affinity`` exposes these scores to the deals ("high affinity, not yet bought").
The Surprise rating models live in :mod:`recsys.evaluation.peers.surprise_models`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from recsys.data.dataset import Dataset
from recsys.interactions import Interactions, Weighting, model_matrix
from recsys.models.base import Recommender, check_user_ids
from recsys.models.ranking import entries_frame, nonzero_rc, nth_largest, row_of_entries, take_rows
from recsys.validation import check_ints

__all__ = ["PureSVD", "SVDConfig"]


# --------------------------------------------------------------------------- PureSVD
@dataclass(frozen=True)
class SVDConfig:
    """PureSVD settings: rank ``n_factors``, the ARPACK start-vector seed, and
    ``weighting``, the input factorised (:class:`~recsys.interactions.Weighting`;
    ``None``: the shared interaction matrix passed to ``fit``; default: log of
    the summed weights, 30-day half-life, chosen by benchmarks/bench_quality.py)."""

    n_factors: int = 50
    random_state: int = 42
    weighting: Weighting | None = field(default_factory=lambda: Weighting(half_life_days=30.0, repeats="log"))

    def __post_init__(self) -> None:
        check_ints(self, "n_factors")
        object.__setattr__(self, "weighting", Weighting.coerce(self.weighting))


class PureSVD(Recommender):
    """Truncated SVD of the weighted implicit matrix, for top-N ranking.

    Learned state: ``item_factors_`` (``V_k``, products x k),
    ``user_factors_`` (``U_k S_k = R V_k``, users x k), ``singular_values_``
    (descending) and ``explained_energy_`` (share of ``||R||_F^2`` the rank-k
    approximation keeps). An unknown user is scored as the mean user
    ``mean(R) V_k V_k^T`` (a popularity-like profile), with its own reason.
    """

    name = "svd"
    reason = "Matches the taste profile of shoppers like you"
    #: users per block in :meth:`recommend`: a users x products float32 screen that stays in cache
    chunk_size = 128
    unknown_reason = "Popular with shoppers"

    def __init__(self, config: SVDConfig | None = None) -> None:
        self.config = config or SVDConfig()

    def _fit(self, dataset: Dataset, interactions: Interactions) -> None:
        matrix = model_matrix(dataset, interactions, self.config.weighting).astype(np.float64)
        k = self.config.n_factors
        limit = min(matrix.shape) - 1
        if k > limit:
            raise ValueError(
                f"SVDConfig.n_factors={k} must be < min(n_users, n_products) = {limit + 1} for a truncated SVD"
            )
        if matrix.nnz == 0:
            raise ValueError("PureSVD needs at least one interaction; the interaction matrix is all zeros")
        u, s, vt = spla.svds(matrix, k=k, solver="arpack", random_state=self.config.random_state)
        order = np.argsort(-s, kind="stable")
        s, vt = s[order], vt[order]
        # fix the sign of each component (largest |loading| positive) so factors are reproducible
        signs = np.sign(vt[np.arange(k), np.argmax(np.abs(vt), axis=1)])
        signs[signs == 0] = 1.0
        vt = vt * signs[:, None]
        self.singular_values_ = s
        self.item_factors_ = np.ascontiguousarray(vt.T)
        self.user_factors_ = np.asarray(matrix @ self.item_factors_)
        self.mean_user_factors_ = np.asarray(matrix.mean(axis=0)).ravel() @ self.item_factors_
        total = float(matrix.multiply(matrix).sum())
        self.explained_energy_ = float(np.sum(s**2) / total)

    @classmethod
    def from_factors(
        cls, config: SVDConfig, dataset: Dataset, interactions: Interactions, user_factors: np.ndarray,
        item_factors: np.ndarray, singular_values: np.ndarray, mean_user_factors: np.ndarray,
        explained_energy: float = float("nan"),
    ) -> PureSVD:
        """A fitted model from stored factors (e.g. a Stage 2 artifact set),
        rows aligned with ``interactions``' users and products."""
        users = np.asarray(user_factors, dtype=np.float64)
        items = np.ascontiguousarray(np.asarray(item_factors, dtype=np.float64))
        if users.shape != (len(interactions.user_ids), items.shape[1]) or items.shape[0] != len(
                interactions.product_ids):
            raise ValueError(
                f"factor shapes {users.shape} / {items.shape} do not match {len(interactions.user_ids)} users x "
                f"{len(interactions.product_ids)} products"
            )
        model = cls(config)
        model.dataset_, model.interactions_ = dataset, interactions
        model.user_factors_, model.item_factors_ = users, items
        model.singular_values_ = np.asarray(singular_values, dtype=np.float64)
        model.mean_user_factors_ = np.asarray(mean_user_factors, dtype=np.float64)
        model.explained_energy_ = float(explained_energy)
        return model

    def fold_in(self, rows: sp.spmatrix | np.ndarray) -> np.ndarray:
        """User factors ``r_u V_k`` for interaction rows not seen at fit time
        (e.g. after new events): no refit needed."""
        self._check_fitted()
        rows = sp.csr_matrix(rows) if not sp.issparse(rows) else rows.tocsr()
        if rows.shape[1] != self.item_factors_.shape[0]:
            raise ValueError(f"fold_in expects rows with {self.item_factors_.shape[0]} columns, got {rows.shape[1]}")
        return np.asarray(rows @ self.item_factors_)

    def _factors(self, rows: np.ndarray) -> np.ndarray:
        """User factors of ``rows`` (float64; unknown users, -1: the mean user's)."""
        rows = np.asarray(rows, dtype=np.int64)
        factors = self.user_factors_[np.where(rows >= 0, rows, 0)]
        factors[rows < 0] = self.mean_user_factors_
        return factors

    def score_users(self, rows: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return self._factors(rows) @ self.item_factors_.T

    def recommend(self, user_ids: Sequence[str] | str, n: int = 10, exclude_purchased: bool = True) -> pd.DataFrame:
        """Top-``n`` per user (:data:`~recsys.models.base.RECOMMENDATION_COLUMNS`), ranked by the
        float64 scores ``f_u . v_j`` with ties to the lower column, computed without a
        float64 users x products block (:meth:`_top_n`)."""
        self._check_fitted()
        ids, n, rows = self._request(user_ids, n)
        parts = []
        for start in range(0, max(len(ids), 1), self.chunk_size):
            chunk = rows[start : start + self.chunk_size]
            banned = take_rows(self.interactions_.purchased, chunk) if exclude_purchased else None
            r, c, v, rank = self._top_n(self._factors(chunk), banned, n)
            parts.append((r + start, c, v, rank))
        r, c, v, rank = (np.concatenate(p) for p in zip(*parts, strict=True))
        return entries_frame(ids, self.interactions_.product_ids, r, c, v, rank,
                             self.reasons_at(rows, r, c, np.empty((len(rows), 0))))

    def _top_n(self, factors: np.ndarray, banned: sp.csr_matrix | None,
               n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Exact float64 top-``n`` from a float32 screen: ``rows, cols, scores, rank``.

        ``a = fl32(F) fl32(V)^T`` (one float32 GEMM) is within
        ``e_u = (k + 8) 2^-23 ||f_u|| max_j ||v_j||`` of every float64 score
        (float32 rounding of the inputs and of a k-term sum, doubled; the float64
        sum's own error is far below it). With ``L_u`` the ``n``-th largest
        allowed ``a``, an item with ``a < L_u - 2 e_u`` scores below ``n``
        others and cannot be in the top ``n``; the few items left are scored in
        float64 (``einsum``) and ordered by (score desc, column asc)."""
        items_t32, max_norm = self._screen()
        approx = factors.astype(np.float32) @ items_t32
        if banned is not None and banned.nnz:
            approx[row_of_entries(banned), banned.indices] = -np.inf
        k = self.item_factors_.shape[1]
        margin = 2.0 * (k + 8) * 2.0**-23 * np.linalg.norm(factors, axis=1) * max_norm
        cut = (nth_largest(approx, n).astype(np.float64) - margin).astype(np.float32)
        cut = np.nextafter(cut, np.float32(-np.inf))  # rounded down: never narrower than L_u - 2 e_u
        r, c = nonzero_rc((approx >= cut[:, None]) & (approx > -np.inf))
        exact = np.einsum("ij,ij->i", factors[r], self.item_factors_[c])
        order = np.lexsort((c, -exact, r))
        r, c, exact = r[order], c[order].astype(np.int64), exact[order]
        per_row = np.bincount(r, minlength=len(factors))
        rank = np.arange(len(r), dtype=np.int64) - (np.cumsum(per_row) - per_row)[r] + 1
        take = rank <= n
        return r[take].astype(np.int64), c[take], exact[take], rank[take]

    def _screen(self) -> tuple[np.ndarray, float]:
        """``V_k^T`` as contiguous float32 and ``max_j ||v_j||`` (the screen of :meth:`_top_n`;
        cached for the current ``item_factors_`` array, rebuilt when it is replaced)."""
        cached = self.__dict__.get("_screen_cache")
        if cached is None or cached[0] is not self.item_factors_:
            items = self.item_factors_
            cached = (items, np.ascontiguousarray(items.T, dtype=np.float32),
                      float(np.linalg.norm(items, axis=1).max(initial=0.0)))
            self.__dict__["_screen_cache"] = cached
        return cached[1], cached[2]

    def reasons_for(self, rows: np.ndarray, scores: np.ndarray) -> str | np.ndarray:
        rows = np.asarray(rows)
        if (rows >= 0).all():
            return self.reason
        out = np.full(scores.shape, self.reason, dtype=object)
        out[rows < 0] = self.unknown_reason
        return out

    def reasons_at(self, rows: np.ndarray, r: np.ndarray, c: np.ndarray, scores: np.ndarray) -> str | np.ndarray:
        rows = np.asarray(rows)
        if (rows >= 0).all():
            return self.reason
        return np.where(rows[r] >= 0, self.reason, self.unknown_reason).astype(object)

    def affinity(self, user_ids: Any, product_ids: Any = None) -> pd.DataFrame:
        """User x product affinity ``(U_k S_k)_u . (V_k)_i`` as a DataFrame
        (index ``user_id``, one column per product; all products by default).
        Unknown users get the mean user's profile; unknown products are an error."""
        self._check_fitted()
        ids = check_user_ids(user_ids)
        rows = self.interactions_.user_index(ids)
        if product_ids is None:
            cols = np.arange(len(self.interactions_.product_ids))
        else:
            product_ids = [product_ids] if isinstance(product_ids, str) else list(product_ids)
            cols = self.interactions_.product_index(product_ids)
            if (cols < 0).any():
                unknown = [p for p, c in zip(product_ids, cols, strict=True) if c < 0][:3]
                raise ValueError(f"unknown product id(s) {unknown!r}: not in the fitted data set")
        factors = self.user_factors_[np.where(rows >= 0, rows, 0)]
        factors[rows < 0] = self.mean_user_factors_
        values = factors @ self.item_factors_[cols].T
        return pd.DataFrame(
            values,
            index=pd.Index(ids, name="user_id"),
            columns=pd.Index(self.interactions_.product_ids[cols], name="product_id"),
        )

    def _check_fitted(self) -> None:
        if not hasattr(self, "item_factors_"):
            raise RuntimeError("PureSVD is not fitted: call fit(dataset) first")


# --------------------------------------------------------------------------- ratings
