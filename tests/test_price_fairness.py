"""The price fairness audit (recsys.research.price_fairness)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.config import DEFAULT_CONFIG
from recsys.deals.pricing import seed_discount
from recsys.research.price_fairness import group_prices, pays_more_matrix, same_product_prices, without_age_term

USERS = pd.DataFrame({"user_id": ["y", "s"], "region": ["EU", "EU"], "age_group": ["young", "senior"],
                      "price_sensitivity": [0.8, 0.3]})


def deals() -> pd.DataFrame:
    """Both users offered product p1 (list 100, cost 40) and p2 (list 50, cost 45: the margin floor binds)."""
    rows = []
    for user, age_pref in (("y", 0.30), ("s", 0.10)):
        for product, price, cost in (("p1", 100.0, 40.0), ("p2", 50.0, 45.0)):
            d = float(seed_discount(0.15, age_pref, 40.0, False))
            d = min(d, 1 - cost * 1.05 / price)
            rows.append({"user_id": user, "product_id": product, "category": "Electronics", "original_price": price,
                         "cost": cost, "demand_score": 40.0, "discount_percentage": 100 * d,
                         "deal_price": price * (1 - d), "regional_preference": 0.15, "age_preference": age_pref,
                         "is_seasonal": False, "affinity_pct": 0.5})
    return pd.DataFrame(rows)


def test_group_prices_by_hand() -> None:
    table = group_prices(deals(), USERS, ["age_group"]).set_index("age_group")
    d = deals()
    p1 = d[d["product_id"] == "p1"]["deal_price"].to_numpy()  # young, senior
    # p2 costs both the same (margin floor); p1: the senior pays more
    assert table.loc["senior", "price_index"] == pytest.approx((p1[1] / p1.mean() + 1.0) / 2)
    assert table.loc["senior", "share_above_median"] == pytest.approx(0.5)
    assert table.loc["young", "share_above_median"] == 0.0
    assert table.loc["young", "mean_discount_pct"] > table.loc["senior", "mean_discount_pct"]


def test_same_product_prices_and_the_pays_more_matrix() -> None:
    prices = same_product_prices(deals(), DEFAULT_CONFIG, "winter")
    assert len(prices) == 2 * len(DEFAULT_CONFIG.regions) * len(DEFAULT_CONFIG.age_groups)
    assert (prices["deal_price"] >= prices["product_id"].map({"p1": 42.0, "p2": 47.25}) - 1e-9).all()
    ages = pays_more_matrix(prices, "age_group")
    assert np.allclose(np.diag(ages), 0.0)
    assert ages.loc["senior", "young"] == pytest.approx(0.5)  # p1 in every region; never p2 (floor binds for all)
    assert ages.loc["young", "senior"] == 0.0
    with pytest.raises(ValueError, match="attribute"):
        pays_more_matrix(prices, "segment")


def test_without_age_term_changes_nothing_when_everyone_has_one_age_group() -> None:
    same = USERS.assign(age_group="young")
    d = deals()
    d = d[d["user_id"] == "y"]
    table = without_age_term(d, same.iloc[:1], DEFAULT_CONFIG, n_boot=50)
    assert np.allclose(table["difference"], 0.0)


def test_without_age_term_moves_discount_from_young_to_senior() -> None:
    table = without_age_term(deals(), USERS, DEFAULT_CONFIG, n_boot=50).set_index(["group", "metric"])
    assert table.loc[("young", "conversions"), "difference"] < 0 < table.loc[("senior", "conversions"), "difference"]
    young = table.loc[("young", "conversions")]
    assert young["mean_discount_no_age"] < young["mean_discount_formula"]
    with pytest.raises(ValueError, match="users lack"):
        without_age_term(deals(), USERS.drop(columns=["age_group"]), DEFAULT_CONFIG)
