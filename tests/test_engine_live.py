"""The engine's live product and profile changes (recsys.serving.engine_live)."""

from __future__ import annotations

import pandas as pd
import pytest

from recsys.serving.engine import RecommendationEngine
from recsys.validation import InvalidRequest


@pytest.fixture(scope="module")
def engine(small_dataset):
    engine = RecommendationEngine()
    engine.train(small_dataset)
    return engine


def _deal_ids(engine, user):
    return [d["product_id"] for d in engine.deals(user, 5)["deals"]]


def test_stock_zero_and_a_high_cost_remove_deals_at_once(engine, small_dataset):
    user = small_dataset.users["user_id"].iloc[0]
    before = engine.deals(user, 5)["deals"]
    first, second = before[0], before[1]
    result = engine.update_products(pd.DataFrame({"product_id": [first["product_id"], "not-a-product"],
                                                  "stock": [0, 3]}))
    assert result == {"updated": [first["product_id"]], "not_in_catalogue": ["not-a-product"]}
    assert first["product_id"] not in _deal_ids(engine, user)
    # a cost just under the price: no discount keeps the margin floor, so no deal
    engine.update_products(pd.DataFrame({"product_id": [second["product_id"]],
                                         "cost": [second["original_price"] * 0.99]}))
    assert second["product_id"] not in _deal_ids(engine, user)
    engine.update_products(pd.DataFrame({"product_id": [first["product_id"]], "stock": [5], "price": [123.0]}))
    again = {d["product_id"]: d for d in engine.deals(user, 5)["deals"]}
    if first["product_id"] in again:
        assert again[first["product_id"]]["original_price"] == 123.0
    assert engine.update_products(pd.DataFrame({"product_id": [first["product_id"]], "price": [None]}))["updated"]


def test_bad_product_values_are_refused_and_change_nothing(engine, small_dataset):
    product = small_dataset.products["product_id"].iloc[5]
    with pytest.raises(InvalidRequest, match="price"):
        engine.update_products(pd.DataFrame({"product_id": [product], "price": [-1.0]}))


def test_a_new_users_profile_drives_the_fallback_at_once(engine, small_dataset):
    anonymous = engine.realtime("profile-less", 5)
    engine.update_profiles(pd.DataFrame([{"user_id": "new-senior", "region": "EU", "age_group": "senior",
                                          "spending_tier": "premium"}]))
    profiled = engine.realtime("new-senior", 5)
    assert anonymous["method"] == profiled["method"] == "demographic_fallback"
    assert [r["product_id"] for r in profiled["recommendations"]] != [
        r["product_id"] for r in anonymous["recommendations"]]
    assert "region and age group" in profiled["recommendations"][0]["reason"]


def test_a_known_users_tier_changes_their_profile(engine, small_dataset):
    user = small_dataset.users["user_id"].iloc[3]
    result = engine.update_profiles(pd.DataFrame([{"user_id": user, "spending_tier": "budget",
                                                   "age_group": "young"}]))
    assert result == {"updated": [user], "registered": []}
    profile = engine.user_profile(user)
    assert (profile["spending_tier"], profile["age_group"], profile["age"]) == ("budget", "young", 19.0)
    with pytest.raises(InvalidRequest, match="unknown region"):
        engine.update_profiles(pd.DataFrame([{"user_id": user, "region": "Mars"}]))


def test_training_data_reports_the_store_cutoff(engine, small_dataset):
    info = engine.model_info()["training_data"]
    assert info == {"events": len(small_dataset.events), "users": small_dataset.n_users,
                    "products": small_dataset.n_products, "cutoff_event_id": 0, "cutoff_time": None}
