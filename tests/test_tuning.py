"""Tuning on validation (recsys.research.tuning): never reads past the training cut; recorded in model_info; TOML out."""

from __future__ import annotations

import dataclasses
import tomllib

import pandas as pd
import pytest

from recsys.config import FusionWeights
from recsys.evaluation.split import temporal_split
from recsys.models.base import Recommender
from recsys.models.knn import KNNConfig
from recsys.models.svd import SVDConfig
from recsys.research.tuning import TuningConfig, apply_params, start_params, tune
from recsys.serving.engine import RecommendationEngine

QUICK = TuningConfig(budget_seconds=60, n_trials=3, validation_days=14, max_users=200)


def test_train_with_tune_never_reads_the_test_window(small_dataset, monkeypatch) -> None:
    split = temporal_split(small_dataset, 14)
    seen: list[pd.Timestamp] = []
    original = Recommender.fit

    def spy(self, dataset, interactions=None):  # records the last event time of every data set fitted on
        seen.append(dataset.events["timestamp"].max())
        return original(self, dataset, interactions)

    monkeypatch.setattr(Recommender, "fit", spy)
    engine = RecommendationEngine()
    info = engine.train(split.train, tune=True, tuning=QUICK)
    assert seen and max(seen) < split.cut  # nothing from the test window, during tuning or training
    tuning = info["tuning"]
    assert tuning["n_trials"] == 3 and len(tuning["trials"]) == 3
    assert pd.Timestamp(tuning["validation"]["end"]) <= split.cut
    assert tuning["best_value"] >= tuning["start_value"]
    assert tuning["design_fusion_weights"] == FusionWeights().as_dict()
    assert sum(tuning["fusion_weights"].values()) == pytest.approx(1.0)
    assert engine.weights.as_dict() == tuning["fusion_weights"]


def test_tuning_is_reproducible_and_starts_from_the_current_configuration(small_dataset) -> None:
    a, b = tune(small_dataset, QUICK), tune(small_dataset, QUICK)
    assert a.params == b.params and a.best_value == b.best_value
    assert a.trials["value"].tolist() == b.trials["value"].tolist()
    first = start_params(KNNConfig(), SVDConfig(), small_dataset.config.fusion)
    knn, svd, weights = apply_params(first, KNNConfig(), SVDConfig(), small_dataset.config.fusion)
    assert (knn.k, knn.train_weighting, svd.n_factors, svd.weighting) == (
        KNNConfig().k, KNNConfig().train_weighting, SVDConfig().n_factors, SVDConfig().weighting)
    assert weights == small_dataset.config.fusion


def test_recsys_tune_writes_a_config_file(small_dataset, tmp_path) -> None:
    from recsys.cli import main

    data = small_dataset.save(tmp_path / "data")
    out = tmp_path / "tuned.toml"
    assert main(["tune", "--data", str(data), "--budget", "60", "--trials", "2", "--validation-days", "14",
                 "--out", str(out)]) == 0
    doc = tomllib.loads(out.read_text())
    assert sum(doc["fusion"].values()) == pytest.approx(1.0)
    assert FusionWeights(**doc["fusion"])
    assert KNNConfig(**doc["engine"]["realtime"]["knn"]).k >= 1
    assert SVDConfig(**doc["engine"]["batch"]["svd"]).n_factors >= 1
    import json

    assert json.loads(out.with_suffix(".search.json").read_text())["n_trials"] == 2
    from recsys.config_file import load_config_file

    assert load_config_file(out).engine.realtime.knn == KNNConfig(**doc["engine"]["realtime"]["knn"])


def test_ease_may_fill_the_collaborative_slot(small_dataset) -> None:
    import dataclasses

    from recsys.models.ease import EASE, EASEConfig
    from recsys.research.tuning import ease_from_params, fit_hybrid_components

    result = tune(small_dataset, dataclasses.replace(QUICK, n_trials=4, search_ease=True))
    slot = result.validation["collaborative_slot"]  # each candidate alone, before the weight search
    assert "pure_svd" in slot["scores"] and any(label.startswith("ease[") for label in slot["scores"])
    assert result.params["collaborative"] == slot["chosen"] and (result.ease is not None) == (slot["model"] == "ease")
    assert ease_from_params({"collaborative": "pure_svd"}) is None
    config = ease_from_params({"collaborative": "ease", "ease_l2": 100.0, "ease_half_life": "none"})
    assert config == EASEConfig(l2=100.0, weighting=config.weighting) and config.weighting.half_life_days is None
    parts = fit_hybrid_components(small_dataset, ease=config)
    assert isinstance(parts["svd"], EASE)


def test_tuning_never_imports_the_engine() -> None:
    """One direction only: the engine calls the tuner and applies its result."""
    import ast
    import inspect

    import recsys.research.tuning as tuning

    tree = ast.parse(inspect.getsource(tuning))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "recsys.serving.engine" not in imported and "recsys.serving" not in imported


