"""The simulated customer response: the probability model, policy offers,
per-user expectations (hand-computed) and the bootstrap comparison table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from recsys.config import ConfigError
from recsys.deals.response import POLICIES, ResponseModel, compare_policies, parameter_sweep, policy_offers, simulate


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_probability_is_the_stated_logistic():
    model = ResponseModel(base_rate=0.1, affinity_weight=2.0, discount_weight=6.0)
    p = model.probability([0.0, 0.25, 0.0], [0.6, 0.6, 0.9], [0.5, 0.8, np.nan])
    logit0 = math.log(0.1 / 0.9)
    expected = [0.1, sigmoid(logit0 + 2.0 * 0.3 + 6.0 * 0.6 * 0.25), 0.1]
    np.testing.assert_allclose(p, expected, rtol=1e-12)
    grid = model.probability(np.linspace(0, 0.5, 11), np.full(11, 0.7), np.full(11, 0.5))
    assert (np.diff(grid) > 0).all()  # more discount, more purchases
    assert model.probability([0.3], [0.9], [0.5])[0] > model.probability([0.3], [0.3], [0.5])[0]
    with pytest.raises(ValueError, match="NaN"):
        model.probability([np.nan], [0.5], [0.5])
    for bad in ({"base_rate": 0.0}, {"base_rate": 1.0}, {"discount_weight": -1.0}, {"affinity_weight": np.inf}):
        with pytest.raises(ConfigError):
            ResponseModel(**bad)


def deals_frame(discounts: list[float]) -> pd.DataFrame:
    prices = [100.0, 50.0, 80.0]
    return pd.DataFrame({
        "user_id": ["a", "a", "b"],
        "product_id": ["p1", "p2", "p1"],
        "original_price": prices,
        "cost": [60.0, 20.0, 60.0],
        "discount_percentage": [100 * d for d in discounts],
        "deal_price": [p * (1 - d) for p, d in zip(prices, discounts, strict=True)],
        "affinity_pct": [0.9, 0.5, np.nan],
    })


USERS = pd.DataFrame({"user_id": ["a", "b"], "region": ["EU", "Asia"], "price_sensitivity": [0.8, np.nan]})


def test_policy_offers_and_hand_computed_expectations():
    seed = deals_frame([0.30, 0.20, 0.25])
    sens = deals_frame([0.35, 0.20, 0.20])
    offers = policy_offers(seed, sens, USERS)
    assert list(offers["policy"].cat.categories) == list(POLICIES) and len(offers) == 4 * 3
    no = offers[offers["policy"] == "no_deals"]
    assert (no["discount"] == 0).all() and (no["deal_price"] == no["price"]).all()
    uni = offers[offers["policy"] == "uniform_15"].set_index(["user_id", "product_id"])
    # p1 (cost 60, margin 5%): floor 63 caps the discount at 37% > 15%, so 15% holds
    assert uni.loc[("a", "p1"), "discount"] == pytest.approx(0.15)
    # the unknown sensitivity of user b falls back to Asia's configured 0.8
    assert (offers.loc[offers["user_id"] == "b", "price_sensitivity"] == 0.8).all()

    model = ResponseModel(base_rate=0.05, affinity_weight=2.0, discount_weight=6.0)
    per_user = simulate(offers, model).set_index(["policy", "user_id"])
    logit0 = math.log(0.05 / 0.95)
    p_a1 = sigmoid(logit0 + 2.0 * 0.4 + 6.0 * 0.8 * 0.30)
    p_a2 = sigmoid(logit0 + 2.0 * 0.0 + 6.0 * 0.8 * 0.20)
    row = per_user.loc[("seed_formula", "a")]
    assert row["conversions"] == pytest.approx(p_a1 + p_a2)
    assert row["revenue"] == pytest.approx(p_a1 * 70.0 + p_a2 * 40.0)
    assert row["margin"] == pytest.approx(p_a1 * 10.0 + p_a2 * 20.0)
    assert row["discount"] == pytest.approx(0.25)
    base = per_user.loc[("no_deals", "b")]
    assert base["conversions"] == pytest.approx(0.05) and base["margin"] == pytest.approx(0.05 * 20.0)


def test_policy_offers_rejects_mismatched_deals():
    seed = deals_frame([0.3, 0.2, 0.25])
    other = seed.copy()
    other.loc[2, "product_id"] = "p9"
    with pytest.raises(ValueError, match="different"):
        policy_offers(seed, other, USERS)
    with pytest.raises(ValueError, match="lacks"):
        policy_offers(seed.drop(columns=["cost"]), seed, USERS)
    with pytest.raises(ValueError, match="users lacks"):
        policy_offers(seed, seed, USERS.iloc[:1])


def test_comparison_table_and_sweep():
    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame({
        "user_id": [f"u{i}" for i in range(n)], "product_id": "p",
        "original_price": rng.uniform(10, 100, n), "affinity_pct": rng.uniform(0, 1, n),
    })
    frame["cost"] = frame["original_price"] * 0.5
    frame["discount_percentage"] = 25.0
    frame["deal_price"] = frame["original_price"] * 0.75
    users = pd.DataFrame({"user_id": frame["user_id"], "region": "EU", "price_sensitivity": rng.uniform(0.3, 0.9, n)})
    offers = policy_offers(frame, frame, users)
    per_user = simulate(offers)
    table = compare_policies(per_user, n_boot=200, seed=1)
    assert table["policy"].tolist() == list(POLICIES)
    for m in ("conversions", "revenue", "margin"):
        assert (table[f"{m}_ci_low"] <= table[m]).all() and (table[m] <= table[f"{m}_ci_high"]).all()
    baseline = table.set_index("policy").loc["no_deals"]
    assert baseline["margin_vs_no_deals"] == 0.0
    assert table.set_index("policy").loc["seed_formula", "conversions_vs_no_deals_ci_low"] > 0
    again = compare_policies(per_user, n_boot=200, seed=1)
    pd.testing.assert_frame_equal(table, again)
    with pytest.raises(ValueError, match="baseline"):
        compare_policies(per_user, baseline="nope")
    sweep = parameter_sweep(offers, "discount_weight", [0.0, 6.0])
    zero = sweep[sweep["parameter_value"] == 0.0].set_index("policy")
    # with no discount response, every policy sells the same and deals only cost margin
    assert zero["conversions"].nunique() == 1
    assert zero.loc["seed_formula", "margin"] < zero.loc["no_deals", "margin"]
    with pytest.raises(ValueError, match="parameter"):
        parameter_sweep(offers, "colour", [1.0])
