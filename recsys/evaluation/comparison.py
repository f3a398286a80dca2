"""The offline comparison: every model under one protocol, with intervals and timings.

Protocol (:func:`run_comparison`)
    1. :func:`~recsys.evaluation.split.temporal_split` at ``as_of - test_days``;
       a validation window of ``validation_days`` is cut from the end of the
       training period (:func:`~recsys.evaluation.split.validation_split`).
    2. Every model is fitted on the training Dataset and asked for its top
       ``k`` (purchased items excluded) for the *warm* test users (training
       history and >= 1 relevant test item); cold-start users are scored
       separately with the same fitted models.
    3. Per user: precision, recall, NDCG, MAP and hit rate @k, intra-list
       category diversity, intra-list TF-IDF distance (vectors of a
       :class:`~recsys.models.content.ContentRecommender` fitted on the
       training data) and novelty (popularity among training users); per model
       catalog coverage@k. Means with 95% percentile bootstrap intervals over
       users (:mod:`recsys.evaluation.statistics`); coverage, a statistic of
       the whole set of lists that resampling biases downwards, gets none
       (its spread shows across seeds).
    4. The hybrid is scored at the design's weights (40/30/20/10), with each
       strategy left out (its weight shared out over the others in
       proportion), without business rules (stock and spending-tier filters
       off, to separate fusion from filtering), and at the weights that
       maximise ``sweep_metric`` on the validation window over a simplex grid
       (components refitted on the validation training data for the sweep;
       the chosen weights are then scored once on the test window).

Timing
    ``fit_seconds``: wall time of ``fit`` on the training data. The four
    hybrid strategies are fitted once and shared by every hybrid variant, so
    a variant's fit time is the sum of its components' fit times plus the
    assembly time. ``recommend_seconds``: wall time of one ``recommend`` call
    for all warm test users, ``n=k``. Single process, BLAS threads as set by
    the caller (pinned to 1 in the notebooks).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import FusionWeights
from recsys.data.dataset import Dataset
from recsys.evaluation import metrics as M
from recsys.evaluation.split import DEFAULT_RELEVANT_EVENTS, TemporalSplit, temporal_split, validation_split
from recsys.evaluation.statistics import aggregate_seeds, bootstrap_table, paired_bootstrap
from recsys.evaluation.sweep import hybrid_of, simplex_grid, weight_sweep
from recsys.interactions import Interactions
from recsys.models.base import Recommender
from recsys.validation import ConfigError, check_ints, check_number, check_numbers

__all__ = [
    "HYBRID_COMPONENTS",
    "METRIC_LABELS",
    "PrecomputedScores",
    "ComparisonConfig",
    "ComparisonResult",
    "aggregate_seeds",
    "default_factories",
    "evaluate_recommendations",
    "leave_one_out_weights",
    "paired_differences",
    "read_seed_tables",
    "run_comparison",
    "sample_users",
    "simplex_grid",
    "standing_sentences",
    "validation_sweep",
]

ModelFactory = Callable[[], Recommender]

#: hybrid strategy key -> the name of the single model that serves as that component
HYBRID_COMPONENTS: Mapping[str, str] = {
    "knn": "item_knn", "svd": "pure_svd", "content": "content", "demographic": "demographic",
}
STRATEGIES: tuple[str, ...] = tuple(HYBRID_COMPONENTS)

#: per-user metric columns -> readable labels (``@k`` appended where it applies)
METRIC_LABELS: Mapping[str, str] = {
    "precision": "Precision", "recall": "Recall", "ndcg": "NDCG", "map": "MAP", "hit_rate": "Hit rate",
    "ild_category": "ILD (category)", "ild_tfidf": "ILD (TF-IDF)", "novelty": "Novelty (bits)",
    "coverage": "Catalog coverage",
}

GROUPS = ("baseline", "single", "hybrid", "ablation")


@dataclass(frozen=True)
class ComparisonConfig:
    """Settings of :func:`run_comparison` (all notebook parameters).

    ``max_users``: if set, at most this many warm users (and as many cold
    and validation users) are evaluated, a seeded uniform sample without
    replacement -- it bounds time and memory on large profiles; ``None``
    evaluates everyone."""

    k: int = 10
    test_days: float = 28
    validation_days: float = 28
    relevant_events: tuple[str, ...] = DEFAULT_RELEVANT_EVENTS
    n_boot: int = 1000
    confidence: float = 0.95
    seed: int = 42
    sweep_step: float = 0.2
    sweep_metric: str = "ndcg"
    max_users: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "relevant_events", tuple(self.relevant_events))
        if self.max_users is not None:
            check_ints(self, "max_users")
        check_ints(self, "k", "n_boot")
        check_numbers(self, "confidence", low=0, high=1, low_open=True, high_open=True)
        steps = 1.0 / self.sweep_step if self.sweep_step > 0 else math.inf
        if not (0 < self.sweep_step <= 1) or not math.isclose(steps, round(steps), abs_tol=1e-9):
            raise ConfigError(f"ComparisonConfig.sweep_step must divide 1 (e.g. 0.1, 0.2, 0.25), got {self.sweep_step!r}")
        if self.sweep_metric not in M.ACCURACY_METRICS:
            raise ConfigError(f"ComparisonConfig.sweep_metric must be one of {list(M.ACCURACY_METRICS)}, "
                             f"got {self.sweep_metric!r}")


def default_factories(seed: int = 42) -> dict[str, tuple[str, ModelFactory]]:
    """The compared single models: name -> (group, unfitted-model factory).

    Random and popularity baselines; each hybrid strategy alone (item k-NN,
    PureSVD, content, demographic); Surprise's SVD (ranked by predicted
    rating) and KNNBasic as peers. Seeded models get ``seed``."""
    from recsys.evaluation.peers.surprise_models import SurpriseKNN, SurpriseSVD, SurpriseSVDConfig
    from recsys.models.baselines import Popularity, RandomRecommender
    from recsys.models.content import ContentRecommender
    from recsys.models.demographic import DemographicRecommender
    from recsys.models.knn import ItemKNN
    from recsys.models.svd import PureSVD, SVDConfig

    return {
        "random": ("baseline", lambda: RandomRecommender(seed=seed)),
        "popularity": ("baseline", Popularity),
        "item_knn": ("single", ItemKNN),
        "pure_svd": ("single", lambda: PureSVD(SVDConfig(random_state=seed))),
        "surprise_svd": ("single", lambda: SurpriseSVD(SurpriseSVDConfig(random_state=seed))),
        "surprise_knn": ("single", SurpriseKNN),
        "content": ("single", ContentRecommender),
        "demographic": ("single", DemographicRecommender),
    }


# -- weights -----------------------------------------------------------------------------------------------------------
def leave_one_out_weights(weights: FusionWeights, left_out: str) -> FusionWeights:
    """``weights`` without ``left_out``; the others rescaled to sum to 1
    (the same proportional redistribution the hybrid applies per user)."""
    values = weights.as_dict()
    if left_out not in values:
        raise ValueError(f"unknown strategy {left_out!r}; expected one of {list(values)}")
    rest = {s: w for s, w in values.items() if s != left_out}
    total = sum(rest.values())
    if total <= 0:
        raise ValueError(f"leaving out {left_out!r} leaves no positive weight ({values})")
    return FusionWeights(**{s: (w / total if s != left_out else 0.0) for s, w in values.items()})


# -- evaluating one list -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvaluationContext:
    """What the beyond-accuracy metrics need, built once from the training data."""

    catalog: pd.Index
    categories: pd.Series
    item_vectors: Any
    popularity: pd.Series

    @classmethod
    def from_train(cls, train: Dataset, item_vectors: Any) -> EvaluationContext:
        products = train.products
        catalog = pd.Index(products["product_id"], name="product_id")
        active = train.events["user_id"].nunique()
        return cls(
            catalog=catalog,
            categories=pd.Series(products["category"].to_numpy(), index=catalog),
            item_vectors=item_vectors,
            popularity=M.item_popularity(train.events, catalog, max(int(active), 1)),
        )


def evaluate_recommendations(
    recommended: pd.DataFrame, relevant: pd.DataFrame, context: EvaluationContext, k: int
) -> pd.DataFrame:
    """Per-user metrics of one model's lists: the accuracy metrics over the
    users of ``relevant``, plus ``ild_category``, ``ild_tfidf`` and
    ``novelty`` of those users' lists (NaN where a list is too short)."""
    recs = recommended[["user_id", "product_id", "rank"]]
    users = pd.Index(sorted(relevant["user_id"].unique()), name="user_id")
    recs = recs[recs["user_id"].isin(users)]
    frame = M.ranking_metrics_per_user(recs, relevant, k)
    if recs.empty:
        for col in ("ild_category", "ild_tfidf", "novelty"):
            frame[col] = np.nan
        return frame
    frame["ild_category"] = M.intra_list_diversity_category_per_user(recs, context.categories, k).reindex(users)
    frame["ild_tfidf"] = M.intra_list_diversity_vectors_per_user(
        recs, context.item_vectors, context.catalog, k).reindex(users)
    frame["novelty"] = M.novelty_per_user(recs, context.popularity, k).reindex(users)
    return frame


