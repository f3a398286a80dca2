"""Deals: the design's formula, price sensitivity, extension points, guardrails
(property-based), selection, the candidate builder and rate limiting."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from recsys.config import DEFAULT_CONFIG, SEASONS, ConfigError, DealConfig, RegionConfig
from recsys.deals import (
    CANDIDATE_COLUMNS,
    DEAL_TYPES,
    EXCLUSION_REASONS,
    SEED_DEAL_KEYS,
    CandidateBuilder,
    DealGenerator,
    DealPricer,
    DealRules,
    RateLimiter,
    RateLimitExceeded,
    apply_guardrails,
    build_candidates,
    deal_type_scores,
    expiry_days,
    validate_candidates,
)

AS_OF = pd.Timestamp("2024-12-31")  # winter


def seed_final_discount(regional: float, age: float, demand_score: float, seasonal_item: bool) -> float:
    """The design's code, transcribed literally (scalar)."""
    base_discount = regional + age
    demand_factor = max(0.5, 1.0 - (demand_score / 100.0))
    seasonal_factor = 1.2 if seasonal_item else 1.0
    return min(0.5, base_discount * demand_factor * seasonal_factor)


def make_user(user_id: str = "u1", region: str = "EU", age: float = 30.0, tier: str = "premium",
              ps: float = 0.6) -> dict:
    return {"user_id": user_id, "region": region, "age": age, "spending_tier": tier, "price_sensitivity": ps}


def make_candidates(n: int = 12, seed: int = 0, **overrides) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cats = np.array(DEFAULT_CONFIG.categories)
    price = np.round(rng.uniform(5, 500, n), 2)
    frame = pd.DataFrame({
        "product_id": [f"product_{i}" for i in range(n)],
        "name": [f"Product {i}" for i in range(n)],
        "category": cats[np.arange(n) % len(cats)],
        "price": price,
        "cost": price * rng.uniform(0.3, 0.7, n),
        "stock": rng.integers(1, 20, n),
        "demand_score": rng.uniform(0, 100, n),
        "affinity": rng.normal(size=n),
        "similarity_to_viewed": rng.uniform(0, 1, n),
        "behaviour_score": rng.uniform(0, 1, n),
        "purchased": np.zeros(n, dtype=bool),
        "sales": rng.integers(0, 10, n).astype(float),
    })
    for key, value in overrides.items():
        frame[key] = value
    return frame


def generator(**kwargs) -> DealGenerator:
    kwargs.setdefault("rate_limiter", False)
    return DealGenerator(**kwargs)


# -- the formula --------------------------------------------------------------------
@pytest.mark.parametrize("region", DEFAULT_CONFIG.region_names)
@pytest.mark.parametrize("age", [20, 30, 50, 70])
def test_formula_is_the_seeds_exactly(region, age):
    cfg = DEFAULT_CONFIG
    frame = make_candidates(40, seed=1)
    frame.loc[:5, "demand_score"] = [0.0, 25.0, 50.0, 50.0001, 99.0, 100.0]
    user = make_user(region=region, age=age)
    priced = DealPricer(cfg).price(frame, user, "winter")
    boosted = cfg.boosted_categories(region, "winter")
    group = cfg.age_group(cfg.age_group_of(age))
    expected = [
        seed_final_discount(cfg.region(region).avg_discount, group.deal_preference, d, c in boosted)
        for d, c in zip(frame["demand_score"], frame["category"], strict=True)
    ]
    assert priced["formula_discount"].tolist() == expected  # bit-for-bit
    assert (priced["sensitivity_factor"] == 1.0).all() and (priced["extra_factor"] == 1.0).all()


