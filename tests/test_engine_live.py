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


def test_a_known_users_new_profile_moves_their_demographic_segment_at_once(small_dataset):
    engine = RecommendationEngine()
    engine.train(small_dataset)
    fallback = engine.realtime_.fallback_
    user = small_dataset.users["user_id"].iloc[7]
    row = engine.interactions_.user_index([user])
    before = engine.recommend([user], 5, strategy="demographic")["product_id"].tolist()
    profile = {"user_id": user, "region": "Asia", "age_group": "senior", "spending_tier": "premium"}
    old = small_dataset.users.set_index("user_id").loc[user]
    assert (old["region"], old["spending_tier"]) != ("Asia", "premium")
    assert engine.update_profiles(pd.DataFrame([profile])) == {"updated": [user], "registered": []}
    assert fallback.segments_of_rows(row)[0] == fallback.segment_codes(pd.DataFrame([profile]))[0]
    after = engine.recommend([user], 5, strategy="demographic")
    assert after["product_id"].tolist() != before
    assert "region and age group" in after["reason"].iloc[0]
    # the Stage 1 fallback (its backfill) uses the new segment: the same list a new user with that profile gets
    engine.update_profiles(pd.DataFrame([{**profile, "user_id": "twin"}]))
    assert engine.realtime_.top_one("twin", 5).reasons == after["reason"].tolist()
    # a partial upsert keeps the rest of the profile
    engine.update_profiles(pd.DataFrame([{"user_id": user, "spending_tier": "budget"}]))
    budget = fallback.segment_codes(pd.DataFrame([{**profile, "spending_tier": "budget"}]))[0]
    assert fallback.segments_of_rows(row)[0] == budget


def test_deals_follow_a_known_users_new_region_at_once(engine, small_dataset):
    season = engine.deals(small_dataset.users["user_id"].iloc[0], 7)["season"]
    config = engine.config
    regional = {}
    for user in small_dataset.users["user_id"].iloc[:4]:
        for region in ("EU", "NA", "Other"):
            engine.update_profiles(pd.DataFrame([{"user_id": user, "region": region}]))
            categories = {d["category"] for d in engine.deals(user, 7)["deals"] if d["is_regional_deal"]}
            assert categories <= set(config.boosted_categories(region, season))
            regional[region] = regional.get(region, 0) + len(categories)
    assert regional["EU"] > 0 and regional["NA"] > 0 and regional["Other"] == 0


def test_profile_segments_refuse_rows_outside_the_fitted_users(engine):
    import numpy as np

    with pytest.raises(ValueError, match="rows outside"):
        engine.realtime_.fallback_.with_user_segments(np.array([10**6]), np.array([1]))


def _new_product_like(engine, small_dataset, user, product_id="new-lamp", **extra):
    """A new product whose text copies the product the user interacted with most (so its content matches)."""
    history = small_dataset.events[small_dataset.events["user_id"] == user]["product_id"].value_counts()
    model = small_dataset.products.set_index("product_id").loc[history.index[0]]
    return {"product_id": product_id, "name": model["name"], "category": model["category"],
            "description": model["description"], "price": 42.0, "cost": 20.0, "stock": 7, **extra}


def test_a_new_product_is_recommended_by_content_at_once_to_a_matching_user(small_dataset):
    from recsys.serving.engine_live import NEW_PRODUCT_REASON

    engine = RecommendationEngine()
    engine.train(small_dataset)
    user = small_dataset.events["user_id"].value_counts().index[0]
    before = engine.realtime(user, 5)["recommendations"]
    row = _new_product_like(engine, small_dataset, user)
    assert engine.update_products(pd.DataFrame([row]))["not_in_catalogue"] == ["new-lamp"]
    assert engine.new_products() == ["new-lamp"]
    answer = engine.realtime(user, 5)
    products = [r["product_id"] for r in answer["recommendations"]]
    assert answer["method"] == "realtime_knn" and len(products) == 5
    assert products[-1] == "new-lamp" and products[:4] == [r["product_id"] for r in before[:4]]
    last = answer["recommendations"][-1]
    assert last["reason"] == NEW_PRODUCT_REASON and last["score"] >= engine.new_product_min_similarity
    assert (last["name"], last["price"]) == (row["name"], 42.0)
    # a history-less user (the demographic fallback) gets no content pick; nor does anyone once it is sold out
    assert "new-lamp" not in [r["product_id"] for r in engine.realtime("nobody-yet", 5)["recommendations"]]
    engine.update_products(pd.DataFrame([{**row, "stock": 0}]))
    assert "new-lamp" not in [r["product_id"] for r in engine.realtime(user, 5)["recommendations"]]


def test_a_new_product_needs_text_that_matches_and_a_name_category_and_price(small_dataset):
    engine = RecommendationEngine()
    engine.train(small_dataset)
    user = small_dataset.events["user_id"].value_counts().index[0]
    engine.update_products(pd.DataFrame([{"product_id": "price-only", "name": None, "category": None,
                                          "price": 3.0, "stock": 2}]))
    assert engine.new_products() == []  # joins at the next training only
    engine.update_products(pd.DataFrame([{"product_id": "odd", "name": "zzqx", "category": "Nothing Like It",
                                          "description": "qqzz", "price": 3.0, "stock": 2}]))
    assert engine.new_products() == ["odd"]
    assert "odd" not in [r["product_id"] for r in engine.realtime(user, 5)["recommendations"]]  # cosine 0
    vectors = engine.content_.vectorize(pd.DataFrame([{"name": "zzqx", "category": "Nothing Like It"}]))
    assert vectors.nnz == 0  # no word of the fitted vocabulary
    with pytest.raises(ValueError, match="category"):
        engine.content_.vectorize(pd.DataFrame([{"name": "x"}]))