def _coverage_row(recommended: pd.DataFrame, users: pd.Index, catalog: pd.Index, k: int) -> dict[str, Any]:
    """Catalog coverage of the users' lists, without an interval: coverage is
    a statistic of the whole set of lists, and resampling users with
    replacement (about 63% distinct users per resample) biases it downwards,
    so a percentile interval would not cover the estimate. Its spread is
    reported across seeds instead."""
    recs = recommended[recommended["user_id"].isin(users)]
    value = M.catalog_coverage(recs, catalog, k) if len(recs) else 0.0
    return {"metric": "coverage", "mean": value, "ci_low": np.nan, "ci_high": np.nan, "n_users": len(users)}


# -- the result --------------------------------------------------------------------------------------------------------
@dataclass
class ComparisonResult:
    """Everything :func:`run_comparison` measured.

    ``table``: tidy ``model, group, metric, mean, ci_low, ci_high, n_users``
    (warm test users). ``cold_table``: the same for cold-start users.
    ``timings``: ``model, group, fit_seconds, recommend_seconds, n_users``.
    ``per_user`` / ``cold_per_user``: model -> users x metrics frames (for
    paired tests). ``sweep``: validation metrics per simplex weight vector.
    ``skipped``: models that refused to fit at this size, with the reason.
    """

    config: ComparisonConfig
    split: TemporalSplit
    validation: TemporalSplit
    table: pd.DataFrame
    cold_table: pd.DataFrame
    timings: pd.DataFrame
    per_user: dict[str, pd.DataFrame]
    cold_per_user: dict[str, pd.DataFrame]
    sweep: pd.DataFrame
    best_weights: FusionWeights
    groups: dict[str, str] = field(default_factory=dict)
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["model", "group", "reason"]))

    def wide(self, metrics: Sequence[str] | None = None, cold: bool = False) -> pd.DataFrame:
        """One row per model, ``<metric>`` and ``<metric>_ci`` columns (``"[lo, hi]"``)."""
        table = self.cold_table if cold else self.table
        metrics = list(metrics) if metrics is not None else list(dict.fromkeys(table["metric"]))
        rows = []
        for model, part in table.groupby("model", sort=False):
            row: dict[str, Any] = {"model": model, "group": self.groups.get(model, "")}
            for _, r in part.set_index("metric").loc[metrics].iterrows():
                row[r.name] = r["mean"]
                row[f"{r.name}_ci"] = f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
            rows.append(row)
        return pd.DataFrame(rows)

    def paired(self, reference: str = "hybrid", others: Sequence[str] | None = None,
               metrics: Sequence[str] = ("ndcg", "recall", "precision", "map", "hit_rate")) -> pd.DataFrame:
        """Paired bootstrap differences ``reference - other`` on the warm test users."""
        others = list(others) if others is not None else [m for m in self.per_user if m != reference]
        return paired_differences(self.per_user, reference, others, metrics, self.config.n_boot,
                                  self.config.confidence, self.config.seed)