def test_price_sensitivity_factor_retargets_within_demographic():
    cfg = DEFAULT_CONFIG
    frame = make_candidates(20, seed=2)
    eu, adult = cfg.region("EU"), cfg.age_group("adult")
    reference = (eu.price_sensitivity + adult.price_sensitivity) / 2
    off = DealPricer(cfg).price(frame, make_user(ps=0.9), "winter")
    at_reference = DealPricer(cfg, use_price_sensitivity=True).price(frame, make_user(ps=reference), "winter")
    high = DealPricer(cfg, use_price_sensitivity=True).price(frame, make_user(ps=0.9), "winter")
    low = DealPricer(cfg, use_price_sensitivity=True).price(frame, make_user(ps=0.3), "winter")
    unknown = DealPricer(cfg, use_price_sensitivity=True).price(frame, make_user(ps=float("nan")), "winter")
    np.testing.assert_allclose(at_reference["raw_discount"], off["raw_discount"], rtol=1e-12)
    np.testing.assert_allclose(high["sensitivity_factor"], 1 + 0.9 - reference)
    np.testing.assert_allclose(low["sensitivity_factor"], 1 + 0.3 - reference)
    assert (high["raw_discount"] > off["raw_discount"]).all() and (low["raw_discount"] < off["raw_discount"]).all()
    assert (unknown["raw_discount"] == off["raw_discount"]).all()
    # config switch and constructor override agree
    on_cfg = cfg.replace(deals=dataclasses.replace(cfg.deals, use_price_sensitivity=True))
    assert DealPricer(on_cfg).use_price_sensitivity and not DealPricer(on_cfg, use_price_sensitivity=False).use_price_sensitivity


def test_loyalty_factor_plugs_in_without_editing_the_formula():
    cfg = DEFAULT_CONFIG
    frame = make_candidates(30, seed=3)

    def loyalty(candidates: pd.DataFrame, user) -> np.ndarray:
        return np.full(len(candidates), 1.0 + 0.5 * user["loyalty_score"])

    user = {**make_user(region="Asia", age=22), "loyalty_score": 0.4}
    plain = DealPricer(cfg).price(frame, user, "winter")
    loyal = DealPricer(cfg, extra_factors=[loyalty]).price(frame, user, "winter")
    np.testing.assert_allclose(loyal["extra_factor"], 1.2)
    np.testing.assert_allclose(loyal["raw_discount"], plain["raw_discount"] * 1.2, rtol=1e-12)
    np.testing.assert_array_equal(loyal["formula_discount"], np.minimum(0.5, loyal["raw_discount"]))
    # and through the generator, with the guardrails still holding
    result = generator(extra_factors=[loyalty]).generate(user, frame, AS_OF)
    assert result.n_deals >= 1 and (result.deals["extra_factor"] == 1.2).all()
    assert (result.deals["discount_percentage"] <= 50.0).all()


@pytest.mark.parametrize("bad", [lambda c, u: -np.ones(len(c)), lambda c, u: np.ones(len(c) + 1),
                                 lambda c, u: np.full(len(c), np.nan)])
def test_bad_extra_factor_is_named(bad):
    with pytest.raises(ValueError, match="extra factor"):
        DealPricer(extra_factors=[bad]).price(make_candidates(5), make_user(), "winter")
    with pytest.raises(ConfigError, match="callables"):
        DealPricer(extra_factors=[0.5])


def test_expiry_mapping_is_shorter_for_higher_demand():
    cfg = DealConfig()
    days = expiry_days([0, 10, 50, 90, 100], cfg)
    assert days.tolist() == [7, 6, 4, 2, 1]
    grid = expiry_days(np.linspace(0, 100, 1001), cfg)
    assert (np.diff(grid) <= 0).all() and grid.min() == 1 and grid.max() == 7


# -- guardrails, property-based --------------------------------------------------------
@st.composite
def deal_configs(draw):
    lo = draw(st.floats(0.0, 0.4))
    hi = draw(st.floats(lo, 0.9))
    min_deals = draw(st.integers(1, 4))
    expiry_min = draw(st.integers(1, 3))
    return DealConfig(
        min_discount=lo, max_discount=hi, demand_floor=draw(st.floats(0.0, 1.0)),
        seasonal_factor=draw(st.floats(1.0, 1.6)), min_margin=draw(st.floats(0.0, 0.5)),
        min_deals=min_deals, max_deals=draw(st.integers(min_deals, 8)),
        expiry_min_days=expiry_min, expiry_max_days=draw(st.integers(expiry_min, 9)),
        use_price_sensitivity=draw(st.booleans()),
    )


