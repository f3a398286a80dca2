"""The graded off-policy simulation (recsys.research.ope_simulation) and uplift helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.deals.exploration import ExplorationConfig
from recsys.deals.response import ResponseModel
from recsys.research.ope_simulation import OfferWorld, estimate_all, grade, simulate_log, summarise_grades
from recsys.research.uplift import holdout_uplift, qini_coefficient, qini_curve, uplift_at_k


def small_world(epsilon: float = 0.3, holdout: float = 0.2) -> OfferWorld:
    rng = np.random.default_rng(0)
    n_users, per_user = 60, 3
    users = pd.DataFrame({"user_id": [f"u{i:02d}" for i in range(n_users)], "region": "EU",
                          "price_sensitivity": rng.uniform(0.2, 0.9, n_users)})
    n = n_users * per_user
    price = rng.uniform(20, 100, n)
    cost = price * rng.uniform(0.4, 0.6, n)
    deals = pd.DataFrame({
        "user_id": np.repeat(users["user_id"], per_user).to_numpy(), "product_id": [f"p{i % 17}" for i in range(n)],
        "original_price": price, "cost": cost, "margin_floor": cost * 1.05,
        "affinity_pct": rng.uniform(0, 1, n), "discount_percentage": rng.uniform(10, 30, n),
    })
    sens = deals.assign(discount_percentage=deals["discount_percentage"] * 1.1)
    return OfferWorld.build(deals, sens, users, ExplorationConfig(enabled=True, epsilon=epsilon, holdout_share=holdout),
                            model=ResponseModel(base_rate=0.2))


def test_truth_of_a_policy_is_the_hand_sum_of_expected_rewards() -> None:
    world = small_world()
    truth = world.true_values().set_index(["policy", "metric"])["value"]
    o = world.offers
    p0 = ResponseModel(base_rate=0.2).probability(np.zeros(len(o)), o["sensitivity"], o["affinity_pct"])
    assert truth["no_deals", "conversions"] == pytest.approx(p0.sum() / 60)
    assert truth["no_deals", "margin"] == pytest.approx((p0 * (o["price"] - o["cost"])).sum() / 60)
    for name, d in world.targets.items():  # every target stays within the guardrails
        if name != "no_deals":
            assert (d >= 0.05 - 1e-12).all() and (d <= o["max_feasible"] + 1e-9).all(), name


def test_log_propensities_are_the_logging_policy_probabilities_and_arms_have_their_shares() -> None:
    world = small_world()
    log = simulate_log(world, 3000, seed=1)
    o = world.offers.iloc[log["row"]]
    expected = world.policy.probability(log["discount"], o["formula"], o["max_feasible"])
    assert np.allclose(log["propensity"], expected)
    per_visit = log.groupby("visit")["arm"].agg(lambda a: (a == "holdout").all())
    assert abs(per_visit.mean() - 0.2) < 4 * np.sqrt(0.2 * 0.8 / 3000)


def test_estimators_recover_the_truth_across_replicates() -> None:
    world = small_world()
    grades = grade(world, [400], n_reps=30, n_boot=100, seed=3)
    summary = summarise_grades(grades).set_index(["target", "metric", "estimator"])
    for target in ("no_deals", "seed_formula", "uniform_15"):
        for estimator in ("IPS", "SNIPS", "DR"):
            row = summary.loc[(target, "conversions", estimator)]
            assert abs(row["bias"]) < 3 * row["rmse"] / np.sqrt(30) + 1e-9, (target, estimator, row.to_dict())
            assert row["coverage"] >= 0.7, (target, estimator)


def test_estimate_all_is_reproducible() -> None:
    world = small_world()
    log = simulate_log(world, 200, seed=2)
    a, b = estimate_all(world, log, n_boot=50, seed=1), estimate_all(world, log, n_boot=50, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert (a["ci_low"] <= a["ci_high"]).all()


def test_world_refuses_exploration_off_and_mismatched_deals() -> None:
    world = small_world()
    with pytest.raises(ValueError, match="exploration enabled"):
        OfferWorld.build(pd.DataFrame(columns=["user_id", "product_id"]), pd.DataFrame(columns=["user_id", "product_id"]),
                         pd.DataFrame(columns=["user_id"]), ExplorationConfig())
    with pytest.raises(ValueError, match="n_visits"):
        simulate_log(world, 0, 1)


def test_holdout_uplift_and_its_interval() -> None:
    rng = np.random.default_rng(4)
    treated = rng.random(4000) < 0.8
    units = pd.DataFrame({"treated": treated, "y": rng.normal(1.0, 1.0, 4000) + 0.5 * treated})
    table = holdout_uplift(units, ["y"], n_boot=500, seed=0)
    row = table.iloc[0]
    assert row["ci_low"] < 0.5 < row["ci_high"] and row["uplift"] == pytest.approx(
        units.loc[treated, "y"].mean() - units.loc[~treated, "y"].mean())
    with pytest.raises(ValueError, match="held-out"):
        holdout_uplift(units.assign(treated=True), ["y"])


def test_qini_curve_by_hand() -> None:
    # ranked by score: (y=1, T), (y=0, C), (y=1, C), (y=1, T)
    y, t, s = [1, 0, 1, 1], [True, False, False, True], [0.9, 0.8, 0.7, 0.1]
    curve = qini_curve(y, t, s)
    # k=1: R_T=1, no control -> 1; k=2: 1 - 0*1/1 = 1; k=3: 1 - 1*1/2 = 0.5; k=4: 2 - 1*2/2 = 1
    assert curve["qini"].tolist() == [0.0, 1.0, 1.0, 0.5, 1.0]
    assert uplift_at_k(y, t, s, 0.5) == pytest.approx(1.0)
    assert uplift_at_k(y, t, s, 1.0) == pytest.approx(1.0 - 0.5)
    perfect = qini_coefficient([1, 1, 0, 0], [True, True, False, False], [4, 3, 2, 1])
    worst = qini_coefficient([1, 1, 0, 0], [True, True, False, False], [1, 2, 3, 4])
    assert perfect > 0 > worst
    with pytest.raises(ValueError, match="one length"):
        qini_curve([1, 0], [True], [0.1, 0.2])
    with pytest.raises(ValueError, match="share"):
        uplift_at_k(y, t, s, 0)


def test_simulated_experiment_recovers_the_true_difference() -> None:
    from recsys.research.experiment_report import experiment_report
    from recsys.research.ope_simulation import simulate_experiment

    world = small_world()
    outcomes = simulate_experiment(world, {"a": "no_deals", "b": "seed_formula"}, n_visits=4000, seed=5)
    assert set(outcomes["variant"]) == {"a", "b"}
    by_user = outcomes.groupby("user_id")["variant"].nunique()
    assert (by_user == 1).all()  # a user stays in one variant
    table = experiment_report(outcomes, control="a", n_boot=500).set_index(["variant", "metric"])
    truth = world.true_values().set_index(["policy", "metric"])["value"]
    for metric in ("conversions", "margin"):
        row = table.loc[("b", metric)]
        true_diff = truth["seed_formula", metric] - truth["no_deals", metric]
        assert row["vs_control_ci_low"] <= true_diff <= row["vs_control_ci_high"], (metric, row.to_dict(), true_diff)
    with pytest.raises(ValueError, match="unknown target"):
        simulate_experiment(world, {"a": "magic", "b": "no_deals"}, 10, 1)