def paired_differences(
    per_user: Mapping[str, pd.DataFrame], reference: str, others: Sequence[str], metrics: Sequence[str],
    n_boot: int = 1000, confidence: float = 0.95, seed: int = 0,
) -> pd.DataFrame:
    """``reference, other, metric, difference, ci_low, ci_high, p_value, verdict, n_users``
    from :func:`~recsys.evaluation.statistics.paired_bootstrap` (difference = reference - other)."""
    if reference not in per_user:
        raise ValueError(f"unknown reference model {reference!r}; known: {list(per_user)}")
    missing = [o for o in others if o not in per_user]
    if missing:
        raise ValueError(f"unknown model(s) {missing}; known: {list(per_user)}")
    rows = []
    for other in others:
        for metric in metrics:
            d = paired_bootstrap(per_user[reference][metric], per_user[other][metric], n_boot, confidence, seed)
            rows.append({"reference": reference, "other": other, "metric": metric, "difference": d.difference,
                         "ci_low": d.ci_low, "ci_high": d.ci_high, "p_value": d.p_value, "verdict": d.verdict,
                         "n_users": d.n})
    out = pd.DataFrame(rows)
    out.attrs["confidence"] = float(confidence)  # read by standing_sentences
    return out


def standing_sentences(paired: pd.DataFrame, metric: str = "ndcg", k: int = 10,
                       confidence: float | None = None) -> list[str]:
    """One sentence per compared model, read off the paired intervals, e.g.
    ``"hybrid vs popularity: NDCG@10 +0.0123 (95% CI [0.0040, 0.0210]): better"``.
    The level is ``confidence``, else the one :func:`paired_differences`
    recorded in ``paired.attrs``; a frame without either is refused."""
    level = confidence if confidence is not None else paired.attrs.get("confidence")
    if level is None:
        raise ValueError("standing_sentences: paired carries no confidence level (attrs lost?); pass confidence=")
    check_number("standing_sentences", "confidence", level, low=0, high=1, low_open=True, high_open=True)
    label = f"{METRIC_LABELS.get(metric, metric)}@{k}"
    part = paired[paired["metric"] == metric]
    return [
        f"{r.reference} vs {r.other}: {label} {r.difference:+.4f} ({100 * level:g}% CI [{r.ci_low:.4f}, "
        f"{r.ci_high:.4f}]): {r.verdict}"
        for r in part.itertuples(index=False)
    ]