@st.composite
def candidate_frames(draw):
    n = draw(st.integers(0, 25))
    finite = {"allow_nan": False, "allow_infinity": False}

    def floats(lo, hi):
        return np.array(draw(st.lists(st.floats(lo, hi, **finite), min_size=n, max_size=n)), dtype=float)

    def some_rows():  # a few rows, often none
        return draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=min(n, 4))) if n else []

    price = floats(0.01, 5000)
    cost = price * floats(0.05, 1.1)
    cost[some_rows()] = np.nan  # unknown costs
    affinity = floats(-5, 5)
    affinity[some_rows()] = np.nan
    purchased = np.zeros(n, dtype=bool)
    purchased[some_rows()] = True
    return pd.DataFrame({
        "product_id": [f"p{i:03d}" for i in draw(st.permutations(range(n)))],
        "name": [f"name {i}" for i in range(n)],
        "category": draw(st.lists(st.sampled_from(DEFAULT_CONFIG.categories), min_size=n, max_size=n)),
        "price": price,
        "cost": cost,
        "stock": np.array(draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)), dtype=np.int64),
        "demand_score": floats(0, 100),
        "affinity": affinity,
        "similarity_to_viewed": floats(0, 1),
        "behaviour_score": floats(0, 1),
        "purchased": purchased,
        "sales": floats(0, 50).round(),
    })


@st.composite
def users(draw):
    return {
        "user_id": "u" + str(draw(st.integers(0, 999))),
        "region": draw(st.sampled_from(DEFAULT_CONFIG.region_names)),
        "age": draw(st.one_of(st.integers(13, 110).map(float), st.just(float("nan")))),
        "spending_tier": draw(st.sampled_from(DEFAULT_CONFIG.spending_tier_names)),
        "price_sensitivity": draw(st.one_of(st.floats(0, 1), st.just(float("nan")))),
    }


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user=users(), frame=candidate_frames(), deals_cfg=deal_configs(),
       as_of=st.datetimes(min_value=pd.Timestamp("2020-01-01").to_pydatetime(),
                          max_value=pd.Timestamp("2030-12-31").to_pydatetime()),
       num_deals=st.one_of(st.none(), st.integers(1, 8)), shuffle_seed=st.integers(0, 2**16))
def test_every_guardrail_holds(user, frame, deals_cfg, as_of, num_deals, shuffle_seed):
    config = DEFAULT_CONFIG.replace(deals=deals_cfg)
    gen = generator(config=config)
    as_of = pd.Timestamp(as_of)
    if num_deals is not None and num_deals > deals_cfg.max_deals:
        with pytest.raises(ValueError, match="num_deals"):
            gen.generate(user, frame, as_of, num_deals)
        return
    result = gen.generate(user, frame, as_of, num_deals)
    deals = result.deals
    event(f"deals: {'none' if deals.empty else 'some'}; shortfall: {result.shortfall_reason is not None}")
    event(f"margin clamp binds: {bool(deals['margin_clamped'].any())}")
    # the design's keys, and nothing but known products
    assert set(SEED_DEAL_KEYS) <= set(deals.columns)
    assert set(deals["product_id"]) <= set(frame["product_id"])
    # bounds, exactly
    assert (deals["discount_percentage"] >= 100.0 * deals_cfg.min_discount).all()
    assert (deals["discount_percentage"] <= 100.0 * deals_cfg.max_discount).all()
    # margin floor, exactly, recomputed from the input
    by_id = frame.set_index("product_id")
    cost = by_id.loc[deals["product_id"], "cost"].to_numpy()
    assert (deals["deal_price"].to_numpy() >= cost * (1.0 + deals_cfg.min_margin)).all()
    assert (deals["deal_price"] <= deals["original_price"]).all()
    # no out-of-stock, no unknown cost, nothing already bought, one deal per product
    assert (by_id.loc[deals["product_id"], "stock"] > 0).all()
    assert not by_id.loc[deals["product_id"], "purchased"].any()
    assert deals["product_id"].is_unique
    # how many: as asked / 3..7, fewer only with a reason
    target = num_deals if num_deals is not None else None
    if result.shortfall_reason is None:
        if target is not None:
            assert result.n_deals == target
        else:
            assert deals_cfg.min_deals <= result.n_deals <= deals_cfg.max_deals
    else:
        assert result.n_deals == result.n_eligible < result.n_requested
        assert "eligible" in result.shortfall_reason
    assert sum(result.excluded.values()) + result.n_eligible == len(frame)
    assert set(result.excluded) == set(EXCLUSION_REASONS)
    # expiry within bounds of as_of, by the stated mapping
    expiry = pd.to_datetime(deals["deal_expiry"])
    assert ((expiry - as_of) >= pd.Timedelta(days=deals_cfg.expiry_min_days)).all()
    assert ((expiry - as_of) <= pd.Timedelta(days=deals_cfg.expiry_max_days)).all()
    assert (deals["expiry_days"] == expiry_days(deals["demand_score"], deals_cfg)).all()
    # the formula, where no guardrail binds, is the design's
    free = ~(deals["margin_clamped"] | deals["cap_bound"] | deals["floor_bound"])
    np.testing.assert_allclose(deals.loc[free, "discount_percentage"] / 100, deals.loc[free, "raw_discount"], rtol=1e-12)
    if not deals_cfg.use_price_sensitivity:
        assert (deals["sensitivity_factor"] == 1.0).all()
    # margin clamp: the floor is then hit (up to rounding)
    clamped = deals[deals["margin_clamped"]]
    np.testing.assert_allclose(clamped["deal_price"], clamped["margin_floor"], rtol=1e-9)
    # deterministic, and independent of the candidates' row order
    again = gen.generate(user, frame, as_of, num_deals)
    pd.testing.assert_frame_equal(deals, again.deals)
    shuffled = frame.sample(frac=1.0, random_state=shuffle_seed)
    pd.testing.assert_frame_equal(deals, gen.generate(user, shuffled, as_of, num_deals).deals)
    # ranks and scores
    assert deals["rank"].tolist() == list(range(1, len(deals) + 1))
    assert (deals["score"].diff().dropna() <= 0).all()