def _ease_result(dataset, l2: float = 200.0):
    """A search result whose collaborative slot is EASE (the settings the tuner would return)."""
    import dataclasses

    from recsys.models.ease import EASEConfig
    from recsys.research.tuning import ease_from_params

    result = tune(dataset, dataclasses.replace(QUICK, n_trials=1, search_ease=True))
    result.ease = ease_from_params({"collaborative": "ease", "ease_l2": l2, "ease_half_life": "30"})
    assert isinstance(result.ease, EASEConfig)
    return result


def test_the_engine_serves_ease_when_the_search_chose_it(small_dataset, tmp_path) -> None:
    from recsys.models.ease import EASE

    engine = RecommendationEngine()
    engine.apply_tuning(_ease_result(small_dataset))
    info = engine.train(small_dataset)
    assert info["models"]["collaborative"]["model"] == "ease"
    assert isinstance(engine.hybrid_.components_["svd"], EASE)
    assert engine.strategies()["svd"] is engine.stage2_.svd  # deals keep Stage 2's PureSVD affinities
    user = str(small_dataset.users["user_id"].iloc[0])
    answer = engine.full(user, 5)
    assert len(answer["recommendations"]) == 5
    loaded = RecommendationEngine.load(engine.save(tmp_path / "model"))
    assert isinstance(loaded.hybrid_.components_["svd"], EASE)
    a = engine.recommend([user], 10)[["product_id", "score"]]
    b = loaded.recommend([user], 10)[["product_id", "score"]]
    pd.testing.assert_frame_equal(a, b)


def test_ease_above_the_servable_bound_falls_back_to_pure_svd(small_dataset, monkeypatch) -> None:
    import recsys.models.ease as ease_module

    monkeypatch.setattr(ease_module, "SERVABLE_MAX_ITEMS", small_dataset.n_products - 1)
    engine = RecommendationEngine()
    engine.apply_tuning(_ease_result(small_dataset))
    info = engine.train(small_dataset)
    assert info["models"]["collaborative"]["model"] == "pure_svd"
    assert "exceed the servable bound" in info["models"]["collaborative"]["reason"]
    assert engine.hybrid_.components_["svd"] is engine.stage2_.svd


def test_the_search_offers_ease_only_where_the_engine_serves_it(small_dataset, monkeypatch) -> None:
    import recsys.models.ease as ease_module

    scores = tune(small_dataset, QUICK).validation["collaborative_slot"]["scores"]
    assert any(label.startswith("ease[") for label in scores)  # 150 products: within the bound
    monkeypatch.setattr(ease_module, "SERVABLE_MAX_ITEMS", small_dataset.n_products - 1)
    result = tune(small_dataset, QUICK)
    labels = set(result.validation["collaborative_slot"]["scores"])
    assert result.config.search_ease is False and not any(label.startswith("ease[") for label in labels)
    assert any(label.startswith("rp3beta[") for label in labels)  # sparse: offered at any catalogue size
    no_slot = dataclasses.replace(QUICK, search_rp3beta=False)
    assert "collaborative_slot" not in tune(small_dataset, no_slot).validation  # PureSVD only: nothing to choose


def test_the_slot_keeps_pure_svd_unless_the_gain_is_clear(small_dataset, monkeypatch) -> None:
    import recsys.research.selection as selection

    real = selection.step_up
    monkeypatch.setattr(selection, "step_up", lambda a, b, n, s: {**real(a, b, n, s), "above_zero": False})
    result = tune(small_dataset, QUICK)
    slot = result.validation["collaborative_slot"]
    assert slot["chosen"] == "pure_svd" and result.ease is None and result.rp3beta is None
    assert slot["best"] == max(slot["scores"], key=slot["scores"].get)


def test_a_tuned_file_with_ease_and_the_learned_fusion_loads_as_engine_settings(small_dataset, tmp_path) -> None:
    from recsys.config_file import load_config_file
    from recsys.models.learned_fusion import LearnedFusionConfig
    from recsys.research.tuning import write_tuned_config

    result = _ease_result(small_dataset)
    result.learned_fusion = LearnedFusionConfig(seed=3, validation_days=14.0)
    loaded = load_config_file(write_tuned_config(result, tmp_path / "tuned.toml"))
    assert loaded.engine.ease == result.ease and loaded.engine.learned_fusion == result.learned_fusion
    assert loaded.engine.realtime.knn == result.knn and loaded.engine.batch.svd == result.svd


def test_a_tuned_file_with_rp3beta_in_the_slot_loads_as_engine_settings(small_dataset, tmp_path) -> None:
    from recsys.config_file import load_config_file
    from recsys.models.rp3beta import RP3betaConfig
    from recsys.research.tuning import write_tuned_config

    result = tune(small_dataset, dataclasses.replace(QUICK, n_trials=1))
    result.ease, result.rp3beta = None, RP3betaConfig(alpha=0.8, beta=0.3, k=50)
    loaded = load_config_file(write_tuned_config(result, tmp_path / "tuned.toml"))
    assert loaded.engine.rp3beta == result.rp3beta and loaded.engine.ease is None
