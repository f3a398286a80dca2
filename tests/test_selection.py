"""The served fusion's selection (recsys.research.selection): step up only on a gain above zero."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import recsys.research.selection as selection
from recsys.config import FusionWeights
from recsys.research.tuning import TuningConfig
from recsys.serving.engine_config import EngineConfig

QUICK = TuningConfig(n_trials=1, validation_days=14, max_users=200, seed=3)
TUNED = FusionWeights(knn=0.7, svd=0.3, content=0.0, demographic=0.0)


def test_a_gain_steps_up_only_when_its_paired_interval_is_above_zero() -> None:
    rng = np.random.default_rng(0)
    users = pd.Index([f"u{i}" for i in range(400)])
    current = pd.Series(rng.uniform(0, 1, len(users)), index=users)
    better = current + 0.05
    noisy = current + rng.normal(0, 0.2, len(users)) - 0.002
    assert selection.step_up(current, better, 500, 1)["above_zero"]
    step = selection.step_up(current, noisy, 500, 1)
    assert not step["above_zero"] and step["ci_low"] < 0 < step["ci_high"]


@pytest.mark.parametrize(("gain", "chosen", "weights"), [(False, "design", "design"), (True, "learned", "tuned")])
def test_the_rule_walks_from_the_simplest_candidate(small_dataset, monkeypatch, gain, chosen, weights) -> None:
    real = selection.step_up
    monkeypatch.setattr(selection, "step_up", lambda a, b, n, s: {**real(a, b, n, s), "above_zero": gain})
    design = small_dataset.config.fusion
    record = selection.choose_served(small_dataset, EngineConfig(), TUNED, design, QUICK, n_boot=200)
    assert record["chosen"] == chosen
    assert record["weights"] == (TUNED if weights == "tuned" else design).as_dict()
    assert set(record["steps"]) == {"tuned_vs_design", f"learned_vs_{weights}"}
    assert {"design", "tuned", "learned"} <= set(record) and record["users"] > 0
    assert pd.Timestamp(record["ranker_cut"]) < pd.Timestamp(record["validation_cut"])  # nested windows


def test_the_engine_serves_what_the_rule_chose(small_dataset) -> None:
    from recsys.research.tuning import tune_configs
    from recsys.serving.engine import RecommendationEngine

    result = tune_configs(small_dataset, EngineConfig(), small_dataset.config.fusion, QUICK)
    choice = result.fusion_choice
    assert result.weights.as_dict() == choice["weights"]
    assert (result.learned_fusion is not None) == (choice["chosen"] == "learned")
    engine = RecommendationEngine()
    engine.apply_tuning(result)
    info = engine.train(small_dataset)
    assert info["tuning"]["fusion_choice"] == choice and engine.weights == result.weights