@settings(max_examples=100, deadline=None)
@given(price=st.floats(0.01, 1e5), cost_ratio=st.floats(0.01, 2.0), raw=st.floats(0.0, 2.0), cfg=deal_configs())
def test_apply_guardrails_scalar_properties(price, cost_ratio, raw, cfg):
    out = apply_guardrails([price], [price * cost_ratio], [raw], cfg).iloc[0]
    floor = price * cost_ratio * (1 + cfg.min_margin)
    if out["margin_infeasible"]:
        assert 1 - floor / price < cfg.min_discount and np.isnan(out["discount"])
    else:
        assert cfg.min_discount <= out["discount"] <= cfg.max_discount
        assert out["deal_price"] >= floor
        assert out["cap_bound"] == (raw > cfg.max_discount) and out["floor_bound"] == (raw < cfg.min_discount)


# -- selection, types, shortfall ---------------------------------------------------
def test_shortfall_is_reported_with_the_reasons():
    frame = make_candidates(10, seed=4)
    frame["stock"] = [0] * 8 + [3, 3]
    result = generator().generate(make_user(), frame, AS_OF)
    assert result.n_deals <= 2 and result.shortfall_reason is not None
    assert "out_of_stock=8" in result.shortfall_reason
    assert result.excluded["out_of_stock"] == 8


def test_cover_types_takes_the_best_of_each_type_that_fires():
    frame = make_candidates(60, seed=5)
    result = generator().generate(make_user(), frame, AS_OF)
    types = deal_type_scores(validate_candidates(frame), DEFAULT_CONFIG.boosted_categories("EU", "winter"), DealRules())
    fired_any = [t for t in DEAL_TYPES if types[t].any()]
    chosen = set("|".join(result.deals["deal_types"]).split("|"))
    assert set(fired_any) <= chosen
    assert result.deals["deal_reason"].str.len().gt(0).all()
    for _, deal in result.deals.iterrows():
        texts = [DealRules().reasons[t] for t in deal["deal_types"].split("|")]
        assert deal["deal_reason"] == ", ".join(texts)
        assert deal["is_regional_deal"] == ("regional_seasonal" in deal["deal_types"])


def test_num_deals_and_score_threshold():
    frame = make_candidates(80, seed=6)
    gen = generator()
    assert gen.generate(make_user(), frame, AS_OF, num_deals=5).n_deals == 5
    auto = gen.generate(make_user(), frame, AS_OF)
    assert 3 <= auto.n_deals <= 7
    strict = generator(rules=DealRules(min_score=100.0)).generate(make_user(), frame, AS_OF)
    assert strict.n_deals == DEFAULT_CONFIG.deals.min_deals
    for bad in (0, 8, 2.5, True, "3"):
        with pytest.raises(ValueError, match="num_deals"):
            gen.generate(make_user(), frame, AS_OF, num_deals=bad)


