"""Ratings derived from purchases, and Surprise's SVD fitted on them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.data import Dataset
from recsys.evaluation.peers.purchase_ratings import PurchaseRatingSVD, purchase_ratings, with_purchase_ratings
from recsys.evaluation.peers.surprise_models import SurpriseSVDConfig

T = pd.Timestamp("2024-01-01")


def world() -> Dataset:
    users = pd.DataFrame({"user_id": [f"u{i}" for i in range(4)], "age": np.nan, "region": "EU",
                          "spending_tier": "mid", "price_sensitivity": np.nan})
    products = pd.DataFrame({"product_id": [f"p{i}" for i in range(5)], "name": "n", "category": "c",
                             "description": "d", "tags": "", "price": 1.0, "cost": np.nan, "stock": 5,
                             "peak_season": "none"})
    lines = [("u0", "p0", 1), ("u0", "p1", 100), ("u0", "p1", 20), ("u1", "p0", 10), ("u1", "p2", 1),
             ("u2", "p3", 3), ("u3", "p1", 1)]
    events = pd.DataFrame({"user_id": [u for u, _, _ in lines], "product_id": [p for _, p, _ in lines],
                           "event_type": "purchase", "timestamp": [T + pd.Timedelta(hours=h) for h in range(len(lines))],
                           "session_id": [f"s{h}" for h in range(len(lines))], "quantity": [q for _, _, q in lines],
                           "value": [float(q) for _, _, q in lines], "rating": np.nan})
    return Dataset(users, products, events, T + pd.Timedelta(days=1))


def test_rule():
    ratings = purchase_ratings(world().events, cap_quantile=1.0).set_index(["user_id", "product_id"])
    assert len(ratings) == 6  # u0 bought p1 twice: one pair, q = 120
    assert ratings.loc[("u0", "p1"), "rating"] == pytest.approx(5.0)  # the cap
    assert ratings.loc[("u0", "p0"), "rating"] == pytest.approx(1.0)  # one unit
    assert ratings.loc[("u1", "p0"), "rating"] == pytest.approx(1 + 4 * np.log(10) / np.log(120))
    assert ratings.loc[("u0", "p1"), "timestamp"] == T + pd.Timedelta(hours=2)
    assert ratings["rating"].between(1, 5).all()


def test_constant_quantities_and_bad_input():
    events = world().events.drop(index=2).assign(quantity=1)  # one unit of every pair
    assert (purchase_ratings(events)["rating"] == 3.0).all()
    with pytest.raises(ValueError, match="cap_quantile"):
        purchase_ratings(events, cap_quantile=0)
    with pytest.raises(ValueError, match="no purchase events"):
        purchase_ratings(events.iloc[:0])


def test_dataset_and_model():
    ds = world()
    rated = with_purchase_ratings(ds)
    reviews = rated.events[rated.events["event_type"] == "review"]
    assert len(reviews) == 6 and (reviews["quantity"] == 0).all() and reviews["value"].isna().all()
    assert len(rated.events) == len(ds.events) + 6
    model = PurchaseRatingSVD(SurpriseSVDConfig(n_factors=2, n_epochs=5)).fit(ds)
    assert model.trainset_.n_ratings == 6
    assert model.interactions_.matrix.nnz == 6  # the shared matrix holds the purchases only
    recs = model.recommend(["u2"], n=2)
    assert len(recs) == 2 and "p3" not in set(recs["product_id"])  # bought: excluded
