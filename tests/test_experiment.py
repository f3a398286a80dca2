"""A/B experiments on deal policies: assignment, the engine's variant deals, the report and its CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.cli import main as cli_main
from recsys.config import ConfigError, DealConfig
from recsys.deals.decision_log import ParquetDecisionLog
from recsys.deals.experiment import ExperimentConfig, Variant
from recsys.deals.exploration import ExplorationConfig, LoggingPolicy
from recsys.deals.rate_limit import RateLimiter
from recsys.research.experiment_report import experiment_report

EXPERIMENT = ExperimentConfig("pricing", (
    Variant("A", 0.5, ExplorationConfig(enabled=True, epsilon=0.2, holdout_share=0.2)),
    Variant("B", 0.5, ExplorationConfig(enabled=True, epsilon=0.2, holdout_share=0.2, policy_name="formula_ps"),
            use_price_sensitivity=True),
))


def test_assignment_is_deterministic_in_the_configured_shares_and_independent_of_the_holdout() -> None:
    ids = np.array([f"user-{i}" for i in range(20_000)], dtype=object)
    experiment = ExperimentConfig("e", (Variant("control", 0.7), Variant("treatment", 0.3)))
    variants = experiment.assign(ids)
    assert (variants == experiment.assign(ids)).all()
    assert abs((variants == "treatment").mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 20_000)
    held = LoggingPolicy(ExplorationConfig(enabled=True, holdout_share=0.2), DealConfig()).holdout(ids, 5)
    for name in ("control", "treatment"):
        share = held[variants == name].mean()
        n = int((variants == name).sum())
        assert abs(share - 0.2) < 4 * np.sqrt(0.2 * 0.8 / n), name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "e", "variants": (Variant("a", 1.0),)}, "at least two"),
        ({"name": "e", "variants": (Variant("a", 0.5), Variant("a", 0.5))}, "unique"),
        ({"name": "e", "variants": (Variant("a", 0.5), Variant("b", 0.4))}, "sum to 1"),
        ({"name": "", "variants": (Variant("a", 0.5), Variant("b", 0.5))}, "without an experiment name"),
    ],
)
def test_bad_experiments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ExperimentConfig(**kwargs)


def test_bad_variant_and_no_experiment() -> None:
    with pytest.raises(ConfigError, match="share"):
        Variant("a", 0.0)
    with pytest.raises(ConfigError, match="no experiment"):
        ExperimentConfig().assign(["u"])


def test_report_by_hand() -> None:
    outcomes = pd.DataFrame({
        "user_id": ["u1", "u1", "u2", "u3", "u4"], "period": [1, 1, 1, 1, 1],
        "variant": ["e:A", "e:A", "e:A", "e:B", "e:B"], "arm": ["formula", "explore", "holdout", "formula", "formula"],
        "converted": [1, 0, 0, 1, 1], "revenue": [10.0, 0.0, 0.0, 8.0, 6.0], "margin": [3.0, 0.0, 0.0, 2.0, 1.0],
    })
    table = experiment_report(outcomes, n_boot=200).set_index(["variant", "metric"])
    assert table.loc[("e:A", "conversions"), "mean"] == pytest.approx(0.5)  # units: u1 (1), u2 (0)
    assert table.loc[("e:A", "conversions"), "holdout_share"] == pytest.approx(0.5)
    assert table.loc[("e:B", "revenue"), "mean"] == pytest.approx(7.0)
    assert table.loc[("e:B", "revenue"), "vs_control"] == pytest.approx(7.0 - 5.0)
    with pytest.raises(ValueError, match="control variant"):
        experiment_report(outcomes, control="e:C")
    with pytest.raises(ValueError, match="lack column"):
        experiment_report(outcomes.drop(columns=["variant"]))


def test_engine_answers_each_user_with_their_variant_and_the_cli_reports(small_dataset, tmp_path) -> None:
    from recsys.serving.engine import RecommendationEngine
    from recsys.serving.engine_config import EngineConfig

    decided = small_dataset.as_of - pd.Timedelta(days=7)
    engine = RecommendationEngine(small_dataset.config, EngineConfig(experiment=EXPERIMENT), now=lambda: decided)
    engine.train(small_dataset)
    engine.use_rate_limiter(RateLimiter(10**6, 1.0))
    log = ParquetDecisionLog(tmp_path / "decisions")
    engine.use_decision_sink(log)
    users = small_dataset.users["user_id"].tolist()
    answers = engine.deals_many(users, 5)
    assigned = dict(zip(users, EXPERIMENT.assign(users), strict=True))
    for answer in answers:
        for deal in answer["deals"]:
            assert deal["variant"] == f"pricing:{assigned[answer['user_id']]}"
            assert deal["policy"] == ("formula_ps" if assigned[answer["user_id"]] == "B" else "seed_formula")
    logged = log.read()
    assert set(logged["variant"]) == {"pricing:A", "pricing:B"}
    assert (logged["decided_at"] == decided).all()
    small_dataset.save(tmp_path / "data")
    out = tmp_path / "report.csv"
    assert cli_main(["experiment", "report", "--decisions", str(tmp_path / "decisions"), "--data", str(tmp_path / "data"),
                     "--experiment", "pricing", "--n-boot", "100", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert set(table["variant"]) == {"pricing:A", "pricing:B"} and len(table) == 6
    assert (table["ci_low"] <= table["mean"]).all() and (table["mean"] <= table["ci_high"]).all()
    assert cli_main(["experiment", "report", "--decisions", str(tmp_path / "none"), "--data", str(tmp_path / "data")]) == 2