def test_records_are_json_ready_with_the_seed_keys():
    result = generator().generate(make_user(), make_candidates(30, seed=7), AS_OF)
    records = result.to_records()
    assert records and all(set(SEED_DEAL_KEYS) <= set(r) for r in records)
    assert all(isinstance(r["deal_types"], list) and isinstance(r["score"], float) for r in records)
    assert all(isinstance(r["is_regional_deal"], bool) for r in records)


def test_new_region_through_configuration_only():
    region = RegionConfig("LATAM", ("Sports", "Fashion", "Beauty"), 0.75, 0.22,
                          {"winter": ("Sports",), "summer": ("Beauty",)})
    config = DEFAULT_CONFIG.with_region(region)
    frame = make_candidates(40, seed=8)
    user = make_user(region="LATAM", age=45)
    result = generator(config=config).generate(user, frame, AS_OF)
    assert result.n_deals >= 3
    assert (result.deals["regional_preference"] == 0.22).all()
    seasonal = result.deals["category"].isin(config.boosted_categories("LATAM", "winter"))
    assert (result.deals["is_seasonal"] == seasonal).all()
    # Sports is in season for LATAM in winter: the 1.2 boost applies there
    assert (result.deals.loc[seasonal, "seasonal_factor"] == 1.2).all()
    with pytest.raises(ConfigError, match="unknown region 'LATAM'"):
        generator().generate(user, frame, AS_OF)


def test_season_follows_as_of_unless_given():
    frame = make_candidates(30, seed=9)
    gen = generator()
    assert gen.generate(make_user(), frame, "2024-07-01").season == "summer"
    assert gen.generate(make_user(), frame, AS_OF, season="spring").season == "spring"
    with pytest.raises(ValueError, match="season"):
        gen.generate(make_user(), frame, AS_OF, season="monsoon")


# -- contract errors -------------------------------------------------------------
@pytest.mark.parametrize(("column", "value", "message"), [
    ("demand_score", 101.0, "demand_score"),
    ("price", 0.0, "price"),
    ("stock", -1, "stock"),
    ("similarity_to_viewed", 1.5, "similarity_to_viewed"),
    ("cost", -2.0, "cost"),
    ("affinity", np.inf, "affinity"),
])
def test_bad_candidate_values_are_named(column, value, message):
    frame = make_candidates(5)
    frame[column] = frame[column].astype(float)
    frame.loc[2, column] = value
    with pytest.raises(ValueError, match=message):
        generator().generate(make_user(), frame, AS_OF)


def test_bad_frames_and_users_are_named():
    frame = make_candidates(5)
    with pytest.raises(ValueError, match="lack column"):
        generator().generate(make_user(), frame.drop(columns=["sales"]), AS_OF)
    dup = frame.copy()
    dup.loc[1, "product_id"] = dup.loc[0, "product_id"]
    with pytest.raises(ValueError, match="duplicate ids"):
        generator().generate(make_user(), dup, AS_OF)
    with pytest.raises(ValueError, match="bool"):
        generator().generate(make_user(), frame.assign(purchased=0), AS_OF)
    for missing_name in (frame.assign(name=frame["name"].astype(object).where(frame.index != 1, None)),
                         frame.assign(name=[f"n{i}" for i in range(4)] + [3])):
        with pytest.raises(ValueError, match="candidates.name: expected non-missing strings"):
            generator().generate(make_user(), missing_name, AS_OF)
    with pytest.raises(ValueError, match="price_sensitivity"):
        generator().generate(make_user(ps=1.5), frame, AS_OF)
    with pytest.raises(ValueError, match="missing field"):
        generator().generate({"user_id": "u"}, frame, AS_OF)
    with pytest.raises(ConfigError, match="spending tier"):
        generator().generate(make_user(tier="gold"), frame, AS_OF)
    with pytest.raises(ValueError, match="as_of"):
        generator().generate(make_user(), frame, None)
    assert list(CANDIDATE_COLUMNS)[0] == "product_id"


