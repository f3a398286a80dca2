"""RP3beta (recsys.models.rp3beta): the formula against a dense reference, truncation, errors, served in the slot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.config import ConfigError
from recsys.interactions import Interactions, model_matrix
from recsys.models.rp3beta import RP3beta, RP3betaConfig


def _dense_reference(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    p_ui = x / np.where(x.sum(1, keepdims=True) > 0, x.sum(1, keepdims=True), 1)
    p_iu = x.T / np.where(x.T.sum(1, keepdims=True) > 0, x.T.sum(1, keepdims=True), 1)
    pop = (x > 0).sum(0).astype(float)
    w = (p_iu ** alpha) @ (p_ui ** alpha) / np.where(pop > 0, pop ** beta, np.inf)[None, :]
    np.fill_diagonal(w, 0.0)
    return w


@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 0.5), (0.7, 0.0), (1.3, 0.9)])
def test_weights_match_the_dense_formula(small_dataset, alpha, beta) -> None:
    config = RP3betaConfig(alpha=alpha, beta=beta, k=10_000, block=37)  # all neighbours kept, odd block size
    model = RP3beta(config).fit(small_dataset)
    x = model_matrix(small_dataset, model.interactions_, config.weighting).toarray()
    np.testing.assert_allclose(model.weights_.toarray(), _dense_reference(x, alpha, beta), rtol=1e-5, atol=1e-9)
    rows = np.array([0, 5, -1])
    scores = model.score_users(rows)
    expected = np.vstack([x[[0, 5]], x.mean(0, keepdims=True)]) @ model.weights_.toarray()
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-9)


def test_only_the_k_largest_weights_per_item_are_kept(small_dataset) -> None:
    full = RP3beta(RP3betaConfig(k=10_000)).fit(small_dataset).weights_.toarray()
    kept = RP3beta(RP3betaConfig(k=5, block=64)).fit(small_dataset).weights_
    assert (np.diff(kept.indptr) <= 5).all()
    dense = kept.toarray()
    for i in range(0, dense.shape[0], 17):
        if dense[i].any():
            assert dense[i][dense[i] > 0].min() >= np.sort(full[i])[-5] - 1e-7


def test_recommendations_follow_the_contract(small_dataset) -> None:
    inter = Interactions.from_dataset(small_dataset)
    users = list(inter.user_ids[:20]) + ["u_unknown_user"]
    recs = RP3beta().fit(small_dataset, inter).recommend(users, n=10)
    assert recs.groupby("user_id").size().max() == 10 and set(recs["user_id"]) == set(users)
    bought = small_dataset.events.query("event_type == 'purchase'")[["user_id", "product_id"]]
    assert recs.merge(bought, on=["user_id", "product_id"]).empty


@pytest.mark.parametrize(("field", "value", "match"), [("alpha", 0.0, "alpha"), ("beta", -0.1, "beta"),
                                                       ("k", 0, "k must"), ("block", True, "block")])
def test_bad_settings_are_refused_by_name(field, value, match) -> None:
    with pytest.raises(ConfigError, match=match):
        RP3betaConfig(**{field: value})


def test_unfitted_model_says_so() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        RP3beta().score_users(np.array([0]))


def test_the_engine_serves_rp3beta_in_the_collaborative_slot_and_reloads_it(small_dataset, tmp_path) -> None:
    from recsys.serving.engine import RecommendationEngine
    from recsys.serving.engine_config import EngineConfig

    with pytest.raises(ConfigError, match="ease or rp3beta"):
        from recsys.models.ease import EASEConfig

        EngineConfig(ease=EASEConfig(), rp3beta=RP3betaConfig())
    engine = RecommendationEngine(engine_config=EngineConfig(rp3beta=RP3betaConfig(k=50)))
    info = engine.train(small_dataset)
    assert info["models"]["collaborative"]["model"] == "rp3beta"
    assert isinstance(engine.hybrid_.components_["svd"], RP3beta)
    loaded = RecommendationEngine.load(engine.save(tmp_path / "model"))
    assert loaded.engine_config.rp3beta == RP3betaConfig(k=50)
    users = [str(u) for u in small_dataset.users["user_id"].iloc[:15]]
    pd.testing.assert_frame_equal(engine.recommend(users, 10), loaded.recommend(users, 10))
