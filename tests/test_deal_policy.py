"""The logging policy (exploration, holdout, propensities) and the decision log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.config import ConfigError, DealConfig
from recsys.deals.decision_log import (
    DECISION_COLUMNS,
    MemoryDecisionLog,
    ParquetDecisionLog,
    decisions_frame,
    join_outcomes,
)
from recsys.deals.exploration import ExplorationConfig, LoggingPolicy, period_of, stable_uniform
from recsys.deals.rate_limit import RateLimiter

DEALS = DealConfig()


def offers(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    users = np.array([f"u{i // 4}" for i in range(n)], dtype=object)
    products = np.array([f"p{i % 97}" for i in range(n)], dtype=object)
    max_feasible = rng.uniform(0.05, 0.6, n)
    formula = np.minimum(rng.uniform(0.1, 0.45, n), max_feasible)
    return users, products, formula, max_feasible


def test_off_is_the_formula_with_propensity_one() -> None:
    users, products, f, top = offers(200)
    out = LoggingPolicy(ExplorationConfig(), DEALS).decide(users, products, f, top, period=3)
    assert (out["discount"] == f).all() and (out["propensity"] == 1.0).all() and (out["arm"] == "formula").all()


def test_probabilities_sum_to_one_over_the_support() -> None:
    users, products, f, top = offers(300)
    policy = LoggingPolicy(ExplorationConfig(enabled=True, epsilon=0.2, holdout_share=0.1), DEALS)
    support = np.column_stack([np.zeros_like(f), f, np.tile(policy.levels, (len(f), 1))])
    total = np.zeros(len(f))
    for j in range(support.shape[1]):  # distinct values only: a level equal to f counts once
        dup = (np.abs(support[:, :j] - support[:, [j]]) < 1e-12).any(axis=1)
        total += np.where(dup, 0.0, policy.probability(support[:, j], f, top))
    assert np.allclose(total, 1.0)


def test_logged_propensities_match_the_frequencies_of_the_draws() -> None:
    n = 40_000
    users = np.array([f"user{i}" for i in range(n)], dtype=object)
    products = np.full(n, "p1", dtype=object)
    f, top = np.full(n, 0.22), np.full(n, 0.31)  # E = {5, 10, ..., 30 %}: 6 levels, f not on the grid
    policy = LoggingPolicy(ExplorationConfig(enabled=True, epsilon=0.3, holdout_share=0.2), DEALS)
    out = policy.decide(users, products, f, top, period=0)
    values, counts = np.unique(np.round(out["discount"], 9), return_counts=True)
    expected = {0.0: 0.2, 0.22: 0.8 * 0.7, **{round(0.05 * k, 9): 0.8 * 0.3 / 6 for k in range(1, 7)}}
    assert set(values) == set(expected)
    for value, count in zip(values, counts, strict=True):
        p = expected[value]
        assert abs(count / n - p) < 4 * np.sqrt(p * (1 - p) / n), value
        logged = out["propensity"][np.round(out["discount"], 9) == value]
        assert np.allclose(logged, p)


def test_explored_discounts_keep_every_guardrail_and_radius_limits_them() -> None:
    users, products, f, top = offers(5000, seed=1)
    for radius in (None, 1):
        policy = LoggingPolicy(ExplorationConfig(enabled=True, epsilon=1.0, holdout_share=0.0, radius=radius), DEALS)
        out = policy.decide(users, products, f, top, period=9)
        d = out["discount"][out["arm"] == "explore"]
        assert len(d) > 4000
        assert (d >= DEALS.min_discount - 1e-12).all() and (d <= DEALS.max_discount + 1e-12).all()
        assert (d <= top[out["arm"] == "explore"] + 1e-9).all()
        if radius == 1:
            nearest = policy.levels[np.abs(policy.levels[None, :] - f[:, None]).argmin(axis=1)]
            assert (np.abs(d - nearest[out["arm"] == "explore"]) <= 0.05 + 1e-9).all()


def test_assignment_is_deterministic_per_user_and_period() -> None:
    users, products, f, top = offers(4000)
    policy = LoggingPolicy(ExplorationConfig(enabled=True, holdout_share=0.3), DEALS)
    a, b = policy.decide(users, products, f, top, 5), policy.decide(users, products, f, top, 5)
    assert all((a[k] == b[k]).all() for k in a)
    hold = pd.Series(a["arm"] == "holdout").groupby(users).agg(["min", "max"])
    assert (hold["min"] == hold["max"]).all()  # a user is held out for all offers of a period or none
    other = policy.decide(users, products, f, top, 6)
    assert (other["arm"] != a["arm"]).any()
    salted = LoggingPolicy(ExplorationConfig(enabled=True, holdout_share=0.3, salt="other"), DEALS)
    assert (salted.decide(users, products, f, top, 5)["arm"] != a["arm"]).any()


def test_holdout_share_is_the_configured_proportion() -> None:
    ids = np.array([f"user-{i}" for i in range(20_000)], dtype=object)
    share = LoggingPolicy(ExplorationConfig(enabled=True, holdout_share=0.1), DEALS).holdout(ids, 2950).mean()
    assert abs(share - 0.1) < 4 * np.sqrt(0.1 * 0.9 / 20_000)


def test_stable_uniform_is_pinned_and_uniform() -> None:
    u = stable_uniform("deals", "holdout", np.array(["a", "b"], dtype=object), 7)
    assert u.tolist() == stable_uniform("deals", "holdout", np.array(["a", "b"], dtype=object), 7).tolist()
    many = stable_uniform("s", "explore", np.arange(50_000), 1)
    assert abs(many.mean() - 0.5) < 0.01 and many.min() >= 0 and many.max() < 1
    assert np.histogram(many, bins=10, range=(0, 1))[0].min() > 4700


def test_period_of() -> None:
    assert period_of("1970-01-08", 7) == 1
    assert period_of(pd.Timestamp("2026-12-06T10:00:00Z"), 1) == period_of("2026-12-06", 1)
    with pytest.raises(ValueError, match="timestamp"):
        period_of(None, 7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epsilon": 1.5}, "epsilon"),
        ({"holdout_share": 1.0}, "holdout_share must be < 1"),
        ({"levels": (0.3, 0.1)}, "levels"),
        ({"levels": ("a", 0.1)}, "levels must be numbers"),
        ({"radius": -1}, "radius"),
        ({"period_days": 0}, "period_days"),
        ({"salt": ""}, "salt"),
    ],
)
def test_bad_exploration_config_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ExplorationConfig(**kwargs)


def test_levels_outside_the_deal_bounds_are_refused() -> None:
    with pytest.raises(ConfigError, match="no exploration level"):
        LoggingPolicy(ExplorationConfig(enabled=True, levels=(0.6, 0.7)), DEALS)


def applied_deals(policy: LoggingPolicy) -> dict[str, np.ndarray]:
    deals = {
        "user_id": np.array(["u1", "u1", "u2"], dtype=object), "product_id": np.array(["p1", "p2", "p1"], dtype=object),
        "rank": np.array([1, 2, 1]), "original_price": np.array([100.0, 50.0, 100.0]),
        "deal_price": np.array([80.0, 45.0, 75.0]), "discount_percentage": np.array([20.0, 10.0, 25.0]),
        "margin_floor": np.array([63.0, 42.0, 63.0]), "cost": np.array([60.0, 40.0, 60.0]),
        "expiry_days": np.array([3, 7, 1]), "demand_score": np.array([40.0, 10.0, 80.0]),
        "season": np.array(["winter"] * 3, dtype=object),
    }
    return policy.apply(deals, period=100)


def test_apply_keeps_the_margin_floor_and_the_formula_when_off() -> None:
    off = applied_deals(LoggingPolicy(ExplorationConfig(), DEALS))
    assert off["deal_price"].tolist() == [80.0, 45.0, 75.0] and (off["propensity"] == 1).all()
    on = applied_deals(LoggingPolicy(ExplorationConfig(enabled=True, epsilon=1.0, holdout_share=0.0), DEALS))
    assert (on["deal_price"] >= np.array([63.0, 42.0, 63.0]) - 1e-9).all()
    assert set(on["arm"]) == {"explore"} and (on["propensity"] > 0).all()


def decisions(policy: LoggingPolicy) -> pd.DataFrame:
    context = {"u1": {"region": "EU", "age_group": "young", "segment": "segment_1"}}
    return decisions_frame(applied_deals(policy), context, "2026-01-10", period=100, variant="A")


def test_decision_log_round_trip(tmp_path) -> None:
    frame = decisions(LoggingPolicy(ExplorationConfig(enabled=True), DEALS))
    assert list(frame.columns) == list(DECISION_COLUMNS)
    assert frame["segment"].tolist() == ["segment_1", "segment_1", "unknown"]
    log = ParquetDecisionLog(tmp_path / "log")
    assert log.read().empty
    log.write(frame)
    log.write(frame.iloc[:1])
    back = log.read()
    assert len(back) == 4 and back["propensity"].tolist()[:3] == frame["propensity"].tolist()
    memory = MemoryDecisionLog()
    memory.write(frame)
    pd.testing.assert_frame_equal(memory.read(), frame)
    with pytest.raises(ValueError, match="lack column"):
        log.write(frame.drop(columns=["propensity"]))
    with pytest.raises(ValueError, match="propensity must be in"):
        log.write(frame.assign(propensity=0.0))


def test_outcomes_are_purchases_of_the_product_within_the_expiry() -> None:
    frame = decisions(LoggingPolicy(ExplorationConfig(), DEALS))  # expiries: u1/p1 +3 d, u1/p2 +7 d, u2/p1 +1 d
    events = pd.DataFrame({
        "user_id": ["u1", "u1", "u1", "u2", "u2"],
        "product_id": ["p1", "p1", "p2", "p1", "p1"],
        "event_type": ["purchase", "purchase", "view", "purchase", "purchase"],
        "timestamp": pd.to_datetime(["2026-01-09 00:00", "2026-01-12 00:00", "2026-01-11 00:00", "2026-01-12 00:00",
                                    "2026-01-10 12:00"]),
        "quantity": [1, 2, 0, 1, 1],
    })
    out = join_outcomes(frame, events)
    # u1/p1: the purchase before the decision does not count, the one 2 days after does (2 units);
    # u1/p2: only a view; u2/p1: 2 days after a 1-day deal does not count, 12 h after does
    assert out["converted"].tolist() == [1, 0, 1]
    assert out["revenue"].tolist() == [160.0, 0.0, 75.0]
    assert out["margin"].tolist() == [40.0, 0.0, 15.0]
    with pytest.raises(ValueError, match="events lack"):
        join_outcomes(frame, events.drop(columns=["timestamp"]))


@pytest.fixture(scope="module")
def engines(small_dataset):
    from recsys.serving.engine import RecommendationEngine
    from recsys.serving.engine_config import EngineConfig

    off = RecommendationEngine(small_dataset.config)
    off.train(small_dataset)
    on = RecommendationEngine(small_dataset.config, EngineConfig(
        exploration=ExplorationConfig(enabled=True, epsilon=0.3, holdout_share=0.25)))
    on.train(small_dataset)
    for engine in (off, on):
        engine.use_rate_limiter(RateLimiter(10**6, 1.0))
    return off, on


def test_engine_answers_carry_policy_and_propensity_and_log_every_decision(engines, small_dataset) -> None:
    off, on = engines
    users = small_dataset.users["user_id"].tolist()
    plain = off.deals_many(users, 5)
    assert all(d["propensity"] == 1.0 and d["arm"] == "formula" and d["policy"] == "seed_formula"
               for a in plain for d in a["deals"])
    sink = MemoryDecisionLog()
    on.use_decision_sink(sink)
    answers = on.deals_many(users, 5)
    logged = sink.read()
    assert set(logged.columns) == set(DECISION_COLUMNS)
    assert logged["segment"].str.startswith("segment_").all()
    held = set(logged.loc[logged["arm"] == "holdout", "user_id"])
    for answer in answers:
        if answer["user_id"] in held:
            assert answer["deals"] == [] and answer["note"].startswith("holdout")
        for deal in answer["deals"]:
            assert deal["arm"] in ("formula", "explore") and 0 < deal["propensity"] <= 1
            assert deal["policy_version"] == "1+eps0.3+hold0.25"
    n_users = logged["user_id"].nunique()
    assert abs(len(held) / n_users - 0.25) < 4 * np.sqrt(0.25 * 0.75 / n_users)
    # the logged propensity is the policy's probability of the logged discount
    policy = LoggingPolicy(on.engine_config.exploration, small_dataset.config.deals)
    top = 1 - 1.05 * logged["cost"] / logged["original_price"]
    assert np.allclose(logged["propensity"], policy.probability(logged["discount"], logged["formula_discount"], top))
    offered = logged[logged["offered"]]
    by_pair = {(a["user_id"], d["product_id"]): d for a in answers for d in a["deals"]}
    assert len(by_pair) == len(offered)
    for row in offered.itertuples():
        assert by_pair[(row.user_id, row.product_id)]["propensity"] == pytest.approx(row.propensity)
    assert on.deals_many(users[:20], 5) == answers[:20]  # the same request gets the same answer
    on.use_decision_sink(None)
    with pytest.raises(TypeError, match="write"):
        on.use_decision_sink(object())


def test_parquet_log_buffers_until_flush_rows(tmp_path) -> None:
    frame = decisions(LoggingPolicy(ExplorationConfig(), DEALS))  # 3 rows
    log = ParquetDecisionLog(tmp_path / "log", flush_rows=5)
    log.write(frame)
    assert log.read().empty  # 3 waiting
    log.write(frame)
    assert len(log.read()) == 6  # 6 >= 5: one part
    log.write(frame)
    log.flush()
    assert len(log.read()) == 9 and len(list((tmp_path / "log").glob("part-*.parquet"))) == 2
    with pytest.raises(ValueError, match="flush_rows"):
        ParquetDecisionLog(tmp_path / "x", flush_rows=0)
