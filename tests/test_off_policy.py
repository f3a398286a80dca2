"""Off-policy estimators (recsys.evaluation.off_policy) on cases with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.evaluation.off_policy import (
    LoggedData,
    direct_method,
    doubly_robust,
    estimate,
    evaluate,
    importance_weights,
    ips,
    snips,
)


def hand_log() -> LoggedData:
    """Four logged rows in two units; target probabilities of the logged actions."""
    return LoggedData.build(
        unit=["u1", "u1", "u2", "u2"],
        reward=[1.0, 0.0, 2.0, 1.0],
        logging_prob=[0.5, 0.25, 0.8, 0.1],
        target_prob=[1.0, 0.0, 1.0, 0.5],
        q_logged=[0.5, 0.5, 1.0, 1.0],
        q_target=[0.6, 0.4, 1.5, 0.9],
    )


def test_ips_by_hand() -> None:
    # w = [2, 0, 1.25, 5]; sum w r = 2 + 0 + 2.5 + 5 = 9.5; U = 2
    assert ips(hand_log()) == pytest.approx(4.75)


def test_snips_by_hand() -> None:
    # sum w = 8.25; (n / U) * 9.5 / 8.25 = 2 * 1.151515...
    assert snips(hand_log()) == pytest.approx(2 * 9.5 / 8.25)


def test_dm_and_dr_by_hand() -> None:
    data = hand_log()
    assert direct_method(data) == pytest.approx((0.6 + 0.4 + 1.5 + 0.9) / 2)
    # correction: w (r - q) = [2*0.5, 0, 1.25*1, 5*0] = 2.25
    assert doubly_robust(data) == pytest.approx((3.4 + 2.25) / 2)


def test_dr_equals_dm_when_the_model_matches_every_logged_reward() -> None:
    rng = np.random.default_rng(1)
    n = 50
    reward = rng.random(n)
    data = LoggedData.build(np.arange(n) // 5, reward, rng.uniform(0.1, 1, n), rng.uniform(0, 1, n),
                            q_logged=reward, q_target=rng.random(n))
    assert doubly_robust(data) == pytest.approx(direct_method(data))


def test_dr_equals_ips_with_a_zero_model_and_snips_equals_ips_on_policy() -> None:
    rng = np.random.default_rng(2)
    n = 40
    reward, mu = rng.random(n), rng.uniform(0.1, 1, n)
    data = LoggedData.build(np.arange(n) // 4, reward, mu, rng.uniform(0, 1, n))
    assert doubly_robust(data) == pytest.approx(ips(data))
    on_policy = LoggedData.build(np.arange(n) // 4, reward, mu, mu)  # w = 1: both are the mean reward per unit
    assert ips(on_policy) == pytest.approx(reward.sum() / 10)
    assert snips(on_policy) == pytest.approx(ips(on_policy))


def simulate_bandit(rng: np.random.Generator, n: int) -> tuple[LoggedData, float]:
    """Three actions, contexts x in {0, 1}, Bernoulli rewards; logging mu(a|x),
    deterministic target pi(x) = argmax of x-dependent action. Returns the log
    and the true value (per row)."""
    means = np.array([[0.1, 0.3, 0.6], [0.5, 0.2, 0.05]])  # x by action
    mu = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    target_action = np.array([2, 0])  # the best action in each context, rarely logged in x = 0
    x = rng.integers(0, 2, n)
    a = (rng.random(n)[:, None] > np.cumsum(mu[x], axis=1)).sum(axis=1)
    r = (rng.random(n) < means[x, a]).astype(float)
    pi = (a == target_action[x]).astype(float)
    q = np.full((2, 3), 0.3)  # a wrong reward model: DM is biased, DR is not
    data = LoggedData.build(np.arange(n), r, mu[x, a], pi, q_logged=q[x, a], q_target=q[x, target_action[x]])
    truth = 0.5 * means[0, 2] + 0.5 * means[1, 0]
    return data, truth


def test_ips_and_dr_are_unbiased_on_a_simulated_bandit_and_dm_is_not() -> None:
    rng = np.random.default_rng(7)
    draws = np.array([[ips(d), doubly_robust(d), direct_method(d), snips(d)]
                      for d, _ in (simulate_bandit(rng, 200) for _ in range(2000))])
    _, truth = simulate_bandit(rng, 1)
    mean, se = draws.mean(axis=0), draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
    assert abs(mean[0] - truth) < 3 * se[0]  # IPS
    assert abs(mean[1] - truth) < 3 * se[1]  # DR
    assert abs(mean[2] - 0.3) < 1e-12 and abs(truth - 0.3) > 0.2  # DM returns its model, far from the truth
    assert abs(mean[3] - truth) < 0.01  # SNIPS: biased only at order 1/n


def test_intervals_cover_the_truth_on_a_large_log() -> None:
    data, truth = simulate_bandit(np.random.default_rng(3), 20_000)
    table = evaluate(data, ("IPS", "SNIPS", "DR"), n_boot=300, seed=0)
    assert ((table["ci_low"] <= truth) & (truth <= table["ci_high"])).all(), table
    assert (table["ci_low"] <= table["estimate"]).all() and (table["estimate"] <= table["ci_high"]).all()
    assert table["ess"].iloc[0] < 20_000


def test_estimate_is_reproducible_and_snips_interval_matches_its_point() -> None:
    data = hand_log()
    a, b = estimate(data, "SNIPS", n_boot=200, seed=5), estimate(data, "SNIPS", n_boot=200, seed=5)
    assert a == b
    assert a.estimate == pytest.approx(snips(data))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"logging_prob": [0.5, 0.0, 0.8, 0.1]}, "logging_prob"),
        ({"target_prob": [1.5, 0.0, 1.0, 0.5]}, "target_prob must be in"),
        ({"reward": [1.0, float("nan"), 2.0, 1.0]}, "reward has 1 NaN"),
        ({"unit": ["u1", "u2"]}, "unit has shape"),
        ({"q_target": [0.1, 0.2]}, "q_target has 2 values"),
    ],
)
def test_bad_logs_are_refused_with_the_field_named(kwargs: dict, message: str) -> None:
    base = {"unit": ["u1", "u1", "u2", "u2"], "reward": [1.0, 0.0, 2.0, 1.0],
            "logging_prob": [0.5, 0.25, 0.8, 0.1], "target_prob": [1.0, 0.0, 1.0, 0.5]}
    with pytest.raises(ValueError, match=message):
        LoggedData.build(**{**base, **kwargs})


def test_unknown_estimator_and_empty_log_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown estimator"):
        evaluate(hand_log(), ("IPS", "magic"))
    with pytest.raises(ValueError, match="empty"):
        LoggedData.build([], [], [], [])
    with pytest.raises(ValueError, match=r"logging_prob \(the logged propensity\)"):
        importance_weights([1.0], [0.0])
