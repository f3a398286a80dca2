"""Per-model inputs (recsys.interactions.Weighting), k-NN self similarity, EASE and the implicit peers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys.config import ConfigError
from recsys.data import Dataset
from recsys.evaluation.peers.implicit_peers import ImplicitALS, ImplicitBPR, ImplicitConfig, ImplicitItemKNN
from recsys.interactions import Interactions, Weighting, weighted_matrix
from recsys.models.ease import EASE, EASEConfig
from recsys.models.knn import ItemKNN, KNNConfig


def _tiny() -> Dataset:
    """Two users, three products; user_a bought product_1 twice (ages 0 and 30 days) and viewed product_2."""
    from recsys.data import generate

    base = generate(n_users=20, n_products=10, days=30, seed=3)
    as_of = base.as_of
    events = pd.DataFrame({
        "user_id": ["user_0", "user_0", "user_0", "user_1"],
        "product_id": ["product_1", "product_1", "product_2", "product_1"],
        "event_type": ["purchase", "purchase", "view", "purchase"],
        "timestamp": [as_of, as_of - pd.Timedelta(days=30), as_of, as_of],
    })
    full = base.events.iloc[:4].copy().reset_index(drop=True)
    for column in events:
        full[column] = events[column].to_numpy()
    full["rating"] = np.nan
    full["quantity"] = 1
    if "value" in full:
        full["value"] = 10.0
    return Dataset(base.users, base.products, full, as_of, base.personas, {}, base.config)


def test_weighting_repeats_and_decay() -> None:
    ds = _tiny()
    inter = Interactions.from_dataset(ds)
    u, p1, p2 = inter.user_index(["user_0"])[0], *inter.product_index(["product_1", "product_2"])
    purchase, view = ds.config.interactions.purchase, ds.config.interactions.view

    def cell(w: Weighting, col: int) -> float:
        return weighted_matrix(ds, w, inter.user_ids, inter.product_ids)[u, col]

    assert cell(Weighting(None, "raw"), p1) == pytest.approx(2 * purchase)           # no decay, summed
    assert cell(Weighting(30.0, "raw"), p1) == pytest.approx(1.5 * purchase)         # 1 + 0.5
    assert cell(Weighting(30.0, "binary"), p1) == pytest.approx(purchase)            # the strongest event once
    assert cell(Weighting(30.0, "log"), p1) == pytest.approx(np.log1p(1.5 * purchase))
    assert cell(Weighting(None, "binary"), p2) == pytest.approx(view)


def test_tfidf_scheme_is_implicits_weighting() -> None:
    from implicit.nearest_neighbours import tfidf_weight

    ds = _tiny()
    inter = Interactions.from_dataset(ds)
    plain = weighted_matrix(ds, Weighting(None, "binary"), inter.user_ids, inter.product_ids)
    got = weighted_matrix(ds, Weighting(None, "binary", "tfidf"), inter.user_ids, inter.product_ids)
    expected = sp.csr_matrix(tfidf_weight(plain.T.tocoo()).T)
    np.testing.assert_allclose(got.toarray(), expected.toarray())


@pytest.mark.parametrize("bad", [{"half_life_days": 0}, {"repeats": "squared"}, {"scheme": "okapi"},
                                 {"bm25_b": 2.0}])
def test_weighting_rejects_bad_values(bad) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        Weighting(**bad)


def test_knn_learns_and_scores_from_its_own_weighting(small_dataset) -> None:
    w = Weighting(None, "binary")
    model = ItemKNN(KNNConfig(train_weighting=w, profile_weighting=w, self_similarity=0.0)).fit(small_dataset)
    inter = model.interactions_
    x = weighted_matrix(small_dataset, w, inter.user_ids, inter.product_ids)
    reference = ItemKNN(KNNConfig.plain())
    reference.fit(small_dataset, Interactions(x, inter.purchased, inter.user_ids, inter.product_ids, inter.weights))
    assert (model.similarity_ != reference.similarity_).nnz == 0
    rows = np.arange(10)
    np.testing.assert_allclose(model.score_users(rows), reference.score_users(rows))


def test_self_similarity_adds_the_own_profile(small_dataset) -> None:
    without = ItemKNN(KNNConfig(self_similarity=0.0)).fit(small_dataset)
    with_self = ItemKNN(KNNConfig(self_similarity=1.0)).fit(small_dataset)
    rows = np.arange(10)
    profile = without._profiles()[rows].toarray()
    np.testing.assert_allclose(with_self.score_users(rows), without.score_users(rows) + profile, rtol=1e-5, atol=1e-6)
    product = str(with_self.interactions_.product_ids[0])
    assert product not in set(with_self.neighbours(product)["neighbour_id"])


def test_ease_is_the_closed_form(small_dataset) -> None:
    model = EASE(EASEConfig(l2=50.0)).fit(small_dataset)
    x = model.profiles_.toarray()
    gram = x.T @ x + 50.0 * np.eye(x.shape[1])
    p = np.linalg.inv(gram)
    expected = np.eye(x.shape[1]) - p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    assert model.weights_.dtype == np.float32  # solved in float64, kept in float32 (half the memory)
    np.testing.assert_allclose(model.weights_, expected, atol=1e-6)
    assert np.all(np.diag(model.weights_) == 0)
    np.testing.assert_allclose(model.score_users(np.array([0, 3])), x[[0, 3]] @ expected, atol=1e-5)
    with pytest.raises(ValueError, match="max_items"):
        EASE(EASEConfig(max_items=10)).fit(small_dataset)


def test_implicit_peers_score_as_implicit_does_and_are_deterministic(small_dataset) -> None:
    for cls in (ImplicitItemKNN, ImplicitALS):
        model = cls().fit(small_dataset)
        for user in (0, 7):
            ids, scores = model.model_.recommend(user, model.user_items_[user], N=10, filter_already_liked_items=False)
            np.testing.assert_allclose(model.score_users(np.array([user]))[0][ids], scores, rtol=1e-4, atol=1e-5)
    a = ImplicitBPR(ImplicitConfig(iterations=5)).fit(small_dataset).score_users(np.arange(5))
    b = ImplicitBPR(ImplicitConfig(iterations=5)).fit(small_dataset).score_users(np.arange(5))
    np.testing.assert_array_equal(a, b)
    frame = ImplicitALS().fit(small_dataset).recommend(["user_0", "nobody"], n=5)
    assert frame.groupby("user_id").size().to_dict() == {"nobody": 5, "user_0": 5}