# -- rate limiting ---------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_refuses_past_the_limit_and_says_when_to_retry():
    clock = FakeClock()
    limiter = RateLimiter(3, 60.0, clock)
    for _ in range(3):
        limiter.acquire("alice")
        clock.now += 5
    assert limiter.remaining("alice") == 0 and limiter.remaining("bob") == 3
    with pytest.raises(RateLimitExceeded, match=r"retry in 45\.0 s") as info:
        limiter.acquire("alice")
    assert isinstance(info.value, RuntimeError) and info.value.retry_after == pytest.approx(45.0)
    limiter.acquire("bob")  # other users are unaffected
    clock.now += 45.0  # the first call leaves the window
    limiter.acquire("alice")
    with pytest.raises(RateLimitExceeded):
        limiter.acquire("alice")
    for bad in ((0, 60), (3, 0), (True, 60), (3, float("inf"))):
        with pytest.raises(ConfigError):
            RateLimiter(*bad)


def test_generator_is_rate_limited_per_user_by_default():
    clock = FakeClock()
    config = DEFAULT_CONFIG.replace(deals=dataclasses.replace(DEFAULT_CONFIG.deals, rate_limit_requests=2,
                                                               rate_limit_window_seconds=10.0))
    gen = DealGenerator(config, rate_limiter=RateLimiter.from_config(config.deals, clock))
    frame = make_candidates(20)
    gen.generate(make_user("a"), frame, AS_OF)
    gen.generate(make_user("a"), frame, AS_OF)
    with pytest.raises(RateLimitExceeded, match="retry in 10.0 s"):
        gen.generate(make_user("a"), frame, AS_OF)
    gen.generate(make_user("b"), frame, AS_OF)
    clock.now += 10.0
    gen.generate(make_user("a"), frame, AS_OF)
    default = DealGenerator()
    for _ in range(DEFAULT_CONFIG.deals.rate_limit_requests):
        default.generate(make_user("c"), frame, AS_OF)
    with pytest.raises(RateLimitExceeded, match="retry in"):
        default.generate(make_user("c"), frame, AS_OF)


# -- the builder on a real data set ------------------------------------------------------
def test_builder_signals_match_the_events(small_dataset):
    ds = small_dataset
    builder = CandidateBuilder(ds, sales_window_days=30)
    ev = ds.events
    recent = ev[(ev["event_type"] == "purchase") & (ev["timestamp"] > ds.as_of - pd.Timedelta(days=30))]
    sales = recent.groupby("product_id")["quantity"].sum().reindex(ds.products["product_id"], fill_value=0)
    np.testing.assert_allclose(builder.sales_, sales.to_numpy(dtype=float))
    user = ev.loc[ev["event_type"] == "cart", "user_id"].iloc[0]
    mine = ev[ev["user_id"] == user]
    bought = set(mine.loc[mine["event_type"] == "purchase", "product_id"])
    carted = set(mine.loc[mine["event_type"] == "cart", "product_id"]) - bought
    n = ds.n_products
    rng = np.random.default_rng(0)
    frame = build_candidates(ds, user, rng.normal(size=n), rng.uniform(0, 100, n), rng.uniform(0, 1, n))
    validate_candidates(frame)
    assert frame["behaviour_score"].between(0, 1).all()
    assert set(frame.loc[frame["purchased"], "product_id"]) == bought
    if carted:
        assert (frame.set_index("product_id").loc[sorted(carted), "behaviour_score"] >= 0.5).all()
    with pytest.raises(ValueError, match="unknown user_id"):
        builder.build("nobody", np.zeros(n), np.zeros(n))
    with pytest.raises(ValueError, match="demand_score"):
        builder.build(user, np.zeros(n), np.zeros(n - 1))


