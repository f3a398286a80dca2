"""Stage 2 demand prediction and seasonal factors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

import recsys.stage2.demand as demand_module
import recsys.stage2.seasonality as seasonality_module
from recsys.data import Dataset
from recsys.stage2.demand import (
    DemandConfig,
    DemandModel,
    QuantileBinned,
    demand_panel,
    demand_score,
    forecast_errors,
)
from recsys.stage2.seasonality import SeasonalFactors, SeasonalityConfig


@pytest.fixture(scope="module")
def demand(small_dataset: Dataset) -> DemandModel:
    return DemandModel(DemandConfig(max_iter=30)).fit(small_dataset)


def _tiny(rows: list[tuple[str, str, str, str]], as_of: str = "2024-12-31") -> Dataset:
    """A hand-made world: rows of (user_id, product_id, event_type, timestamp);
    users u_EU (EU) and u_NA (NA); products p_books (Books), p_travel (Travel)."""
    users = pd.DataFrame({"user_id": ["u_EU", "u_NA"], "age": [30.0, 50.0], "region": ["EU", "NA"],
                          "spending_tier": ["mid", "budget"], "price_sensitivity": [0.5, 0.6]})
    products = pd.DataFrame({
        "product_id": ["p_books", "p_travel"], "name": ["b", "t"], "category": ["Books", "Travel"],
        "description": ["", ""], "tags": ["", ""], "price": [10.0, 300.0], "cost": [5.0, 200.0],
        "stock": [5, 5], "peak_season": ["winter", "summer"],
    })
    kind = [r[2] for r in rows]
    events = pd.DataFrame({
        "user_id": [r[0] for r in rows], "product_id": [r[1] for r in rows], "event_type": kind,
        "timestamp": pd.to_datetime([r[3] for r in rows]), "session_id": [f"s{i}" for i in range(len(rows))],
        "quantity": [1 if k == "purchase" else 0 for k in kind],
        "value": [10.0 if k == "purchase" else np.nan for k in kind], "rating": np.nan,
    })
    return Dataset(users, products, events, pd.Timestamp(as_of))


# --------------------------------------------------------------------------- demand
def test_demand_score_in_0_100(demand: DemandModel, small_dataset: Dataset) -> None:
    scores = demand.demand_scores_
    assert len(scores) == small_dataset.n_products and scores.index.equals(pd.Index(small_dataset.products["product_id"]))
    assert scores.between(0, 100).all() and scores.min() == 0.0
    assert (demand.forecast_["predicted_demand"] >= 0).all()
    # the score is monotone in the forecast
    f = demand.forecast_.sort_values("predicted_demand", kind="stable")
    assert f["demand_score"].is_monotonic_increasing


def test_demand_score_mapping_by_hand() -> None:
    np.testing.assert_allclose(demand_score(np.array([0.0, 2.0, 1.0, 1.0])), [0.0, 100.0, 100 / 3, 100 / 3])
    np.testing.assert_allclose(demand_score(np.array([0.0, 0.0, 5.0])), [0.0, 0.0, 100.0])
    np.testing.assert_allclose(demand_score(np.array([3.0, 3.0, 3.0])), [50.0, 50.0, 50.0])
    assert demand_score(np.array([7.0])).tolist() == [50.0]


def test_errors_table_and_baselines(demand: DemandModel, small_dataset: Dataset) -> None:
    cfg = demand.config
    assert list(demand.errors_["model"]) == ["model", "naive", "moving_average"]
    assert list(demand.errors_.columns) == ["model", "mae", "rmse", "wape"]
    h = demand.holdout_
    assert len(h) == cfg.holdout_periods * small_dataset.n_products
    panel = demand.panel_
    T = panel.demand.shape[1]
    # the naive forecast of the first holdout period is the period before it
    first = h[h["period_end"] == panel.period_end[T - cfg.holdout_periods]]
    np.testing.assert_array_equal(first["naive"], panel.demand[:, T - cfg.holdout_periods - 1])
    np.testing.assert_array_equal(first["actual"], panel.demand[:, T - cfg.holdout_periods])
    for name in ("model", "naive", "moving_average"):
        row = demand.errors_.set_index("model").loc[name]
        assert row["mae"] == pytest.approx(forecast_errors(h["actual"], h[name])["mae"])


def test_forecast_errors_by_hand() -> None:
    e = forecast_errors(np.array([2.0, 0.0, 4.0]), np.array([1.0, 1.0, 4.0]))
    assert e["mae"] == pytest.approx(2 / 3)
    assert e["rmse"] == pytest.approx(np.sqrt(2 / 3))
    assert e["wape"] == pytest.approx(2 / 6)
    assert np.isnan(forecast_errors(np.zeros(2), np.ones(2))["wape"])


def test_panel_counts_every_purchase(small_dataset: Dataset) -> None:
    panel = demand_panel(small_dataset, 7)
    events = small_dataset.events
    purchases = events[events["event_type"] == "purchase"]
    inside = (small_dataset.as_of - purchases["timestamp"]) < pd.Timedelta(days=7 * panel.demand.shape[1])
    assert panel.demand.sum() == purchases.loc[inside, "quantity"].sum()
    assert panel.n_events_before_first_period == int(
        ((small_dataset.as_of - events["timestamp"]) >= pd.Timedelta(days=7 * panel.demand.shape[1])).sum())
    assert panel.period_end[-1] == small_dataset.as_of


def test_features_never_see_the_target_period(demand: DemandModel, small_dataset: Dataset) -> None:
    panel = demand.panel_
    T = panel.demand.shape[1]
    before, _, _, _ = demand._features(panel, small_dataset, range(T - 1, T))
    changed = demand_panel(small_dataset, 7)
    changed.demand[:, T - 1] += 100.0
    for name in changed.leading:
        changed.leading[name][:, T - 1] += 100.0
    after, _, _, _ = demand._features(changed, small_dataset, range(T - 1, T))
    np.testing.assert_array_equal(before, after)


def test_demand_is_deterministic(small_dataset: Dataset, demand: DemandModel) -> None:
    again = DemandModel(DemandConfig(max_iter=30)).fit(small_dataset)
    pd.testing.assert_frame_equal(again.forecast_, demand.forecast_)


def test_holdout_sample_changes_only_the_evaluation(small_dataset: Dataset, demand: DemandModel) -> None:
    """``holdout_max_rows`` caps the holdout model's training rows (seeded sample);
    the served forecast, fitted on every observed row, is the same with or without it."""
    assert demand.n_train_rows_ > 200  # the fixture's holdout model saw every training row
    capped = DemandModel(DemandConfig(max_iter=30, holdout_max_rows=200)).fit(small_dataset)
    assert capped.n_train_rows_ == 200 and capped.n_test_rows_ == demand.n_test_rows_
    pd.testing.assert_frame_equal(capped.forecast_, demand.forecast_)
    pd.testing.assert_frame_equal(capped.holdout_.drop(columns="model"), demand.holdout_.drop(columns="model"))
    assert not np.array_equal(capped.holdout_["model"], demand.holdout_["model"])
    again = DemandModel(DemandConfig(max_iter=30, holdout_max_rows=200)).fit(small_dataset)
    pd.testing.assert_frame_equal(again.errors_, capped.errors_)


def test_quantile_binned_compact_codes_are_the_same_values() -> None:
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=500), rng.integers(0, 7, 500).astype(float), rng.exponential(size=500)])
    y = rng.poisson(1.0, 500).astype(float)

    def model() -> QuantileBinned:
        hgb = HistGradientBoostingRegressor(loss="poisson", max_iter=10, categorical_features=[False, True, False],
                                            random_state=0)
        return QuantileBinned(hgb, [True, False, True])

    wide = model().fit_thresholds(X)
    codes = wide.transform(X)
    assert codes.dtype == np.uint8
    np.testing.assert_array_equal(codes, wide.transform(X, compact=False))
    assert wide.transform(X + [0, 0.5, 0]).dtype == np.float64  # a non-integer category: no compact codes
    np.testing.assert_array_equal(model().fit(X, y).predict(X),
                                  model().fit_thresholds(X).fit_binned(codes, y).predict_binned(codes))


def test_panel_in_chunks_equals_one_pass(small_dataset: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = demand_panel(small_dataset, 7)
    monkeypatch.setattr(demand_module, "_PANEL_CHUNK", 1000)
    assert len(small_dataset.events) > 3000
    chunked = demand_panel(small_dataset, 7)
    np.testing.assert_array_equal(chunked.demand, whole.demand)
    for name in whole.leading:
        np.testing.assert_array_equal(chunked.leading[name], whole.leading[name])
    assert chunked.n_events_before_first_period == whole.n_events_before_first_period


def test_demand_bad_input(small_dataset: Dataset) -> None:
    with pytest.raises(ValueError, match="at least 30 complete periods"):
        DemandModel(DemandConfig(n_lags=4, holdout_periods=24)).fit(small_dataset)
    with pytest.raises(ValueError, match="period_days must be a positive int"):
        DemandConfig(period_days=0)
    with pytest.raises(ValueError, match="offset_prior"):
        DemandConfig(offset_prior=0.0)
    with pytest.raises(ValueError, match="holdout_max_rows"):
        DemandConfig(holdout_max_rows=-1)
    empty = small_dataset.restrict_events(np.zeros(len(small_dataset.events), dtype=bool))
    with pytest.raises(ValueError, match="without events"):
        DemandModel().fit(empty)
    with pytest.raises(RuntimeError, match="not fitted"):
        DemandModel().demand_scores_  # noqa: B018


# --------------------------------------------------------------------------- seasonality
def test_seasonal_factor_by_hand() -> None:
    # EU: winter 3 books + 1 travel; summer 1 books + 1 travel (alpha = 0)
    rows = [("u_EU", "p_books", "view", "2024-01-10")] * 3 + [("u_EU", "p_travel", "view", "2024-01-11")]
    rows += [("u_EU", "p_books", "view", "2024-07-10"), ("u_EU", "p_travel", "view", "2024-07-11")]
    factors = SeasonalFactors(SeasonalityConfig(alpha=0.0)).fit(_tiny(rows))
    eu = factors.table("EU")
    # books share: winter 3/4, summer 1/2 -> mean 5/8 -> factors 1.2 and 0.8
    assert eu.loc["Books", "winter"] == pytest.approx(0.75 / 0.625)
    assert eu.loc["Books", "summer"] == pytest.approx(0.5 / 0.625)
    assert eu.loc["Travel", "summer"] == pytest.approx(0.5 / 0.375)
    assert np.isnan(eu.loc["Books", "spring"])  # no EU events in spring: not observed
    assert factors.table("NA").isna().all().all()  # no NA events at all
    assert factors.factor("EU", "Books", "winter") == pytest.approx(1.2)
    cells = factors.factors_.set_index(["region", "category", "season"])
    assert bool(cells.loc[("EU", "Books", "winter"), "prior_boosted"])  # SPEC: EU winter boosts Books
    assert not bool(cells.loc[("EU", "Books", "summer"), "prior_boosted"])


def test_constant_shares_give_factor_one() -> None:
    rows = []
    for month in ("01", "04", "07", "10"):
        rows += [("u_NA", "p_books", "purchase", f"2024-{month}-05")] * 2 + [("u_NA", "p_travel", "view", f"2024-{month}-06")]
    factors = SeasonalFactors().fit(_tiny(rows))
    np.testing.assert_allclose(factors.table("NA").loc[["Books", "Travel"]].to_numpy(), 1.0)


def test_measured_factors_follow_the_generator(ci_dataset: Dataset) -> None:
    factors = SeasonalFactors().fit(ci_dataset)
    f = factors.factors_
    assert len(f) == len(ci_dataset.config.region_names) * 10 * 4
    comparison = factors.compare_with_prior()
    assert comparison["n_cells"] == f["factor"].notna().sum()
    # the synthetic world boosts in-season categories: the prior's cells stand out
    assert comparison["auc"] > 0.6 and comparison["mean_factor_boosted"] > comparison["mean_factor_other"]


def test_seasonality_bad_input(small_dataset: Dataset) -> None:
    with pytest.raises(ValueError, match="alpha must be a non-negative number"):
        SeasonalityConfig(alpha=-1)
    with pytest.raises(ValueError, match="event_types"):
        SeasonalityConfig(event_types=("click",))
    factors = SeasonalFactors(SeasonalityConfig(event_types=("purchase",))).fit(small_dataset)
    with pytest.raises(ValueError, match="unknown region 'Mars'"):
        factors.table("Mars")
    with pytest.raises(ValueError, match="no seasonal factor"):
        factors.factor("EU", "Socks", "winter")
    empty = small_dataset.restrict_events(np.zeros(len(small_dataset.events), dtype=bool))
    with pytest.raises(ValueError, match="no events of types"):
        SeasonalFactors().fit(empty)


def test_seasonal_counts_in_chunks_equal_one_pass(small_dataset: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = SeasonalFactors().fit(small_dataset)
    monkeypatch.setattr(seasonality_module, "_CHUNK", 1000)
    assert len(small_dataset.events) > 3000
    chunked = SeasonalFactors().fit(small_dataset)
    pd.testing.assert_frame_equal(chunked.factors_, whole.factors_)
    pd.testing.assert_series_equal(chunked.season_days_, whole.season_days_)