# -- running models ----------------------------------------------------------------------------------------------------
def _timed_fit(model: Recommender, dataset: Dataset, interactions: Interactions) -> float:
    start = time.perf_counter()
    model.fit(dataset, interactions)
    return time.perf_counter() - start


def _timed_recommend(model: Recommender, users: Sequence[str], k: int) -> tuple[pd.DataFrame, float]:
    start = time.perf_counter()
    frame = model.recommend(list(users), n=k, exclude_purchased=True)
    return frame, time.perf_counter() - start


class PrecomputedScores(Recommender):
    """A fitted strategy whose scores for a fixed set of user rows are
    computed once and then served from memory (identical values), so a
    weight sweep does not rescore every component at every grid point."""

    def __init__(self, model: Recommender, rows: np.ndarray) -> None:
        self.model, self.name, self.reason = model, model.name, model.reason
        self.dataset_, self.interactions_ = model.dataset_, model.interactions_
        self.rows_ = np.asarray(rows, dtype=np.int64)
        self.scores_ = np.asarray(model.score_users(self.rows_), dtype=np.float64)
        self.position_ = pd.Index(self.rows_)

    def _fit(self, dataset: Dataset, interactions: Interactions) -> None:
        raise RuntimeError("PrecomputedScores wraps an already fitted model; it is not fitted itself")

    def score_users(self, rows: np.ndarray) -> np.ndarray:
        pos = self.position_.get_indexer(np.asarray(rows, dtype=np.int64))
        if (pos < 0).any():
            return self.model.score_users(rows)
        return self.scores_[pos]

    def reasons_for(self, rows: np.ndarray, scores: np.ndarray) -> str | np.ndarray:
        return self.model.reasons_for(rows, scores)


def sample_users(users: Sequence[str], max_users: int | None, seed: int) -> list[str]:
    """``users`` if ``max_users`` is None or not exceeded, else a seeded
    uniform sample of ``max_users`` of them without replacement (sorted)."""
    users = sorted(users)
    if max_users is None or len(users) <= max_users:
        return users
    picked = np.random.default_rng(seed).choice(len(users), size=max_users, replace=False)
    return [users[i] for i in np.sort(picked)]


