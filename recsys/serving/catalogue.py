"""The product fields of answers, as arrays in catalogue order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Catalogue"]


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
