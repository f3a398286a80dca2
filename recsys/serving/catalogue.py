"""The product fields of answers, as arrays in catalogue order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["Catalogue", "NewProducts"]


class Catalogue:
    """``product_id, name, category, price`` of every product, by column."""

    def __init__(self, products: pd.DataFrame) -> None:
        self.product_id = products["product_id"].to_numpy(dtype=object)
        self.name = products["name"].to_numpy(dtype=object)
        self.category = products["category"].to_numpy(dtype=object)
        self.price = products["price"].to_numpy(dtype=np.float64)

    def with_prices(self, price: np.ndarray) -> Catalogue:
        """The same catalogue with the current prices (a new object: answers in flight keep theirs)."""
        new = object.__new__(Catalogue)
        new.product_id, new.name, new.category = self.product_id, self.name, self.category
        new.price = np.asarray(price, dtype=np.float64)
        return new

    def __len__(self) -> int:
        return len(self.product_id)

    def records(self, cols: np.ndarray, scores: np.ndarray, reasons: Sequence[str]) -> list[dict[str, Any]]:
        """One answer record per column: the product's fields, ``score``
        (rounded to 6 decimals) and ``reason``."""
        return [
            {
                "product_id": str(self.product_id[c]),
                "name": str(self.name[c]),
                "category": str(self.category[c]),
                "price": float(self.price[c]),
                "score": round(float(s), 6),
                "reason": str(r),
            }
            for c, s, r in zip(np.asarray(cols).tolist(), np.asarray(scores).tolist(), reasons, strict=True)
        ]


@dataclass(frozen=True)
class NewProducts:
    """The one record of products upserted while serving, not in the catalogue trained on: their answer
    fields, ``cost`` and ``stock`` (NaN: unknown) and unit content vectors (``ContentRecommender.vectorize``).
    Read by the real-time and Stage 3 answers (a content pick for the last places) and by the deals (extra
    candidate rows, :mod:`recsys.deals.new_products`). Immutable: a change builds a new one."""

    product_id: np.ndarray
    name: np.ndarray
    category: np.ndarray
    price: np.ndarray
    cost: np.ndarray
    stock: np.ndarray
    vectors: sp.csr_matrix

    @classmethod
    def empty(cls, n_terms: int) -> NewProducts:
        none = np.zeros(0, dtype=object)
        return cls(none, none, none, np.zeros(0), np.zeros(0), np.zeros(0), sp.csr_matrix((0, n_terms)))

    def __len__(self) -> int:
        return len(self.product_id)

    @property
    def in_stock(self) -> np.ndarray:
        """Stock > 0, or unknown (NaN: counted in stock by the answers; the deals need a known stock > 0)."""
        return np.isnan(self.stock) | (self.stock > 0)

    def merged(self, products: pd.DataFrame, vectors: sp.csr_matrix) -> NewProducts:
        """These products with ``products`` (``product_id, name, category, price`` and optionally ``cost``,
        ``stock``; NaN: unknown) added, or replacing those of the same id."""
        keep = ~np.isin(self.product_id, products["product_id"].to_numpy(dtype=object))

        def numbers(column: str) -> np.ndarray:
            if column not in products:
                return np.full(len(products), np.nan)
            return pd.to_numeric(products[column], errors="coerce").to_numpy(dtype=float)

        return NewProducts(
            np.concatenate([self.product_id[keep], products["product_id"].to_numpy(dtype=object)]),
            np.concatenate([self.name[keep], products["name"].to_numpy(dtype=object)]),
            np.concatenate([self.category[keep], products["category"].to_numpy(dtype=object)]),
            np.concatenate([self.price[keep], products["price"].to_numpy(dtype=np.float64)]),
            np.concatenate([self.cost[keep], numbers("cost")]),
            np.concatenate([self.stock[keep], numbers("stock")]),
            sp.vstack([self.vectors[np.flatnonzero(keep)], vectors]).tocsr(),
        )

    def with_values(self, products: pd.DataFrame) -> NewProducts:
        """``price``, ``cost``, ``stock`` of ``products`` (``product_id`` plus any of them; NaN: unchanged)
        applied to the products held here (other ids are ignored)."""
        at = pd.Index(self.product_id).get_indexer(products["product_id"].to_numpy(dtype=object))
        values = {"price": self.price.copy(), "cost": self.cost.copy(), "stock": self.stock.copy()}
        for column, array in values.items():
            if column in products:
                given = pd.to_numeric(products[column], errors="coerce").to_numpy(dtype=float)
                ok = (at >= 0) & ~np.isnan(given)
                array[at[ok]] = given[ok]
        return replace(self, **values)

    def records(self, index: np.ndarray, scores: np.ndarray, reason: str) -> list[dict[str, Any]]:
        """Answer records (the fields of :meth:`Catalogue.records`) of the products at ``index``."""
        return [{"product_id": str(self.product_id[i]), "name": str(self.name[i]),
                 "category": str(self.category[i]), "price": float(self.price[i]), "score": round(float(s), 6),
                 "reason": reason} for i, s in zip(np.asarray(index).tolist(), np.asarray(scores).tolist(),
                                                   strict=True)]
