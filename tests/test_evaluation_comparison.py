"""The comparison protocol: every model scored, intervals consistent, sweep and tuning honest, helpers exact."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from recsys.config import FusionWeights
from recsys.evaluation import comparison as C
from recsys.evaluation.split import temporal_split, validation_split
from recsys.runs.reporting import DESIGN_PERFORMANCE_CLAIMS, performance_metrics_table

CONFIG = C.ComparisonConfig(k=10, test_days=14, validation_days=14, n_boot=200, sweep_step=0.5, seed=3)


@pytest.fixture(scope="module")
def result(small_dataset) -> C.ComparisonResult:
    return C.run_comparison(small_dataset, CONFIG)


EXPECTED_MODELS = [
    "random", "popularity", "item_knn", "pure_svd", "surprise_svd", "surprise_knn", "content", "demographic",
    "hybrid", "hybrid_no_knn", "hybrid_no_svd", "hybrid_no_content", "hybrid_no_demographic", "hybrid_no_rules",
    "hybrid_tuned",
]
EXPECTED_METRICS = ["precision", "recall", "ndcg", "map", "hit_rate", "ild_category", "ild_tfidf", "novelty",
                    "coverage"]


def test_every_model_and_metric_has_an_interval(result):
    table = result.table
    assert list(dict.fromkeys(table["model"])) == EXPECTED_MODELS
    for model, part in table.groupby("model"):
        assert part["metric"].tolist() == EXPECTED_METRICS, model
    ok = table.dropna(subset=["ci_low"])
    assert set(table.loc[table["ci_low"].isna(), "metric"]) <= {"coverage"}  # a set statistic: no interval
    assert (ok["ci_low"] <= ok["mean"] + 1e-12).all() and (ok["mean"] <= ok["ci_high"] + 1e-12).all()
    n_warm = len(result.split.warm_users)
    assert (table.loc[table["metric"] == "ndcg", "n_users"] == n_warm).all()
    assert set(result.timings["model"]) == set(EXPECTED_MODELS)
    assert (result.timings[["fit_seconds", "recommend_seconds"]] >= 0).all().all()
    assert set(result.groups.values()) == set(C.GROUPS)


def test_table_means_equal_the_metric_functions(result, small_dataset):
    # the popularity row of the table is the plain mean of the per-user metrics
    per_user = result.per_user["popularity"]
    row = result.table[(result.table["model"] == "popularity")].set_index("metric")["mean"]
    assert row["ndcg"] == pytest.approx(per_user["ndcg"].mean())
    assert row["recall"] == pytest.approx(per_user["recall"].mean())
    assert 0 < row["coverage"] <= 1


def test_hybrid_family_and_tuning(result):
    sweep = result.sweep
    assert len(sweep) == 10  # step 0.5 over four strategies: C(2 + 3, 3)
    best = sweep.loc[sweep["ndcg"].idxmax()]
    assert result.best_weights == FusionWeights(**{s: float(best[s]) for s in C.STRATEGIES})
    # tuning used the validation window only: it ends where the test window begins
    assert result.validation.end == result.split.cut
    assert (result.validation.train.events["timestamp"] < result.validation.cut).all()
    # the cold-start table covers the same models (when the split has cold users)
    if result.split.cold_users:
        assert set(result.cold_table["model"]) == set(EXPECTED_MODELS)


def test_paired_differences_and_sentences(result):
    paired = result.paired(others=["popularity", "pure_svd"], metrics=["ndcg"])
    assert paired[["reference", "other"]].values.tolist() == [["hybrid", "popularity"], ["hybrid", "pure_svd"]]
    diff = paired.set_index("other").loc["popularity", "difference"]
    expected = result.per_user["hybrid"]["ndcg"].mean() - result.per_user["popularity"]["ndcg"].mean()
    assert diff == pytest.approx(expected)
    sentences = C.standing_sentences(paired, "ndcg", k=10)
    assert len(sentences) == 2 and sentences[0].startswith("hybrid vs popularity: NDCG@10 ")
    assert sentences[0].endswith(paired["verdict"].iloc[0])
    with pytest.raises(ValueError, match="unknown model"):
        result.paired(others=["nope"])


def test_precomputed_scores_change_nothing(small_dataset):
    # the sweep's cached component scores give exactly the hybrid's own lists
    from recsys.interactions import Interactions
    from recsys.models.hybrid import HybridRecommender, default_components

    split = validation_split(temporal_split(small_dataset, 14), 14)
    interactions = Interactions.from_dataset(split.train)
    components = default_components()
    for c in components.values():
        c.fit(split.train, interactions)
    weights = FusionWeights(knn=0.5, svd=0.0, content=0.25, demographic=0.25)
    users = split.warm_users
    rows = interactions.user_index(users)
    cached = {s: C.PrecomputedScores(c, np.unique(rows)) for s, c in components.items()}
    plain = HybridRecommender.from_fitted(components, weights).recommend(users, 10)
    fast = HybridRecommender.from_fitted(cached, weights).recommend(users, 10)
    pd.testing.assert_frame_equal(plain, fast)


def test_simplex_grid():
    grid = C.simplex_grid(0.5)
    # compositions of 2 steps into 4 parts: C(5, 3) = 10
    assert len(grid) == 10 and list(grid.columns) == list(C.STRATEGIES)
    assert np.allclose(grid.sum(axis=1), 1.0)
    assert len(C.simplex_grid(0.2)) == math.comb(5 + 3, 3) == 56
    assert len(C.simplex_grid(0.1)) == 286
    assert grid.iloc[0].tolist() == [0.0, 0.0, 0.0, 1.0]
    for bad in (0, 0.3, 1.5, -0.1):
        with pytest.raises(ValueError, match="step"):
            C.simplex_grid(bad)


def test_leave_one_out_weights():
    w = C.leave_one_out_weights(FusionWeights(), "knn")
    # 0.3 / 0.6, 0.2 / 0.6, 0.1 / 0.6
    assert w.as_dict() == pytest.approx({"knn": 0.0, "svd": 0.5, "content": 1 / 3, "demographic": 1 / 6})
    with pytest.raises(ValueError, match="unknown strategy"):
        C.leave_one_out_weights(FusionWeights(), "deep")
    with pytest.raises(ValueError, match="no positive weight"):
        C.leave_one_out_weights(FusionWeights(knn=1.0, svd=0.0, content=0.0, demographic=0.0), "knn")


def test_comparison_config_errors():
    for kwargs, match in (({"k": 0}, "k must"), ({"sweep_step": 0.3}, "sweep_step"), ({"sweep_metric": "auc"},
                                                                                       "sweep_metric")):
        with pytest.raises(ValueError, match=match):
            C.ComparisonConfig(**kwargs)


def test_run_comparison_needs_the_hybrid_strategies(small_dataset):
    factories = {k: v for k, v in C.default_factories(0).items() if k != "content"}
    with pytest.raises(ValueError, match="hybrid strategies"):
        C.run_comparison(small_dataset, CONFIG, factories)


def test_aggregate_seeds_and_reading_them(tmp_path):
    tables = {
        1: pd.DataFrame({"model": ["hybrid", "popularity"], "metric": ["ndcg", "ndcg"], "mean": [0.2, 0.1]}),
        2: pd.DataFrame({"model": ["hybrid", "popularity"], "metric": ["ndcg", "ndcg"], "mean": [0.4, 0.1]}),
        3: pd.DataFrame({"model": ["hybrid"], "metric": ["ndcg"], "mean": [0.3]}),
    }
    out = C.aggregate_seeds(tables).set_index("model")
    # hybrid: mean of 0.2, 0.4, 0.3 = 0.3; sample std sqrt(((-0.1)^2 + 0.1^2 + 0) / 2) = 0.1
    assert out.loc["hybrid", "mean"] == pytest.approx(0.3)
    assert out.loc["hybrid", "std"] == pytest.approx(0.1)
    assert (out.loc["hybrid", "min"], out.loc["hybrid", "max"], out.loc["hybrid", "n_seeds"]) == (0.2, 0.4, 3)
    # popularity only in two seeds, both 0.1: std 0
    assert out.loc["popularity", "std"] == pytest.approx(0.0) and out.loc["popularity", "n_seeds"] == 2
    for seed, table in tables.items():
        (tmp_path / f"seed_{seed}" / "tables").mkdir(parents=True)
        table.to_csv(tmp_path / f"seed_{seed}" / "tables" / "08_comparison.csv", index=False)
    read = C.read_seed_tables(tmp_path)
    assert list(read) == [1, 2, 3]
    pd.testing.assert_frame_equal(C.aggregate_seeds(read), C.aggregate_seeds(tables))
    with pytest.raises(ValueError, match="lacks column"):
        C.aggregate_seeds({1: pd.DataFrame({"model": ["x"]})})
    with pytest.raises(FileNotFoundError):
        C.read_seed_tables(tmp_path / "nothing")


def test_performance_metrics_table(tmp_path):
    (tmp_path / "artifacts").mkdir()
    manifest = {"notebook": "02_stage1_realtime_knn", "figures": [], "tables": [], "metrics": {
        "latency_ms_p95/stage1": {"value": 12.5, "description": "p95 of 500 single-user calls"},
        "hit_rate@10": {"value": 0.3, "description": "not a performance metric"},
    }}
    (tmp_path / "artifacts" / "02_stage1_realtime_knn.json").write_text(json.dumps(manifest))
    table = performance_metrics_table(
        tmp_path, measured={"Recommendation Diversity": [("ild_category_pct/hybrid", 61.2, "100 x ILD@10")]})
    rows = table.set_index("metric")
    assert rows.loc["Stage 1 Latency", "measured"] == "12.5"
    assert rows.loc["Stage 1 Latency", "source"] == "02_stage1_realtime_knn:latency_ms_p95/stage1"
    assert rows.loc["Stage 1 Latency", "design_claim"] == "30-80ms"
    assert rows.loc["Recommendation Diversity", "measured"] == "61.2"
    assert rows.loc["Throughput", "measured"] == "not measured in this run"
    assert len(table) == len(DESIGN_PERFORMANCE_CLAIMS)  # one row each here: nothing else matched
    with pytest.raises(ValueError, match="unknown design metric"):
        performance_metrics_table(tmp_path, measured={"Speed": [("x", 1, "y")]})


def test_user_cap_and_skipped_peer(small_dataset):
    from recsys.evaluation.peers.surprise_models import SurpriseKNN, SurpriseKNNConfig

    factories = {name: spec for name, spec in C.default_factories(0).items() if name in C.HYBRID_COMPONENTS.values()}
    factories["surprise_knn"] = ("single", lambda: SurpriseKNN(SurpriseKNNConfig(max_items=1)))  # refuses to fit
    config = C.ComparisonConfig(test_days=14, validation_days=14, n_boot=50, sweep_step=1.0, max_users=20, seed=1)
    result = C.run_comparison(small_dataset, config, factories)
    assert result.skipped["model"].tolist() == ["surprise_knn"]
    assert "max_items" in result.skipped["reason"].iloc[0]
    assert "surprise_knn" not in set(result.table["model"])
    # 20 sampled warm users, drawn from the split's warm users, the same for every model
    users = result.per_user["hybrid"].index
    assert len(users) == 20 and set(users) <= set(result.split.warm_users)
    assert all(frame.index.equals(users) for frame in result.per_user.values())
    assert (result.timings["n_users"] == 20).all()
    assert len(result.sweep) == 4  # step 1: the four vertices of the simplex


def test_sample_users():
    users = [f"u{i}" for i in range(10)]
    assert C.sample_users(users[::-1], None, 0) == users
    sample = C.sample_users(users, 4, seed=5)
    assert len(sample) == 4 and sample == sorted(sample) and sample == C.sample_users(users, 4, seed=5)
    with pytest.raises(ValueError, match="max_users"):
        C.ComparisonConfig(max_users=0)
