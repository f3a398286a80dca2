"""Learned fusion (recsys.models.learned_fusion): trained on validation only, reproducible, rules kept."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.config import ConfigError
from recsys.evaluation.split import temporal_split
from recsys.models.hybrid import HybridRecommender
from recsys.models.learned_fusion import FEATURES, LearnedFusion, LearnedFusionConfig, train_ranker
from recsys.research.tuning import fit_hybrid_components

QUICK = LearnedFusionConfig(n_estimators=20, validation_days=14, max_users=300)


@pytest.fixture(scope="module")
def trained(small_dataset):
    split = temporal_split(small_dataset, 14)
    fit = train_ranker(split.train, lambda ds: fit_hybrid_components(ds), small_dataset.config.fusion, config=QUICK)
    parts = fit_hybrid_components(split.train)
    return split, fit, parts


def test_the_ranker_learns_from_the_validation_window_only(trained) -> None:
    split, fit, _ = trained
    assert np.datetime64(fit.cut) < np.datetime64(split.cut)  # the validation window ends at the test cut
    assert fit.queries > 0 and fit.rows > fit.queries and 0 < fit.candidate_recall <= 1


def test_training_is_reproducible(trained, small_dataset) -> None:
    split, fit, _ = trained
    again = train_ranker(split.train, lambda ds: fit_hybrid_components(ds), small_dataset.config.fusion, config=QUICK)
    assert again.model == fit.model


def test_learned_fusion_keeps_the_hybrids_rules_and_contract(trained, small_dataset) -> None:
    split, fit, parts = trained
    fusion = LearnedFusion.from_fitted(parts, small_dataset.config.fusion, model=fit.model)
    users = list(split.warm_users[:40])
    recs = fusion.recommend(users, n=10)
    contrib = recs[[c for c in recs.columns if c.startswith("contrib_")]].sum(axis=1)
    np.testing.assert_allclose(contrib, recs["score"], atol=1e-9)
    assert recs["score"].between(0, 1).all() and recs.groupby("user_id")["rank"].apply(list).map(
        lambda r: r == list(range(1, len(r) + 1))).all()
    bought = split.train.events.query("event_type == 'purchase'")[["user_id", "product_id"]]
    assert recs.merge(bought, on=["user_id", "product_id"]).empty  # purchased products excluded
    weighted = HybridRecommender.from_fitted(parts, small_dataset.config.fusion)
    rows = fusion.interactions_.user_index(users)
    assert set(fusion.fuse_rows(rows, 10).col) <= set(np.flatnonzero(np.isfinite(weighted.score_users(rows)).any(0)))
    assert set(fusion.describe()["gain_by_feature"]) == set(FEATURES)


def test_bad_models_are_refused(trained, small_dataset) -> None:
    _, _, parts = trained
    with pytest.raises(ConfigError, match="LightGBM text model"):
        LearnedFusion("not a model")
    features_only = LearnedFusion.from_fitted(parts, small_dataset.config.fusion, model=None)
    with pytest.raises(RuntimeError, match="no trained model"):
        features_only.recommend([str(small_dataset.users["user_id"].iloc[0])], n=5)
    with pytest.raises(ConfigError, match="learning_rate"):
        LearnedFusionConfig(learning_rate=0.0)


def test_slot_shares_sum_to_one(trained, small_dataset) -> None:
    from recsys.research.fusion_study import slot_shares

    split, _, parts = trained
    shares = slot_shares(HybridRecommender.from_fitted(parts, small_dataset.config.fusion), list(split.warm_users[:50]))
    assert shares.sum() == pytest.approx(1.0) and (shares >= 0).all()


def test_the_engine_serves_the_learned_fusion_and_reloads_it(small_dataset, tmp_path) -> None:
    import dataclasses

    import pandas as pd

    from recsys.research.tuning import TuningConfig, tune_configs
    from recsys.serving.engine import RecommendationEngine
    from recsys.serving.engine_config import EngineConfig

    quick = TuningConfig(n_trials=2, validation_days=14, max_users=200)
    result = tune_configs(small_dataset, EngineConfig(), small_dataset.config.fusion, quick)
    choice = result.fusion_choice
    assert choice["chosen"] in ("design", "tuned", "learned") and {"design", "learned"} <= set(choice)
    assert pd.Timestamp(choice["ranker_cut"]) < pd.Timestamp(choice["validation_cut"])  # nested windows
    result.learned_fusion = dataclasses.replace(QUICK, validation_days=14.0)  # serve it whatever won
    engine = RecommendationEngine()
    engine.apply_tuning(result)
    info = engine.train(small_dataset)
    assert isinstance(engine.hybrid_, LearnedFusion)
    assert info["models"]["hybrid"]["fusion"].startswith("learned") and info["tuning"]["fusion_choice"] == choice
    user = str(small_dataset.users["user_id"].iloc[3])
    assert len(engine.full(user, 5)["recommendations"]) == 5
    loaded = RecommendationEngine.load(engine.save(tmp_path / "model"))
    assert isinstance(loaded.hybrid_, LearnedFusion)
    pd.testing.assert_frame_equal(engine.recommend([user], 10), loaded.recommend([user], 10))


def _no_training(*args, **kwargs):
    raise AssertionError("lightgbm trained a model while an engine was loaded")


def test_a_loaded_engine_serves_the_saved_ranker_without_training(small_dataset, tmp_path, monkeypatch) -> None:
    import json

    import lightgbm
    import pandas as pd

    from recsys.research.tuning import TuningConfig, tune_configs
    from recsys.serving.engine import RecommendationEngine
    from recsys.serving.engine_config import EngineConfig

    result = tune_configs(small_dataset, EngineConfig(), small_dataset.config.fusion,
                          TuningConfig(n_trials=1, validation_days=14, max_users=200, learned_fusion=False))
    result.learned_fusion = QUICK
    engine = RecommendationEngine()
    engine.apply_tuning(result)
    engine.train(small_dataset)
    root = engine.save(tmp_path / "model")
    save = root / (root / "CURRENT").read_text().strip()
    assert (save / "fusion" / "ranker.txt").read_text() == engine.ranker_  # the booster's text, as trained
    assert "fusion/ranker.txt" in json.loads((save / "manifest.json").read_text())["files"]
    for module in (lightgbm, lightgbm.engine, lightgbm.sklearn):
        monkeypatch.setattr(module, "train", _no_training)
    loaded = RecommendationEngine.load(root)
    assert isinstance(loaded.hybrid_, LearnedFusion) and loaded.ranker_ == engine.ranker_
    users = [str(u) for u in small_dataset.users["user_id"].iloc[:25]]
    pd.testing.assert_frame_equal(engine.recommend(users, 10), loaded.recommend(users, 10))


def test_a_stray_saved_ranker_without_a_learned_fusion_is_refused(small_dataset) -> None:
    from recsys.serving.engine_config import EngineConfig
    from recsys.serving.engine_tuning import fit_served_extras

    with pytest.raises(ValueError, match="no learned_fusion"):
        fit_served_extras(small_dataset, None, EngineConfig(), small_dataset.config.fusion, ranker="tree\n")