def validation_sweep(
    components: Mapping[str, Recommender], split: TemporalSplit, grid: pd.DataFrame, k: int = 10,
    users: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Mean accuracy metrics on ``split`` (the validation split) of the hybrid
    at every weight vector of ``grid`` (:func:`~recsys.evaluation.sweep.weight_sweep`);
    components must be fitted on ``split.train``. One row per grid row:
    weights then metric means over ``users`` (default: all warm validation
    users). Component scores of these users are computed once and reused
    across the grid."""
    users = list(users) if users is not None else split.warm_users
    relevant = split.relevant[split.relevant["user_id"].isin(users)]
    rows_of_users = next(iter(components.values())).interactions_.user_index(users)
    cached = {s: PrecomputedScores(c, np.unique(rows_of_users)) for s, c in components.items()}

    def accuracy(recs: pd.DataFrame) -> dict[str, float]:
        return M.ranking_metrics_per_user(recs[["user_id", "product_id", "rank"]], relevant, k).mean().to_dict()

    return weight_sweep(cached, users, grid, k, metrics={"accuracy": accuracy})


def _best_weights(sweep: pd.DataFrame, metric: str) -> FusionWeights:
    """The grid point with the highest ``metric``; ties go to the first in grid order."""
    best = sweep.iloc[int(np.argmax(sweep[metric].to_numpy()))]
    return FusionWeights(**{s: float(best[s]) for s in STRATEGIES})


def _fit_factories(
    factories: Mapping[str, tuple[str, ModelFactory]], train: Dataset, interactions: Interactions,
    say: Callable[[str], None],
) -> tuple[dict[str, Recommender], dict[str, float], dict[str, str], list[dict[str, str]]]:
    """Fit every factory's model on ``train``: the fitted models, their fit seconds, their
    groups, and the peers skipped because they refuse this size (a hybrid strategy never is)."""
    fitted: dict[str, Recommender] = {}
    fit_seconds: dict[str, float] = {}
    groups: dict[str, str] = {}
    skipped = []
    for name, (group, factory) in factories.items():
        model = factory()
        try:
            fit_seconds[name] = _timed_fit(model, train, interactions)
        except ValueError as error:  # a peer that refuses this size (e.g. Surprise's dense k-NN)
            if name in HYBRID_COMPONENTS.values():
                raise
            skipped.append({"model": name, "group": group, "reason": str(error)})
            say(f"skipped {name}: {error}")
            continue
        fitted[name], groups[name] = model, group
        say(f"fitted {name}")
    return fitted, fit_seconds, groups, skipped


def _validation_tuned_weights(factories: Mapping[str, tuple[str, ModelFactory]], validation: TemporalSplit,
                              config: ComparisonConfig) -> tuple[pd.DataFrame, FusionWeights]:
    """The hybrid's weight sweep on the validation split (components refitted on its train part)
    and the best weights by ``config.sweep_metric``."""
    val_interactions = Interactions.from_dataset(validation.train)
    val_components = {}
    for s, name in HYBRID_COMPONENTS.items():
        model = factories[name][1]()
        model.fit(validation.train, val_interactions)
        val_components[s] = model
    val_users = sample_users(validation.warm_users, config.max_users, config.seed)
    sweep = validation_sweep(val_components, validation, simplex_grid(config.sweep_step), config.k, val_users)
    best = _best_weights(sweep, config.sweep_metric)
    return sweep, best


def run_comparison(
    dataset: Dataset,
    config: ComparisonConfig | None = None,
    factories: Mapping[str, tuple[str, ModelFactory]] | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> ComparisonResult:
    """Run the protocol of the module docstring over ``factories`` (default
    :func:`default_factories`) plus the hybrid family. ``factories`` must
    include the four hybrid strategies (:data:`HYBRID_COMPONENTS`)."""
    config = config or ComparisonConfig()
    factories = dict(factories) if factories is not None else default_factories(config.seed)
    missing = [name for name in HYBRID_COMPONENTS.values() if name not in factories]
    if missing:
        raise ValueError(f"factories must include the hybrid strategies {missing}")
    say = log or (lambda _msg: None)
    split = temporal_split(dataset, config.test_days, relevant_events=config.relevant_events)
    validation = validation_split(split, config.validation_days)
    warm = sample_users(split.warm_users, config.max_users, config.seed)
    cold = sample_users(split.cold_users, config.max_users, config.seed)
    relevant = split.relevant[split.relevant["user_id"].isin(warm)]
    cold_relevant = split.cold_relevant[split.cold_relevant["user_id"].isin(cold)]
    train_interactions = Interactions.from_dataset(split.train)

    fitted, fit_seconds, groups, skipped = _fit_factories(factories, split.train, train_interactions, say)
    components = {s: fitted[name] for s, name in HYBRID_COMPONENTS.items()}
    context = EvaluationContext.from_train(split.train, fitted[HYBRID_COMPONENTS["content"]].item_vectors_)

    # the hybrid family: the design's weights, leave-one-out, no business rules, tuned on validation
    seed_weights = split.train.config.fusion
    hybrids: dict[str, tuple[FusionWeights, bool]] = {"hybrid": (seed_weights, True)}
    for s in STRATEGIES:
        hybrids[f"hybrid_no_{s}"] = (leave_one_out_weights(seed_weights, s), True)
    hybrids["hybrid_no_rules"] = (seed_weights, False)

    sweep, best = _validation_tuned_weights(factories, validation, config)
    hybrids["hybrid_tuned"] = (best, True)
    say(f"weight sweep: {len(sweep)} points, best {best.as_dict()}")

    for name, (weights, rules) in hybrids.items():
        start = time.perf_counter()
        fitted[name] = hybrid_of(components, weights, rules)
        assembly = time.perf_counter() - start
        fit_seconds[name] = assembly + sum(fit_seconds[HYBRID_COMPONENTS[s]] for s in STRATEGIES
                                           if getattr(weights, s) > 0)
        groups[name] = "ablation" if name.startswith("hybrid_no_") else "hybrid"

    tables, cold_tables, timing_rows = [], [], []
    per_user: dict[str, pd.DataFrame] = {}
    cold_per_user: dict[str, pd.DataFrame] = {}
    users_index = pd.Index(warm, name="user_id")
    for name, model in fitted.items():
        recs, seconds = _timed_recommend(model, warm, config.k)
        per_user[name] = evaluate_recommendations(recs, relevant, context, config.k)
        table = bootstrap_table(per_user[name], config.n_boot, config.confidence, config.seed)
        coverage = _coverage_row(recs, users_index, context.catalog, config.k)
        tables.append(pd.concat([table, pd.DataFrame([coverage])], ignore_index=True).assign(model=name))
        timing_rows.append({"model": name, "group": groups[name], "fit_seconds": fit_seconds[name],
                            "recommend_seconds": seconds, "n_users": len(warm)})
        if cold:
            cold_recs = model.recommend(cold, n=config.k, exclude_purchased=True)
            cold_per_user[name] = evaluate_recommendations(cold_recs, cold_relevant, context, config.k)
            cold_tables.append(bootstrap_table(cold_per_user[name], config.n_boot, config.confidence,
                                               config.seed).assign(model=name))
        say(f"scored {name}")

    def tidy(frames: list[pd.DataFrame]) -> pd.DataFrame:
        if not frames:
            return pd.DataFrame(columns=["model", "group", "metric", "mean", "ci_low", "ci_high", "n_users"])
        out = pd.concat(frames, ignore_index=True)
        out["group"] = out["model"].map(groups)
        return out[["model", "group", "metric", "mean", "ci_low", "ci_high", "n_users"]]

    return ComparisonResult(
        config=config, split=split, validation=validation, table=tidy(tables), cold_table=tidy(cold_tables),
        timings=pd.DataFrame(timing_rows), per_user=per_user, cold_per_user=cold_per_user, sweep=sweep,
        best_weights=best, groups=groups,
        skipped=pd.DataFrame(skipped, columns=["model", "group", "reason"]),
    )


# -- multi-seed --------------------------------------------------------------------------------------------------------
def read_seed_tables(top: str | Path, table: str = "08_comparison.csv") -> dict[int, pd.DataFrame]:
    """The per-seed copies of ``tables/<table>`` under ``top/seed_<s>/`` (the
    layout of ``recsys run --seeds``), keyed by seed."""
    top = Path(top)
    out = {}
    for path in sorted(top.glob(f"seed_*/tables/{table}")):
        match = re.fullmatch(r"seed_(-?\d+)", path.parent.parent.name)
        if match:
            out[int(match.group(1))] = pd.read_csv(path)
    if not out:
        raise FileNotFoundError(f"no seed_*/tables/{table} under {top}")
    return dict(sorted(out.items()))
