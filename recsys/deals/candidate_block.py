"""Candidate frames of many users over one product table, as arrays.

A :class:`CandidateBlock` holds the product table once (validated against
the contract of :mod:`recsys.deals.candidate_contract`) and one users x
products matrix per user column; the deal generator reads it directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recsys.deals.candidate_contract import (
    CANDIDATE_COLUMNS,
    PRODUCT_COLUMNS,
    USER_COLUMNS,
    check_values,
    validated_arrays,
)

__all__ = ["CandidateBlock"]


class CandidateBlock:
    """Candidate frames of many users over one product table.

    ``products``: a DataFrame of :data:`PRODUCT_COLUMNS` (one row per product,
    unique ids; extra columns kept); ``user_ids`` (n_users,); ``affinity``,
    ``similarity_to_viewed``, ``behaviour_score`` (float) and ``purchased``
    (bool): users x products arrays. Validated on construction against the
    same rules as the frame. ``arrays`` holds the product columns as numpy
    arrays (what the generator reads). Every block, however made, is
    assembled by the one private constructor :meth:`_assemble`.
    """

    affinity: np.ndarray
    similarity_to_viewed: np.ndarray
    behaviour_score: np.ndarray
    purchased: np.ndarray

    def __init__(self, products: pd.DataFrame, user_ids: Any, affinity: Any, similarity_to_viewed: Any,
                 behaviour_score: Any, purchased: Any) -> None:
        columns = {c: CANDIDATE_COLUMNS[c] for c in PRODUCT_COLUMNS if c in CANDIDATE_COLUMNS}
        arrays = validated_arrays(products, columns, "CandidateBlock.products")
        users = {"affinity": affinity, "similarity_to_viewed": similarity_to_viewed,
                 "behaviour_score": behaviour_score, "purchased": purchased}
        self._set(arrays, {}, None, user_ids, users, check=True)

    @classmethod
    def _assemble(cls, arrays: dict[str, np.ndarray], memo: dict[str, Any], products: pd.DataFrame | None,
                  user_ids: Any, users: Mapping[str, Any], check: bool) -> CandidateBlock:
        """The private constructor: a block over product ``arrays`` validated
        before (their derived-value ``memo`` and DataFrame shared with other
        blocks over them); the per-user matrices are checked if ``check``."""
        block = cls.__new__(cls)
        block._set(arrays, memo, products, user_ids, users, check)
        return block

    def _set(self, arrays: dict[str, np.ndarray], memo: dict[str, Any], products: pd.DataFrame | None,
             user_ids: Any, users: Mapping[str, Any], check: bool) -> None:
        self.arrays = arrays
        self._memo = memo
        self._products = products
        self.user_ids = np.asarray(user_ids, dtype=object).ravel()
        shape = (len(self.user_ids), len(arrays["product_id"]))
        for name in USER_COLUMNS:
            value = users[name]
            if check:
                value = np.asarray(value, dtype=bool if name == "purchased" else np.float64)
                if value.ndim == 1 and shape[0] == 1:
                    value = value[None, :]
                if value.shape != shape:
                    raise ValueError(f"CandidateBlock.{name} must be users x products {shape}, got {value.shape}")
            setattr(self, name, value)
        if check:
            check_values({c: getattr(self, c) for c in ("affinity", "similarity_to_viewed", "behaviour_score")})

    @classmethod
    def over_valid_products(cls, arrays: dict[str, np.ndarray], memo: dict[str, Any], user_ids: Any,
                            affinity: Any, similarity_to_viewed: Any, behaviour_score: Any,
                            purchased: Any) -> CandidateBlock:
        """A block over product ``arrays`` that were validated before (by
        :class:`~recsys.deals.candidates.CandidateBuilder`); only the
        per-user matrices are checked. ``memo`` is shared with other blocks
        over the same arrays."""
        users = {"affinity": affinity, "similarity_to_viewed": similarity_to_viewed,
                 "behaviour_score": behaviour_score, "purchased": purchased}
        return cls._assemble(arrays, memo, None, user_ids, users, check=True)

    def _derived(self, key: str, compute: Any) -> Any:
        """A product-level value derived from ``arrays`` (computed once and
        shared by the blocks over the same product arrays)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def id_rank(self) -> np.ndarray:
        """Position of each product's id in sorted id order: ordering by it
        is ordering by ``product_id`` (the ranking's tie-break)."""

        def compute() -> np.ndarray:
            ids = self.arrays["product_id"].astype(str)
            out = np.empty(len(ids), dtype=np.int64)
            out[np.argsort(ids, kind="stable")] = np.arange(len(ids))
            return out

        return self._derived("id_rank", compute)

    def sales_quantile(self, q: float) -> float:
        """The ``q``-quantile of ``sales`` over the products (0 when there are none)."""
        sales = self.arrays["sales"]
        return self._derived(f"sales_quantile_{q!r}", lambda: float(np.quantile(sales, q)) if len(sales) else 0.0)

    def category_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """``pd.factorize`` of the product categories: (codes, uniques)."""

        def compute() -> tuple[np.ndarray, np.ndarray]:
            categories = np.asarray(self.arrays["category"], dtype=object)
            if not len(categories):
                return np.zeros(0, np.int64), np.zeros(0, dtype=object)
            codes, uniques = pd.factorize(categories)
            return codes, np.asarray(uniques, dtype=object)

        return self._derived("category_codes", compute)

    @property
    def products(self) -> pd.DataFrame:
        """The product table as a DataFrame (built on first use)."""
        if self._products is None:
            self._products = pd.DataFrame(self.arrays)
        return self._products

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_products(self) -> int:
        return len(self.arrays["product_id"])

    @classmethod
    def from_frame(cls, candidates: pd.DataFrame, user_id: str) -> CandidateBlock:
        """A one-user block from a candidate frame (validated)."""
        arrays = validated_arrays(candidates)
        products = {c: v for c, v in arrays.items() if c not in USER_COLUMNS}
        users = {c: arrays[c][None, :] for c in USER_COLUMNS}
        return cls._assemble(products, {}, None, np.array([user_id], dtype=object), users, check=False)

    def frame(self, i: int) -> pd.DataFrame:
        """The candidate frame of the block's ``i``-th user."""
        return pd.DataFrame({**self.arrays, **{c: getattr(self, c)[i] for c in USER_COLUMNS}})

    def take(self, rows: Sequence[int] | np.ndarray) -> CandidateBlock:
        """The block restricted to some users (rows)."""
        rows = np.asarray(rows, dtype=np.int64)
        users = {c: getattr(self, c)[rows] for c in USER_COLUMNS}
        return self._assemble(self.arrays, self._memo, self._products, self.user_ids[rows], users, check=False)
