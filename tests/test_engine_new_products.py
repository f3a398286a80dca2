"""A product upserted while serving: in the Stage 3 answer and the deals before the next training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.deals.new_products import NEW_PRODUCT_DEMAND, NEW_PRODUCT_REASON
from recsys.deals.rate_limit import RateLimiter
from recsys.models.hybrid import STRATEGIES
from recsys.serving.engine import RecommendationEngine
from recsys.validation import InvalidRequest


@pytest.fixture(scope="module")
def trained(small_dataset):
    engine = RecommendationEngine()
    engine.train(small_dataset)
    engine.use_rate_limiter(RateLimiter(10**6, 60.0))  # many deal requests per test
    return engine


@pytest.fixture
def engine(trained):
    """The trained engine; new products removed again after each test."""
    yield trained
    trained.__dict__.pop("_new_products", None)


def _viewer(dataset):
    """A known user with the most views (so content and "similar to viewed" can score for them)."""
    views = dataset.events[dataset.events["event_type"] == "view"]
    return views["user_id"].value_counts().index[0]


def _like_most_viewed(dataset, user, product_id="new-lamp", **values):
    """A new product whose text copies the product the user viewed most, priced low in its category."""
    events = dataset.events
    views = events[(events["user_id"] == user) & (events["event_type"] == "view")]["product_id"].value_counts()
    model = dataset.products.set_index("product_id").loc[views.index[0]]
    price = float(dataset.products.loc[dataset.products["category"] == model["category"], "price"].min())
    return {"product_id": product_id, "name": model["name"], "category": model["category"],
            "description": model["description"], "price": price, "cost": round(price * 0.4, 2), "stock": 7, **values}


def _ids(records):
    return [r["product_id"] for r in records]


def test_a_new_product_takes_the_last_place_of_the_full_answer_scored_by_content(engine, small_dataset):
    user = _viewer(small_dataset)
    before = engine.full(user, 10, include_deals=False)["recommendations"]
    row = _like_most_viewed(small_dataset, user)
    engine.update_products(pd.DataFrame([row]))
    answer = engine.full(user, 10, include_deals=False)["recommendations"]
    assert _ids(answer)[:9] == _ids(before)[:9] and answer[-1]["product_id"] == "new-lamp"
    last = answer[-1]
    assert last["reason"] == NEW_PRODUCT_REASON and last["score"] >= engine.new_product_min_similarity
    assert last["contributions"] == {s: (last["score"] if s == "content" else 0.0) for s in STRATEGIES}
    # collaborative strategies cannot score it before the next batch: not in any strategy's catalogue
    assert not engine.knows_product("new-lamp")
    # sold out: gone from the full answer
    engine.update_products(pd.DataFrame([{"product_id": "new-lamp", "stock": 0}]))
    assert _ids(engine.full(user, 10, include_deals=False)["recommendations"]) == _ids(before)


def test_a_new_product_above_the_users_spending_tier_is_not_in_the_full_answer(engine, small_dataset):
    users = small_dataset.users.set_index("user_id")
    user = next(u for u in small_dataset.events[small_dataset.events["event_type"] == "view"]["user_id"]
                .value_counts().index if users.loc[u, "spending_tier"] == "budget")
    row = _like_most_viewed(small_dataset, user)
    top = float(small_dataset.products.loc[small_dataset.products["category"] == row["category"], "price"].max())
    engine.update_products(pd.DataFrame([{**row, "price": top * 2, "cost": top}]))
    assert "new-lamp" not in _ids(engine.full(user, 10, include_deals=False)["recommendations"])
    engine.update_products(pd.DataFrame([{"product_id": "new-lamp", "price": row["price"], "cost": row["cost"]}]))
    assert "new-lamp" in _ids(engine.full(user, 10, include_deals=False)["recommendations"])


def _new_deal(engine, user, k=7):
    deals = engine.deals(user, k)["deals"]
    return next((d for d in deals if d["product_id"] == "new-lamp"), None)


def _user_with_new_deal(engine, dataset, tries=20):
    """The first of the most viewing users who gets a deal on a new product like their most viewed one
    (it competes with the catalogue's products on one deal type: a user with stronger deals keeps those)."""
    views = dataset.events[dataset.events["event_type"] == "view"]["user_id"].value_counts().index
    for user in views[:tries]:
        row = _like_most_viewed(dataset, user)
        engine.update_products(pd.DataFrame([row]))
        deal = _new_deal(engine, user)
        if deal is not None:
            return user, row, deal
    raise AssertionError(f"none of the {tries} most viewing users got a deal on a new product like their favourite")


def test_a_new_product_gets_a_deal_priced_by_the_same_rules(engine, small_dataset):
    user, row, deal = _user_with_new_deal(engine, small_dataset)
    assert "similar_to_viewed" in deal["deal_types"] and "high_affinity" not in deal["deal_types"]
    assert "personalized" not in deal["deal_types"]  # no behaviour score before the next batch
    assert deal["deal_reason"].startswith(NEW_PRODUCT_REASON)
    deals = engine.config.deals
    assert deal["original_price"] == row["price"]
    assert deals.min_discount - 1e-9 <= deal["discount_percentage"] / 100 <= deals.max_discount + 1e-9
    assert deal["deal_price"] >= row["cost"] * (1 + deals.min_margin) - 1e-9
    # the Stage 3 answer's deals come from the same candidates (num_deals None: those scoring >= min_score)
    assert engine.full(user, 10)["deals"] == engine.deals_many([user], None)[0]["deals"]
    # stock 0: no deal; back in stock, then a cost above price - margin: no deal either
    engine.update_products(pd.DataFrame([{"product_id": "new-lamp", "stock": 0}]))
    assert _new_deal(engine, user) is None
    engine.update_products(pd.DataFrame([{"product_id": "new-lamp", "stock": 3}]))
    assert _new_deal(engine, user) is not None
    engine.update_products(pd.DataFrame([{"product_id": "new-lamp", "cost": row["price"] * 0.99}]))
    assert _new_deal(engine, user) is None
    # unknown cost or stock: no deal (the floor and the stock cannot be checked)
    engine.update_products(pd.DataFrame([{**row, "cost": None, "stock": None}]))
    assert _new_deal(engine, user) is None


def test_new_product_rows_of_the_candidate_block(engine, small_dataset):
    from recsys.deals.new_products import extended_block, new_similarity

    user = _viewer(small_dataset)
    engine.update_products(pd.DataFrame([_like_most_viewed(small_dataset, user)]))
    live = engine._new_products
    deals = engine._user_deals
    builder, n = deals.builder, small_dataset.n_products
    seeds = builder.viewed_seeds([user], deals.similar_seed_items)
    similarity = builder.similarity_to_viewed([user], deals.similarity, deals.similar_seed_items)
    live_similarity = new_similarity(engine.content_, seeds, live.vectors)
    demand = engine._serving.stage2.demand
    block = extended_block(builder, [user], np.zeros((1, n)), demand, similarity, live, live_similarity)
    assert block.n_products == n + 1 and block.arrays["product_id"][-1] == "new-lamp"
    assert np.isnan(block.affinity[0, -1]) and block.behaviour_score[0, -1] == 0.0
    assert not block.purchased[0, -1] and block.arrays["sales"][-1] == 0.0
    assert block.arrays["demand_score"][-1] == NEW_PRODUCT_DEMAND
    # the same definition as a catalogue product's: max cosine with the seeds (the text copies the first seed)
    assert live_similarity[0, 0] == pytest.approx(
        float((engine.content_.item_vectors_[seeds[0]] @ live.vectors.T).toarray().max()))
    # the catalogue's rows are the catalogue block's
    plain = builder.build_block([user], np.zeros((1, n)), demand, similarity)
    assert np.array_equal(block.similarity_to_viewed[:, :n], plain.similarity_to_viewed)
    assert np.array_equal(block.behaviour_score[:, :n], plain.behaviour_score)


def test_new_product_values_are_checked(engine, small_dataset):
    row = _like_most_viewed(small_dataset, _viewer(small_dataset))
    catalogue = engine._catalogue.product_id[0]
    stock = engine._user_deals.builder._static["stock"][0]
    with pytest.raises(InvalidRequest, match="price"):  # nothing changes, the catalogue product neither
        engine.update_products(pd.DataFrame([{**row, "price": -3.0}, {"product_id": catalogue, "stock": stock + 1}]))
    assert engine.new_products() == [] and engine._user_deals.builder._static["stock"][0] == stock
    engine.update_products(pd.DataFrame([row]))
    with pytest.raises(InvalidRequest, match="stock"):
        engine.update_products(pd.DataFrame([{"product_id": "new-lamp", "stock": 1.5}]))
    assert engine._new_products.stock.tolist() == [7.0]


def test_without_new_products_answers_are_unchanged(engine, small_dataset):
    user = _viewer(small_dataset)
    before = (engine.full(user, 10, include_deals=False), engine.deals_many([user], 7, rate_limiter=None))
    engine.update_products(pd.DataFrame([_like_most_viewed(small_dataset, user, stock=0)]))
    engine.__dict__.pop("_new_products")
    assert (engine.full(user, 10, include_deals=False), engine.deals_many([user], 7, rate_limiter=None)) == before


def test_a_new_products_deal_reason_says_it_is_new(engine):
    from recsys.deals.generator import DealResult
    from recsys.deals.new_products import mark_new

    rules = engine._deal_generator.rules
    similar, seasonal = rules.reasons["similar_to_viewed"], rules.reasons["regional_seasonal"]
    columns = {"product_id": np.array(["new-a", "new-b", "product_1"], dtype=object),
               "similar_to_viewed": np.array([True, False, True]),
               "deal_reason": np.array([f"{similar}, {seasonal}", seasonal, similar], dtype=object)}
    result = DealResult("u", pd.Timestamp("2025-01-01"), "winter", columns, 3, 3, 3)
    marked = mark_new(result, np.array(["new-a", "new-b"], dtype=object), rules).deal_columns()["deal_reason"]
    assert marked.tolist() == [f"{NEW_PRODUCT_REASON}, {seasonal}", f"New product: {seasonal}", similar]
    assert columns["deal_reason"][0] == f"{similar}, {seasonal}"  # the result given is not changed
