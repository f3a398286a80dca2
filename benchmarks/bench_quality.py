"""Quality benchmark (issue 12): every model's NDCG@k against textbook peers, side by side.

Usage (from the project root)::

    .venv/bin/python benchmarks/bench_quality.py --data online_retail
    .venv/bin/python benchmarks/bench_quality.py --data synthetic --profile thesis
    .venv/bin/python benchmarks/bench_quality.py --data online_retail --sweep   # weighting variants too
    .venv/bin/python benchmarks/bench_quality.py --data synthetic --served      # + the served hybrid, fusions

``--served`` trains the engine as ``recsys train`` does (``engine.train(tune=True)``: the collaborative
slot among PureSVD, EASE and RP3beta, the TPE search, the fusion chosen by the step rule of
:mod:`recsys.research.selection`, all on a validation window cut from the training split) and prints
what it chose and why.

Protocol (the issue's; the evaluation chapter's): the last ``--test-days``
days are the test window (:func:`recsys.evaluation.split.temporal_split`),
users with training history and >= 1 relevant test item are evaluated, a test
item is relevant when bought in the test window and not before, products the
user purchased in training are removed from every list, NDCG@``k``. Every
model is fitted on the same training data; means with 95% bootstrap
intervals over users, and each model minus the best peer by a paired
bootstrap. One thread (BLAS and ``implicit`` pinned). Figures are printed and
recorded in ``reports/benchmarks/bench_quality_<data>.json``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

for _key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_key, "1")

import pandas as pd  # noqa: E402

from recsys.data.dataset import Dataset  # noqa: E402
from recsys.evaluation import metrics as M  # noqa: E402
from recsys.evaluation.split import temporal_split  # noqa: E402
from recsys.evaluation.statistics import bootstrap_table, paired_bootstrap  # noqa: E402
from recsys.interactions import Interactions, Weighting  # noqa: E402
from recsys.models.base import Recommender  # noqa: E402

Factory = Callable[[], Recommender]


def load(data: str, profile: str, seed: int, data_dir: str) -> tuple[Dataset, tuple[str, ...]]:
    """The data set and the event types that count as relevant."""
    if data == "online_retail":
        from recsys.data.online_retail import load_online_retail_dataset

        dataset, _ = load_online_retail_dataset()
        return dataset, ("purchase",)
    from recsys.data import load_or_generate
    from recsys.evaluation.split import DEFAULT_RELEVANT_EVENTS

    return load_or_generate(profile=profile, seed=seed, data_dir=data_dir), DEFAULT_RELEVANT_EVENTS


def models(seed: int, data: str, sweep: bool) -> dict[str, Factory]:
    """Name -> factory of every compared model (the peers from ``implicit``)."""
    from recsys.evaluation.peers.implicit_peers import ImplicitALS, ImplicitBPR, ImplicitConfig, ImplicitItemKNN
    from recsys.models.baselines import Popularity
    from recsys.models.content import ContentRecommender
    from recsys.models.demographic import DemographicConfig, DemographicRecommender
    from recsys.models.ease import EASE
    from recsys.models.knn import ItemKNN, KNNConfig
    from recsys.models.rp3beta import RP3beta
    from recsys.models.svd import PureSVD, SVDConfig

    demographic = (lambda: DemographicRecommender(DemographicConfig(category_weight=0.0))) \
        if data == "online_retail" else DemographicRecommender
    out: dict[str, Factory] = {
        "popularity": Popularity,
        "item_knn": ItemKNN,
        "pure_svd": lambda: PureSVD(SVDConfig(random_state=seed)),
        "ease": EASE,
        "rp3beta": RP3beta,
        "content": ContentRecommender,
        "demographic": demographic,
        "implicit_cosine": ImplicitItemKNN,
        "implicit_als": lambda: ImplicitALS(ImplicitConfig(random_state=seed)),
        "implicit_bpr": lambda: ImplicitBPR(ImplicitConfig(random_state=seed, iterations=100, learning_rate=0.05)),
    }
    if sweep:
        for half_life in (None, 30.0, 90.0, 180.0):
            for repeats in ("raw", "log", "binary"):
                for scheme in ("none", "bm25", "tfidf"):
                    w = Weighting(half_life_days=half_life, repeats=repeats, scheme=scheme)
                    tag = f"h{half_life or 0:g}_{repeats}_{scheme}"
                    out[f"knn[{tag}]"] = lambda w=w: ItemKNN(KNNConfig(train_weighting=w, profile_weighting=w))
                    if scheme == "none":
                        out[f"svd[{tag}]"] = lambda w=w: PureSVD(SVDConfig(random_state=seed, weighting=w))
    return out


def evaluate(dataset: Dataset, relevant_events: tuple[str, ...], factories: dict[str, Factory], k: int,
             test_days: float, n_boot: int, seed: int, hybrid: bool = True,
             served: bool = False, tune_trials: int = 24, data: str = "synthetic") -> tuple[pd.DataFrame, dict]:
    split = temporal_split(dataset, test_days, relevant_events=relevant_events)
    users = split.warm_users
    relevant = split.relevant[split.relevant["user_id"].isin(users)]
    interactions = Interactions.from_dataset(split.train)
    rows, per_user, fitted = [], {}, {}
    for name, factory in factories.items():
        model = factory()
        start = time.perf_counter()
        model.fit(split.train, interactions)
        fit_s = time.perf_counter() - start
        fitted[name] = model
        start = time.perf_counter()
        recs = model.recommend(users, n=k, exclude_purchased=True)
        rec_s = time.perf_counter() - start
        per_user[name] = M.ranking_metrics_per_user(recs[["user_id", "product_id", "rank"]], relevant, k)
        ci = bootstrap_table(per_user[name][["ndcg"]], n_boot, 0.95, seed).iloc[0]
        rows.append({"model": name, "ndcg": ci["mean"], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
                     "fit_s": fit_s, "recommend_s": rec_s})
        print(f"{name:32s} NDCG@{k} {ci['mean']:.4f} [{ci['ci_low']:.4f}, {ci['ci_high']:.4f}] "
              f"fit {fit_s:6.2f}s rec {rec_s:6.2f}s", flush=True)
    if hybrid:
        from recsys.models.hybrid import HybridRecommender

        parts = {"knn": fitted["item_knn"], "svd": fitted["pure_svd"], "content": fitted["content"],
                 "demographic": fitted["demographic"]}
        model = HybridRecommender.from_fitted(parts, dataset.config.fusion)
        recs = model.recommend(users, n=k, exclude_purchased=True)
        per_user["hybrid"] = M.ranking_metrics_per_user(recs[["user_id", "product_id", "rank"]], relevant, k)
        ci = bootstrap_table(per_user["hybrid"][["ndcg"]], n_boot, 0.95, seed).iloc[0]
        rows.append({"model": "hybrid", "ndcg": ci["mean"], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
                     "fit_s": float("nan"), "recommend_s": float("nan")})
        print(f"{'hybrid':32s} NDCG@{k} {ci['mean']:.4f} [{ci['ci_low']:.4f}, {ci['ci_high']:.4f}]", flush=True)
    if served:
        _served_rows(dataset, split, relevant_events, users, relevant, k, test_days, n_boot, seed, tune_trials,
                     data, rows, per_user)
    table = pd.DataFrame(rows)
    print(f"{len(users)} warm users, {len(relevant)} relevant pairs, cut {split.cut}")
    return table, per_user


def _served_rows(dataset: Dataset, split, relevant_events, users, relevant, k, test_days, n_boot, seed, tune_trials,
                 data, rows, per_user) -> None:
    """The hybrid as ``engine.train(tune=True)`` serves it (trained on the training split) and the three
    fusions over its strategies (``recsys.research.fusion_study``): rows and per-user metrics added in place."""
    from recsys.models.demographic import DemographicConfig
    from recsys.models.realtime import RealtimeConfig
    from recsys.research.fusion_study import compare_fusions
    from recsys.research.tuning import TuningConfig
    from recsys.serving.engine import RecommendationEngine
    from recsys.serving.engine_config import EngineConfig

    fallback = DemographicConfig(category_weight=0.0) if data == "online_retail" else DemographicConfig()
    engine = RecommendationEngine(dataset.config, EngineConfig(realtime=RealtimeConfig(fallback=fallback)))
    start = time.perf_counter()
    engine.train(split.train, tune=True, tuning=TuningConfig(n_trials=tune_trials, seed=seed, validation_days=test_days,
                                                             relevant_events=relevant_events))
    info = engine.model_info()
    tuning = info["tuning"]
    print(f"served: search {tuning['seconds']:.1f} s, fit {info['fit_seconds']:.1f} s, collaborative "
          f"{info['models']['collaborative']}, fusion {tuning['fusion']}, weights {tuning['fusion_weights']} "
          f"(searched {tuning['searched_fusion_weights']})\n  slot (validation, alone): "
          f"{tuning['validation'].get('collaborative_slot')}\n  fusion choice (validation): {tuning['fusion_choice']}",
          flush=True)
    recs = engine.recommend(users, n=k)
    per_user["hybrid_served"] = M.ranking_metrics_per_user(recs[["user_id", "product_id", "rank"]], relevant, k)
    fusions = compare_fusions(split.train, engine, list(users), relevant, k)
    per_user.update({f"fusion_{name}": frame for name, frame in fusions.per_user.items()})
    for name in ("hybrid_served", "fusion_design", "fusion_tuned", "fusion_learned"):
        ci = bootstrap_table(per_user[name][["ndcg"]], n_boot, 0.95, seed).iloc[0]
        rows.append({"model": name, "ndcg": ci["mean"], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
                     "fit_s": time.perf_counter() - start if name == "hybrid_served" else float("nan"),
                     "recommend_s": float("nan")})
        print(f"{name:32s} NDCG@{k} {ci['mean']:.4f} [{ci['ci_low']:.4f}, {ci['ci_high']:.4f}]", flush=True)


def paired_vs(per_user: dict, reference: str, others: list[str], n_boot: int, seed: int) -> pd.DataFrame:
    rows = []
    for other in others:
        d = paired_bootstrap(per_user[reference]["ndcg"], per_user[other]["ndcg"], n_boot, 0.95, seed)
        rows.append({"reference": reference, "other": other, "difference": d.difference, "ci_low": d.ci_low,
                     "ci_high": d.ci_high, "verdict": d.verdict})
    return pd.DataFrame(rows)


def evaluation_before_after(dataset: Dataset, relevant_events: tuple[str, ...], seed: int, test_days: float,
                            n_boot: int, max_users: int | None) -> pd.DataFrame:
    """The project's own protocol (:func:`recsys.evaluation.run_comparison`, as in notebook 08) with the
    pre-issue-12 inputs (every model on the shared 30-day-decayed summed matrix, no self similarity)
    and with the current defaults: NDCG@10 of each hybrid strategy and of the hybrid."""
    from recsys.evaluation import ComparisonConfig, run_comparison
    from recsys.evaluation.comparison import default_factories
    from recsys.models.knn import ItemKNN, KNNConfig
    from recsys.models.svd import PureSVD, SVDConfig

    config = ComparisonConfig(test_days=test_days, validation_days=test_days, relevant_events=relevant_events,
                              n_boot=n_boot, seed=seed, max_users=max_users)
    frames = []
    for label, before in (("before (shared matrix)", True), ("now (per-model defaults)", False)):
        factories = default_factories(seed)
        factories.pop("surprise_knn")
        if before:
            factories["item_knn"] = ("single", lambda: ItemKNN(KNNConfig.plain()))
            factories["pure_svd"] = ("single", lambda: PureSVD(SVDConfig(random_state=seed, weighting=None)))
        result = run_comparison(dataset, config, factories)
        table = result.table.query("metric == 'ndcg'")[["model", "mean", "ci_low", "ci_high"]]
        frames.append(table.assign(inputs=label))
    out = pd.concat(frames, ignore_index=True)
    return out.pivot(index="model", columns="inputs", values="mean")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["online_retail", "synthetic"], default="online_retail")
    parser.add_argument("--profile", default="thesis")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--test-days", type=float, default=30)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--sweep", action="store_true", help="also score weighting variants of k-NN and PureSVD")
    parser.add_argument("--served", action="store_true",
                        help="also the hybrid as engine.train(tune=True) serves it, and the three fusions")
    parser.add_argument("--tune-trials", type=int, default=24, help="trial cap of the served hybrid's search")
    parser.add_argument("--evaluation", action="store_true",
                        help="run notebook 08's protocol (run_comparison) before/after the per-model inputs instead")
    parser.add_argument("--max-users", type=int, default=None)
    args = parser.parse_args()
    dataset, relevant_events = load(args.data, args.profile, args.seed, args.data_dir)
    if args.evaluation:
        table = evaluation_before_after(dataset, relevant_events, args.seed, args.test_days, args.n_boot,
                                        args.max_users)
        print(table.round(4).to_string())
        return
    table, per_user = evaluate(dataset, relevant_events, models(args.seed, args.data, args.sweep), args.k,
                               args.test_days, args.n_boot, args.seed, served=args.served,
                               tune_trials=args.tune_trials, data=args.data)
    from recsys.runs.reporting import write_benchmark_manifest

    how = (f"{args.data}{'' if args.data == 'online_retail' else ' ' + args.profile} seed {args.seed}: last "
           f"{args.test_days:g} days as test, warm users, relevant = bought in the test window and not before, "
           f"purchased items excluded; mean over users, 95% bootstrap CI ({args.n_boot} resamples); one thread")
    figures = {}
    for r in table.itertuples(index=False):
        figures[f"ndcg@{args.k}/{r.model}"] = (r.ndcg, f"NDCG@{args.k}, {r.model}; {how}")
        figures[f"ndcg@{args.k}/{r.model}/ci_low"] = (r.ci_low, f"lower end of the 95% CI, {r.model}")
        figures[f"ndcg@{args.k}/{r.model}/ci_high"] = (r.ci_high, f"upper end of the 95% CI, {r.model}")
    path = write_benchmark_manifest(f"bench_quality_{args.data}", figures)
    print(f"recorded {path}")
    with pd.option_context("display.width", 160, "display.max_rows", 500):
        print(table.sort_values("ndcg", ascending=False).round(4).to_string(index=False))
        peers = ["implicit_cosine", "implicit_als", "implicit_bpr", "pure_svd", "ease", "rp3beta", "item_knn"]
        print(paired_vs(per_user, "hybrid", peers, args.n_boot, args.seed).round(4).to_string(index=False))
        for name in ("hybrid_served", "fusion_learned"):
            if name in per_user:
                others = [*peers, "hybrid", *(f for f in ("fusion_design", "fusion_tuned") if name == "fusion_learned")]
                print(paired_vs(per_user, name, others, args.n_boot, args.seed).round(4).to_string(index=False))
        print(paired_vs(per_user, "item_knn", ["implicit_cosine"], args.n_boot, args.seed).round(4)
              .to_string(index=False))


if __name__ == "__main__":
    main()
