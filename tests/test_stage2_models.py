"""Stage 2 collaborative models: PureSVD, Surprise SVD / KNNBasic, rating evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.data import Dataset
from recsys.evaluation.peers.surprise_models import (
    SurpriseKNN,
    SurpriseKNNConfig,
    SurpriseSVD,
    SurpriseSVDConfig,
    evaluate_rating_models,
    review_ratings,
    split_ratings,
)
from recsys.interactions import Interactions
from recsys.models.base import RECOMMENDATION_COLUMNS
from recsys.models.svd import PureSVD, SVDConfig


@pytest.fixture(scope="module")
def svd(small_dataset: Dataset) -> PureSVD:
    return PureSVD(SVDConfig(n_factors=20, weighting=None)).fit(small_dataset)


@pytest.fixture(scope="module")
def surprise_svd(small_dataset: Dataset) -> SurpriseSVD:
    return SurpriseSVD(SurpriseSVDConfig(n_factors=10, n_epochs=10)).fit(small_dataset)


def test_puresvd_factors_reconstruct_the_projection(svd: PureSVD, small_dataset: Dataset) -> None:
    R = Interactions.from_dataset(small_dataset).matrix
    V = svd.item_factors_
    assert V.shape == (small_dataset.n_products, 20)
    np.testing.assert_allclose(V.T @ V, np.eye(20), atol=1e-8)  # orthonormal columns
    assert np.all(np.diff(svd.singular_values_) <= 0)
    # score = r_u V V^T (Cremonesi et al.)
    rows = np.array([0, 5, 17])
    np.testing.assert_allclose(svd.score_users(rows), (R[rows] @ V) @ V.T, atol=1e-9)
    # the rank-k energy share equals sum(s^2) / ||R||_F^2
    assert svd.explained_energy_ == pytest.approx((svd.singular_values_**2).sum() / R.multiply(R).sum())
    np.testing.assert_allclose(svd.fold_in(R[rows]), svd.user_factors_[rows], atol=1e-9)


def test_puresvd_is_deterministic(small_dataset: Dataset, svd: PureSVD) -> None:
    again = PureSVD(SVDConfig(n_factors=20, weighting=None)).fit(small_dataset)
    np.testing.assert_array_equal(again.item_factors_, svd.item_factors_)


def test_puresvd_recommend_many_users_and_unknown(svd: PureSVD, small_dataset: Dataset) -> None:
    users = list(small_dataset.users["user_id"][:50]) + ["user_unknown_1"]
    recs = svd.recommend(users, n=5)
    assert list(recs.columns) == RECOMMENDATION_COLUMNS
    assert recs.groupby("user_id").size().eq(5).all() and recs["user_id"].nunique() == 51
    unknown = recs[recs["user_id"] == "user_unknown_1"]
    assert (unknown["reason"] == PureSVD.unknown_reason).all()
    # no purchased product is recommended
    purchased = small_dataset.events.query("event_type == 'purchase'")[["user_id", "product_id"]]
    assert recs.merge(purchased, on=["user_id", "product_id"]).empty


def test_puresvd_affinity_matches_scores(svd: PureSVD, small_dataset: Dataset) -> None:
    users = ["user_0", "user_3", "nobody"]
    products = list(small_dataset.products["product_id"][:7])
    aff = svd.affinity(users, products)
    assert aff.shape == (3, 7) and list(aff.columns) == products
    scores = svd.score_users(svd.interactions_.user_index(users))
    np.testing.assert_allclose(aff.to_numpy(), scores[:, :7], atol=1e-10)
    assert svd.affinity("user_0").shape == (1, small_dataset.n_products)


def test_puresvd_bad_input(svd: PureSVD, small_dataset: Dataset) -> None:
    with pytest.raises(ValueError, match="n_factors=500 must be < min"):
        PureSVD(SVDConfig(n_factors=500)).fit(small_dataset)
    with pytest.raises(ValueError, match="positive int"):
        SVDConfig(n_factors=0)
    with pytest.raises(ValueError, match="unknown product"):
        svd.affinity(["user_0"], ["product_nope"])
    with pytest.raises(ValueError, match="malformed user id"):
        svd.recommend(["user 0"])
    with pytest.raises(ValueError, match="n must be a positive int"):
        svd.recommend(["user_0"], n=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        PureSVD().score_users(np.array([0]))


def test_surprise_svd_scores_equal_surprise_estimates(surprise_svd: SurpriseSVD, small_dataset: Dataset) -> None:
    algo = surprise_svd.algorithm_
    rated_user = review_ratings(small_dataset)["user_id"].iloc[0]
    users = [rated_user, "user_1", "never_seen"]
    rows = surprise_svd.interactions_.user_index(users)
    scores = surprise_svd.score_users(rows)
    products = small_dataset.products["product_id"]
    for r, user in enumerate(users):
        for c in (0, 3, 40, 149):
            assert scores[r, c] == pytest.approx(algo.predict(user, products[c], clip=False).est, abs=1e-9)


def test_surprise_knn_scores_equal_surprise_estimates(small_dataset: Dataset) -> None:
    products = small_dataset.products["product_id"]
    for user_based in (False, True):
        model = SurpriseKNN(SurpriseKNNConfig(k=5, user_based=user_based)).fit(small_dataset)
        users = list(dict.fromkeys([*review_ratings(small_dataset)["user_id"].unique()[:6], "user_2", "never_seen"]))
        scores = model.score_users(model.interactions_.user_index(users))
        expected = np.array([[model.algorithm_.predict(u, p, clip=False).est for p in products] for u in users])
        np.testing.assert_allclose(scores, expected, atol=1e-9)
        recs = model.recommend(users, n=3)
        assert recs.groupby("user_id").size().eq(3).all()


def test_surprise_knn_refuses_a_huge_dense_matrix(small_dataset: Dataset) -> None:
    with pytest.raises(ValueError, match="dense .* similarity matrix"):
        SurpriseKNN(SurpriseKNNConfig(max_items=3)).fit(small_dataset)


def test_rating_models_without_reviews_raise(small_dataset: Dataset) -> None:
    no_reviews = small_dataset.restrict_events(small_dataset.events["event_type"] != "review")
    with pytest.raises(ValueError, match="no review ratings"):
        SurpriseSVD().fit(no_reviews)


def test_split_ratings(small_dataset: Dataset) -> None:
    ratings = review_ratings(small_dataset)
    train, test = split_ratings(ratings, 0.25, "temporal")
    assert len(train) + len(test) == len(ratings)
    assert test["timestamp"].min() >= train["timestamp"].max()
    train_r, test_r = split_ratings(ratings, 0.25, "random", random_state=3)
    again = split_ratings(ratings, 0.25, "random", random_state=3)[1]
    pd.testing.assert_frame_equal(test_r, again)
    with pytest.raises(ValueError, match="test_fraction"):
        split_ratings(ratings, 1.5)
    with pytest.raises(ValueError, match="method"):
        split_ratings(ratings, 0.2, "sideways")  # type: ignore[arg-type]


def test_review_ratings_keeps_latest_duplicate(small_dataset: Dataset) -> None:
    events = small_dataset.events
    review = events[events["event_type"] == "review"].iloc[[0]].copy()
    later = review.copy()
    later["timestamp"] = small_dataset.as_of
    later["rating"] = 1.0 if review["rating"].iloc[0] != 1.0 else 5.0
    doubled = Dataset(small_dataset.users, small_dataset.products, pd.concat([events, later], ignore_index=True),
                      small_dataset.as_of)
    ratings = review_ratings(doubled)
    assert ratings.attrs["dropped_duplicates"] == review_ratings(small_dataset).attrs["dropped_duplicates"] + 1
    pair = ratings[(ratings["user_id"] == review["user_id"].iloc[0])
                   & (ratings["product_id"] == review["product_id"].iloc[0])]
    assert pair["rating"].tolist() == [later["rating"].iloc[0]]


def test_evaluate_rating_models_table(ci_dataset: Dataset) -> None:
    table = evaluate_rating_models(ci_dataset, svd_config=SurpriseSVDConfig(n_factors=20, n_epochs=10))
    assert list(table["model"]) == ["GlobalMean", "BaselineOnly", "NormalPredictor", "SVD", "KNNBasic"]
    assert table[["rmse", "mae"]].gt(0).all().all()
    assert (table["rmse"] >= table["mae"]).all()
    again = evaluate_rating_models(ci_dataset, svd_config=SurpriseSVDConfig(n_factors=20, n_epochs=10))
    pd.testing.assert_frame_equal(table, again)  # NormalPredictor seeded too
