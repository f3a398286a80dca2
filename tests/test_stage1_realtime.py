"""Stage 1 real-time recommender: k-NN with demographic fallback, live events."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from stage1_helpers import assert_valid_top_n, purchased_pairs

from recsys.config import ConfigError
from recsys.models.demographic import REASONS
from recsys.models.knn import ItemKNN
from recsys.models.realtime import FALLBACK_METHOD, REALTIME_COLUMNS, RealtimeConfig, RealtimeRecommender


@pytest.fixture(scope="module")
def fitted(small_dataset) -> RealtimeRecommender:
    """A fitted model that tests must not change (they use :func:`fresh` to mutate)."""
    return RealtimeRecommender().fit(small_dataset)


@pytest.fixture()
def fresh(small_dataset) -> RealtimeRecommender:
    return RealtimeRecommender().fit(small_dataset)


def views(user: str, products: list[str], event_type: str = "view") -> pd.DataFrame:
    return pd.DataFrame({"user_id": user, "product_id": products, "event_type": event_type,
                         "timestamp": pd.Timestamp("2025-01-02 10:00")})


def history_less(dataset) -> list[str]:
    active = set(dataset.events["user_id"])
    return [u for u in dataset.users["user_id"] if u not in active]


def test_valid_frames_and_methods_for_all_users(fitted, small_dataset) -> None:
    users = list(small_dataset.users["user_id"]) + ["visitor_1", "visitor_2"]
    frame = fitted.recommend(users, n=10)
    assert list(frame.columns) == REALTIME_COLUMNS
    assert_valid_top_n(frame, users, 10, small_dataset.n_products, purchased_pairs(small_dataset))
    method = frame.groupby("user_id", sort=False)["method"].first()
    lazy = set(history_less(small_dataset)) | {"visitor_1", "visitor_2"}
    assert (method[list(lazy)] == FALLBACK_METHOD).all()
    assert (method.drop(list(lazy)) == "item_knn").all()
    knn_rows = frame[frame["method"] == "item_knn"]
    assert (knn_rows["reason"] == ItemKNN.reason).all()
    assert frame.loc[frame["method"] == FALLBACK_METHOD, "reason"].isin(REASONS).all()
    pd.testing.assert_frame_equal(frame, fitted.recommend(users, n=10))


def test_knn_rows_come_first_and_scores_fall_within_a_method(fitted, small_dataset) -> None:
    frame = fitted.recommend(list(small_dataset.users["user_id"]), n=40)
    for _, block in frame.groupby("user_id", sort=False):
        methods = block["method"].tolist()
        assert methods == sorted(methods, key=lambda m: m == FALLBACK_METHOD)
        for _, part in block.groupby("method"):
            assert part["score"].is_monotonic_decreasing


def test_knn_scores_are_the_item_knn_scores(fitted, small_dataset) -> None:
    knn = ItemKNN().fit(small_dataset)
    user = small_dataset.events["user_id"].iloc[0]
    got = fitted.recommend_one(user, n=10)
    expected = knn.recommend([user], n=10)
    assert (got["method"] == "item_knn").all()
    pd.testing.assert_frame_equal(got[expected.columns], expected)


def test_unknown_user_is_not_an_error_and_takes_the_fallback(fitted) -> None:
    frame = fitted.recommend_one("someone_new", n=5)
    assert (frame["method"] == FALLBACK_METHOD).all() and len(frame) == 5
    assert fitted.method_of(["someone_new"]).tolist() == [FALLBACK_METHOD]
    expected = fitted.fallback_.recommend_for_profile(n=5)
    assert frame["product_id"].tolist() == expected["product_id"].tolist()


def test_recommend_one_equals_batch(fitted, small_dataset) -> None:
    users = list(small_dataset.users["user_id"][::5]) + ["visitor_9"]
    for n, exclude in ((10, True), (3, False), (200, True)):
        batch = fitted.recommend(users, n=n, exclude_purchased=exclude)
        singles = pd.concat([fitted.recommend_one(u, n, exclude) for u in users], ignore_index=True)
        pd.testing.assert_frame_equal(batch, singles)


def test_add_events_takes_effect_without_refit(fresh, small_dataset) -> None:
    user = small_dataset.events["user_id"].iloc[0]
    similarity = fresh.knn_.similarity_.copy()
    before = fresh.recommend_one(user, n=10)
    products = ["product_3", "product_4", "product_5"]
    update = fresh.add_events(views(user, products))
    assert (update.events, update.users_updated, update.new_users) == (3, 1, ())
    after = fresh.recommend_one(user, n=10)
    assert not before.equals(after)
    assert (fresh.knn_.similarity_ != similarity).nnz == 0  # no refit
    # the new scores are x_u' @ W with x_u' = old profile row (the k-NN's profile weighting) + three full-weight views
    interactions = fresh.interactions_
    row = interactions.user_index([user])[0]
    x = fresh.knn_.profile_interactions().matrix[row].toarray().ravel()
    x[interactions.product_index(products)] += small_dataset.config.interactions.view
    scores = x.astype(np.float32) @ similarity.toarray()
    scores[interactions.purchased[row].toarray().ravel()] = 0
    expected = np.argsort(-scores, kind="stable")[:10]
    assert after["product_id"].tolist() == list(interactions.product_ids[expected])
    np.testing.assert_allclose(after["score"], scores[expected], rtol=1e-5)


def test_new_user_leaves_the_fallback_after_first_views(fresh, small_dataset) -> None:
    user = "brand_new_user"
    assert fresh.method_of([user]).tolist() == [FALLBACK_METHOD]
    products = ["product_10", "product_11", "product_12"]
    update = fresh.add_events(views(user, products))
    assert update.new_users == (user,)
    frame = fresh.recommend_one(user, n=10)
    knn = frame[frame["method"] == "item_knn"]
    assert len(knn) > 0 and frame["method"].iloc[0] == "item_knn"
    # every k-NN product is a neighbour of a viewed product
    sim = fresh.knn_.similarity_
    cols = fresh.interactions_.product_index(products)
    neighbours = set(fresh.interactions_.product_ids[np.unique(sim[cols].indices)])
    assert set(knn["product_id"]) <= neighbours
    assert fresh.method_of([user]).tolist() == ["item_knn"]


def test_history_less_data_set_user_leaves_the_fallback(fresh, small_dataset) -> None:
    user = history_less(small_dataset)[0]
    assert fresh.recommend_one(user, n=3)["method"].eq(FALLBACK_METHOD).all()
    fresh.add_events(views(user, ["product_20"]))
    assert fresh.recommend_one(user, n=3)["method"].iloc[0] == "item_knn"


def test_new_user_demographics_pick_the_segment(fresh) -> None:
    users = pd.DataFrame({"user_id": ["tourist"], "region": ["Asia"], "age": [22], "spending_tier": ["budget"]})
    fresh.register_users(users)
    frame = fresh.recommend_one("tourist", n=8)
    expected = fresh.fallback_.recommend_for_profile(region="Asia", age=22, spending_tier="budget", n=8)
    assert frame["product_id"].tolist() == expected["product_id"].tolist()
    assert frame["reason"].tolist() == expected["reason"].tolist()
    with pytest.raises(ValueError, match="in the fitted data set"):
        fresh.register_users(pd.DataFrame({"user_id": ["user_0"], "region": ["EU"]}))
    with pytest.raises(ValueError, match="unknown region"):
        fresh.register_users(pd.DataFrame({"user_id": ["alien"], "region": ["Mars"]}))


def test_purchase_event_is_excluded_next_time(fresh, small_dataset) -> None:
    user = small_dataset.events["user_id"].iloc[0]
    top = fresh.recommend_one(user, n=1)["product_id"].iloc[0]
    fresh.add_events(views(user, [top], event_type="purchase"))
    assert top not in set(fresh.recommend_one(user, n=10)["product_id"])
    assert top in set(fresh.recommend_one(user, n=small_dataset.n_products, exclude_purchased=False)["product_id"])


def test_compaction_does_not_change_answers(small_dataset) -> None:
    plain = RealtimeRecommender().fit(small_dataset)
    compacting = RealtimeRecommender(RealtimeConfig(compact_threshold=1)).fit(small_dataset)
    for i, user in enumerate(["user_1", "newcomer_a", "user_2", "newcomer_b"]):
        batch = views(user, [f"product_{i}", f"product_{i + 40}"])
        plain.add_events(batch)
        compacting.add_events(batch)
    assert compacting.history_.n_overlay <= 1 and plain.history_.n_overlay == 4
    users = ["user_1", "user_2", "newcomer_a", "newcomer_b", "user_3"]
    pd.testing.assert_frame_equal(plain.recommend(users, n=10), compacting.recommend(users, n=10))


def test_user_based_option(small_dataset) -> None:
    model = RealtimeRecommender(RealtimeConfig(neighbours="user")).fit(small_dataset)
    frame = model.recommend(["user_0", "visitor"], n=5)
    assert set(frame["method"]) <= {"user_knn", FALLBACK_METHOD}
    assert (frame.loc[frame["method"] == "user_knn", "reason"] == "Similar users also liked this").all()
    model.add_events(views("visitor", ["product_1", "product_2"]))
    assert model.recommend_one("visitor", n=5)["method"].iloc[0] == "user_knn"


def test_threads_do_not_change_the_output(small_dataset) -> None:
    users = list(small_dataset.users["user_id"]) + ["visitor"]
    one = RealtimeRecommender().fit(small_dataset)
    two = RealtimeRecommender(RealtimeConfig(n_jobs=2)).fit(small_dataset)
    one.chunk_size = two.chunk_size = 32
    pd.testing.assert_frame_equal(one.recommend(users, n=10), two.recommend(users, n=10))


def test_min_history_and_no_backfill(small_dataset) -> None:
    strict = RealtimeRecommender(RealtimeConfig(min_history=10_000)).fit(small_dataset)
    assert strict.recommend(["user_0"], n=5)["method"].eq(FALLBACK_METHOD).all()
    bare = RealtimeRecommender(RealtimeConfig(backfill=False)).fit(small_dataset)
    frame = bare.recommend(list(small_dataset.users["user_id"]), n=small_dataset.n_products)
    knn_users = frame.loc[frame["method"] == "item_knn", "user_id"].unique()
    assert not frame[frame["user_id"].isin(knn_users)]["method"].eq(FALLBACK_METHOD).any()


def test_score_users_for_fusion(fitted, small_dataset) -> None:
    rows = np.array([0, 1, -1])
    scores = fitted.score_users(rows)
    assert scores.shape == (3, small_dataset.n_products)
    np.testing.assert_array_equal(scores[2], fitted.fallback_.segment_scores_[0])


# -- bad input ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad_n", [0, -1, 1.5, False, "5"])
def test_bad_n(fitted, bad_n) -> None:
    with pytest.raises(ValueError, match="n must be a positive int"):
        fitted.recommend(["user_0"], n=bad_n)
    with pytest.raises(ValueError, match="n must be a positive int"):
        fitted.recommend_one("user_0", n=bad_n)


@pytest.mark.parametrize("bad_id", ["", "has space", 42, None])
def test_malformed_user_ids(fitted, bad_id) -> None:
    with pytest.raises(ValueError):
        fitted.recommend_one(bad_id)
    with pytest.raises(ValueError, match="malformed user id"):
        fitted.recommend([bad_id])


@pytest.mark.parametrize(
    ("events", "message"),
    [
        (views("u", ["no_such_product"]), "not in the fitted catalogue"),
        (views("u", ["product_1"], event_type="click"), "unknown type"),
        (views("u", ["product_1"]).drop(columns="timestamp"), "missing column"),
        (views("u", ["product_1"]).assign(timestamp="not a date"), "timestamp"),
        (views("u", ["product_1"], event_type="review"), "rating in 1..5"),
        (views("bad id", ["product_1"]), "malformed user id"),
        ("not a frame", "must be a pandas DataFrame"),
    ],
)
def test_bad_events_are_rejected_and_change_nothing(fresh, events, message) -> None:
    before = fresh.recommend(["u", "user_0"], n=5)
    with pytest.raises(ValueError, match=message):
        fresh.add_events(events)
    pd.testing.assert_frame_equal(before, fresh.recommend(["u", "user_0"], n=5))
    assert fresh.history_.n_overlay == 0


def test_bad_events_do_not_register_their_users(fresh) -> None:
    users = pd.DataFrame({"user_id": ["tourist"], "region": ["Asia"]})
    with pytest.raises(ValueError, match="not in the fitted catalogue"):
        fresh.add_events(views("tourist", ["no_such_product"]), users=users)
    assert fresh.new_user_segment_ == {}
    fresh.add_events(views("tourist", ["product_1"]), users=users)
    assert "tourist" in fresh.new_user_segment_


def test_not_fitted_and_bad_config() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        RealtimeRecommender().recommend_one("user_0")
    with pytest.raises(ConfigError, match="neighbours"):
        RealtimeConfig(neighbours="both")
    with pytest.raises(ConfigError, match="min_history"):
        RealtimeConfig(min_history=0)


def test_ci_profile_all_users(ci_dataset) -> None:
    model = RealtimeRecommender().fit(ci_dataset)
    users = list(ci_dataset.users["user_id"])
    frame = model.recommend(users, n=10)
    assert_valid_top_n(frame, users, 10, ci_dataset.n_products, purchased_pairs(ci_dataset))
