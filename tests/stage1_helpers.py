"""Hand-built data sets and frame checks shared by the Stage 1 tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.data import Dataset

AS_OF = pd.Timestamp("2024-06-30")


def tiny_dataset(events: list[tuple[str, str, str]], n_users: int = 3, n_products: int = 3,
                 users: pd.DataFrame | None = None, products: pd.DataFrame | None = None) -> Dataset:
    """Users ``u0..``, products ``p0..`` and ``(user, product, event_type)``
    events all stamped at ``as_of`` (no time decay: weights are the type weights)."""
    if users is None:
        users = pd.DataFrame({
            "user_id": [f"u{i}" for i in range(n_users)],
            "age": np.full(n_users, 30.0),
            "region": ["EU"] * n_users,
            "spending_tier": ["mid"] * n_users,
            "price_sensitivity": np.full(n_users, 0.5),
        })
    if products is None:
        products = pd.DataFrame({
            "product_id": [f"p{i}" for i in range(n_products)],
            "name": [f"Product {i}" for i in range(n_products)],
            "category": ["Books"] * n_products,
            "description": ["a product"] * n_products,
            "tags": ["books"] * n_products,
            "price": np.linspace(10.0, 20.0, n_products),
            "cost": np.linspace(5.0, 10.0, n_products),
            "stock": np.full(n_products, 10, dtype=np.int64),
            "peak_season": ["none"] * n_products,
        })
    frame = pd.DataFrame(events, columns=["user_id", "product_id", "event_type"])
    is_purchase = frame["event_type"].eq("purchase")
    frame["timestamp"] = AS_OF
    frame["session_id"] = "s0"
    frame["quantity"] = np.where(is_purchase, 1, 0).astype(np.int64)
    frame["value"] = np.where(is_purchase, 10.0, np.nan)
    frame["rating"] = np.nan
    return Dataset(users, products, frame, AS_OF)


def assert_valid_top_n(frame: pd.DataFrame, user_ids: list[str], n: int, n_products: int,
                       purchased: set[tuple[str, str]] | None = None, full: bool = True) -> None:
    """Columns, one block of ranks 1..m per user in request order, unique
    products per user, scores non-increasing, no purchased pair."""
    assert list(frame.columns[:5]) == ["user_id", "product_id", "score", "rank", "reason"]
    assert frame["rank"].dtype == np.int64 and frame["score"].dtype == np.float64
    assert frame["user_id"].drop_duplicates().tolist() == [u for u in dict.fromkeys(user_ids)]
    for user, block in frame.groupby("user_id", sort=False):
        m = len(block)
        if full:
            assert m == min(n, n_products), (user, m)
        else:
            assert m <= n
        assert block["rank"].tolist() == list(range(1, m + 1))
        assert block["product_id"].is_unique
        assert block["reason"].map(lambda r: isinstance(r, str) and len(r) > 0).all()
    if purchased:
        pairs = set(zip(frame["user_id"], frame["product_id"], strict=True))
        assert not pairs & purchased


def purchased_pairs(dataset: Dataset) -> set[tuple[str, str]]:
    bought = dataset.events[dataset.events["event_type"] == "purchase"]
    return set(zip(bought["user_id"], bought["product_id"], strict=True))