def test_batch_and_single_paths_agree(small_dataset):
    ds = small_dataset
    builder = CandidateBuilder(ds)
    users = ds.user_features().head(25)
    ids = users["user_id"].tolist()
    rng = np.random.default_rng(1)
    affinity = rng.normal(size=(len(ids), ds.n_products))
    demand = pd.Series(rng.uniform(0, 100, ds.n_products), index=ds.products["product_id"])
    item_sim = rng.uniform(0, 1, (ds.n_products, ds.n_products))
    similarity = builder.similarity_to_viewed(ids, item_sim)
    gen = generator(use_price_sensitivity=True)
    gen.chunk_size = 7  # several chunks: results must not depend on chunking
    batch = gen.generate_many(users, builder.build_block(ids, affinity, demand, similarity), ds.as_of)
    assert batch.summary["user_id"].tolist() == ids
    for i, row in enumerate(users.to_dict("records")):
        frame = builder.build(row["user_id"], affinity[i], demand, similarity[i])
        single = gen.generate(row, frame, ds.as_of)
        pd.testing.assert_frame_equal(single.deals, batch.result(row["user_id"]).deals)
        assert single.excluded == batch.result(row["user_id"]).excluded
        # the engine's path: a one-user block instead of the frame, same deals and records
        block = builder.build_block([row["user_id"]], affinity[i], demand, similarity[i])
        fast = gen.generate(row, block, ds.as_of)
        assert fast.to_records() == single.to_records()
        pd.testing.assert_frame_equal(fast.deals, single.deals)
        assert (fast.n_deals, fast.shortfall_reason) == (single.n_deals, single.shortfall_reason)
    other = builder.build_block([ids[1]], affinity[1], demand, similarity[1])
    with pytest.raises(ValueError, match="exactly user"):
        gen.generate(users.iloc[0].to_dict(), other, ds.as_of)
    with pytest.raises(ValueError, match="user_ids"):
        gen.generate_many(users.iloc[::-1], builder.build_block(ids, affinity, demand, similarity), ds.as_of)
    assert set(SEASONS) >= {batch.season}


def test_rank_percentiles_match_scipy():
    from scipy.stats import rankdata

    from recsys.deals.deal_types import _rank_pct

    rng = np.random.default_rng(3)
    values = rng.integers(0, 6, size=(5, 40)).astype(float)
    values[rng.uniform(size=values.shape) < 0.2] = np.nan
    values[4] = np.nan
    expected = rankdata(values, axis=1, nan_policy="omit") / np.maximum((~np.isnan(values)).sum(axis=1, keepdims=True), 1)
    np.testing.assert_allclose(_rank_pct(values), expected, rtol=0, atol=1e-15)
    # only the ranks that can exceed q: exact there, 0 for the rest, NaN kept
    for q in (0.0, 0.3, 0.8, 1.0):
        head = _rank_pct(values, above=q)
        finite = ~np.isnan(values)
        np.testing.assert_array_equal(np.isnan(head), ~finite)
        fired = np.nan_to_num(expected) > q
        np.testing.assert_array_equal(np.nan_to_num(head) > q, fired)
        np.testing.assert_allclose(head[fired], expected[fired], rtol=0, atol=1e-15)
        assert ((head[finite] == 0) | np.isclose(head[finite], expected[finite], rtol=0, atol=1e-15)).all()


def test_study_on_real_stage2_models(small_dataset):
    from recsys.deals.audit import all_passed, audit_deals
    from recsys.deals.study import binding_rates, deals_by_season, fit_deal_inputs, type_shares
    from recsys.stage2.demand import DemandConfig

    inputs = fit_deal_inputs(small_dataset, demand_config=DemandConfig(max_iter=20))
    gen = generator()
    batch = inputs.generate(gen, chunk_size=128)
    assert batch.summary["user_id"].tolist() == inputs.users["user_id"].tolist()
    assert all_passed(audit_deals(batch, small_dataset.config.deals))
    # users without history get NaN affinity, so never a high-affinity deal
    cold = set(inputs.users.loc[~inputs.has_history, "user_id"])
    assert not batch.deals.loc[batch.deals["user_id"].isin(cold), "high_affinity"].any()
    rates = binding_rates(batch)
    assert {"margin floor clamp", "out of stock"} <= set(rates["guardrail"])
    shares = type_shares(batch.deals, inputs.users, "region")
    assert list(shares.columns) == list(DEAL_TYPES) and ((shares >= 0) & (shares <= 1)).all().all()
    seasons = deals_by_season(inputs, gen, seasons=("winter", "summer"))
    assert set(seasons["season"]) == {"winter", "summer"}
    empty = gen.generate_many(inputs.users.iloc[:0], inputs.block([]), small_dataset.as_of)
    assert empty.deals.empty and empty.summary.empty


def test_deal_rules_pickle_round_trip():
    import pickle
    from types import MappingProxyType

    rules = DealRules(min_score=40.0, type_weights=(2, 1, 1, 1), reasons={**DealRules().reasons, "personalized": "Just for You"})
    back = pickle.loads(pickle.dumps(rules))
    assert back == rules
    assert isinstance(back.reasons, MappingProxyType) and back.reasons["personalized"] == "Just for You"
