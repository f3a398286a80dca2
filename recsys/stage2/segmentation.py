"""Stage 2 user segmentation: standardized behavioural features, clustered by the persona-blind choice.

Features per user (never an id or a name), in groups:

============== ===============================================================
age            age in years (missing: the median age, counted in ``n_imputed_``)
region         one-hot over the configured regions
activity       ``log1p`` of the number of events and of distinct sessions
spending_tier  ordinal position in the configured tiers (budget=0 < mid < premium)
interaction    event-type mix (share of each event type) and category shares
               (share of the user's events per product category)
price_sens     the user's price sensitivity (missing: the median)
============== ===============================================================

Every column is z-scored (``StandardScaler``), so each column carries unit
variance and a group weighs as many columns as it has (interaction: 15,
region: 4, the others 1-2). ``group_balance=True`` instead scales each
group's columns by ``sqrt(w_g / n_g)`` (``n_g`` columns, weight ``w_g``,
default 1), giving every group the same total variance; it is an option,
reported as an ablation, not the default.

The rows are then clustered by ``SegmentationConfig.method``, one of
:data:`~recsys.stage2.segment_methods.METHODS` (K-Means or a Gaussian mixture
on the features, K-Means on PureSVD user factors, or on both), or ``"auto"``
(the default): the method the persona-blind rule of
:mod:`recsys.stage2.segment_methods` picks (stability, then silhouette; the
rule of notebook 04's comparison, measured here on a seeded sample of at most
``selection_sample`` users); the choice and its table are reported in
``clustering_info``. Segments are renumbered by decreasing size (ties:
centroid order) so that ``segment_0`` is the largest. Agreement with the
hidden personas of synthetic data is measured only in
:func:`persona_agreement`, never in fitting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.preprocessing import StandardScaler

from recsys.config import EVENT_TYPES
from recsys.data.dataset import Dataset
from recsys.validation import ConfigError, check_ints

__all__ = [
    "FEATURE_GROUPS",
    "dominant_value",
    "relabel_by_size",
    "SegmentationConfig",
    "UserSegmentation",
    "elbow_curve",
    "persona_agreement",
    "persona_confusion",
    "persona_matching",
    "user_feature_frame",
]

FEATURE_GROUPS: dict[str, str] = {
    "age": "Demographics: age",
    "region": "Demographics: region (one-hot)",
    "activity": "Activity level (log events, log sessions)",
    "spending_tier": "Spending tier (ordinal)",
    "interaction": "Interaction patterns (event-type mix, category shares)",
    "price_sensitivity": "Price sensitivity",
}
"""Feature group -> the description reported in ``clustering_info['features_used']``."""


ALGORITHMS = {"kmeans_features": "K-Means", "gmm_features": "Gaussian mixture (diagonal)",
              "kmeans_svd": "K-Means", "kmeans_features_svd": "K-Means"}
"""Segmentation method -> the ``algorithm`` reported in ``clustering_info`` (the seed's field; the input
space is ``method`` and ``features_used``)."""


@dataclass(frozen=True)
class SegmentationConfig:
    """Segmentation settings (SPEC: 8 segments). ``method``: ``"auto"`` (the
    persona-blind choice, module docstring) or one of
    :data:`~recsys.stage2.segment_methods.METHODS`; ``svd_rank``: rank of the
    behaviour embedding; ``selection_seeds`` / ``selection_sample``: seeds and
    users (seeded sample) the ``auto`` choice measures stability on."""

    n_clusters: int = 8
    n_init: int = 10
    random_state: int = 42
    group_balance: bool = False
    group_weights: Mapping[str, float] = field(default_factory=dict)
    silhouette_sample: int = 5000
    method: str = "auto"
    svd_rank: int = 16
    selection_seeds: int = 3
    selection_sample: int = 5000

    def __post_init__(self) -> None:
        check_ints(self, "n_init", "silhouette_sample", "svd_rank", "selection_sample")
        check_ints(self, "selection_seeds", low=2)
        if self.method != "auto" and self.method not in ALGORITHMS:
            raise ConfigError(f"SegmentationConfig.method must be 'auto' or one of {list(ALGORITHMS)}, "
                              f"got {self.method!r}")
        check_ints(self, "n_clusters", low=2)
        object.__setattr__(self, "group_weights", dict(self.group_weights))
        unknown = sorted(set(self.group_weights) - set(FEATURE_GROUPS))
        if unknown:
            raise ConfigError(f"SegmentationConfig.group_weights has unknown groups {unknown}; known: {list(FEATURE_GROUPS)}")
        bad = {g: w for g, w in self.group_weights.items() if not w >= 0}
        if bad:
            raise ConfigError(f"SegmentationConfig.group_weights must be >= 0, got {bad}")


def user_feature_frame(dataset: Dataset) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Raw (unscaled) features per user, indexed by ``user_id`` in the data
    set's user order, and the columns of each feature group."""
    cfg = dataset.config
    users = dataset.users.set_index("user_id")
    events = dataset.events
    index = users.index
    groups: dict[str, list[str]] = {}
    cols: dict[str, np.ndarray] = {}

    cols["age"] = users["age"].to_numpy(dtype=float)
    groups["age"] = ["age"]

    for region in cfg.region_names:
        cols[f"region={region}"] = (users["region"] == region).to_numpy(dtype=float)
    groups["region"] = [f"region={r}" for r in cfg.region_names]

    codes = dataset.event_index()  # per-event rows and codes, shared (no string matching here)
    row = codes.user_row  # int32; packed keys below in the narrowest integer type that holds them
    n_events = np.bincount(row, minlength=len(index)).astype(float)
    # distinct (user, session) pairs: one packed key per event, made unique (by hashing: counts only)
    session = pd.factorize(events["session_id"])[0]
    base = int(session.max(initial=0)) + 1
    pairs = pd.unique(row.astype(np.int64) * base + session)
    del session
    n_sessions = np.bincount(pairs // base, minlength=len(index)).astype(float)
    cols["log_events"] = np.log1p(n_events)
    cols["log_sessions"] = np.log1p(n_sessions)
    groups["activity"] = ["log_events", "log_sessions"]

    tier_rank = {name: i for i, name in enumerate(cfg.spending_tier_names)}
    cols["spending_tier"] = users["spending_tier"].map(tier_rank).to_numpy(dtype=float)
    groups["spending_tier"] = ["spending_tier"]

    denom = np.maximum(n_events, 1.0)
    per_kind = np.bincount(_packed(row, len(EVENT_TYPES), codes.kind), minlength=len(index) * len(EVENT_TYPES))
    for j, event_type in enumerate(EVENT_TYPES):
        cols[f"share_{event_type}"] = per_kind.reshape(len(index), -1)[:, j] / denom
    category = dataset.products["category"]
    categories = list(dict.fromkeys(list(cfg.categories) + sorted(set(category) - set(cfg.categories))))
    event_category = pd.Index(categories).get_indexer(category).astype(np.int32)[codes.product_col]
    per_cat = np.bincount(_packed(row, len(categories), event_category), minlength=len(index) * len(categories))
    for j, cat in enumerate(categories):
        cols[f"cat={cat}"] = per_cat.reshape(len(index), -1)[:, j] / denom
    groups["interaction"] = [f"share_{e}" for e in EVENT_TYPES] + [f"cat={c}" for c in categories]

    cols["price_sensitivity"] = users["price_sensitivity"].to_numpy(dtype=float)
    groups["price_sensitivity"] = ["price_sensitivity"]
    return pd.DataFrame(cols, index=index), groups


def _packed(row: np.ndarray, width: int, column: np.ndarray) -> np.ndarray:
    """``row * width + column`` per event (``0 <= column < width``), in int32 when every
    key fits (half the memory of int64 over millions of events), else int64."""
    dtype = np.int32 if (int(row.max(initial=0)) + 1) * width <= np.iinfo(np.int32).max else np.int64
    return row.astype(dtype) * dtype(width) + column.astype(dtype)


class UserSegmentation:
    """Segments of users (see the module docstring for the features and the method).

    Learned state: ``labels_`` (Series user_id -> segment), ``features_``
    (raw features), ``scaler_``, ``method_`` (the method fitted), ``model_``
    (its estimator), ``selection_`` (the ``auto`` choice's table, else None),
    ``spaces_``, ``feature_groups_``, ``n_imputed_`` (missing values filled
    per column), ``silhouette_`` (in the method's space), ``inertia_``.
    """

    algorithm = "K-Means"
    """The algorithm of ``method="kmeans_features"`` (the Spark path's)."""

    def __init__(self, config: SegmentationConfig | None = None) -> None:
        self.config = config or SegmentationConfig()

    # -- fitting --------------------------------------------------------------
    def fit(self, dataset: Dataset, interactions: Any = None) -> UserSegmentation:
        """Features, the method (``auto``: the blind choice) and its segments; ``interactions``: the
        data set's shared matrix when already built (the SVD embedding reuses it)."""
        if not isinstance(dataset, Dataset):
            raise TypeError(f"fit expects a recsys Dataset, got {type(dataset).__name__}")
        k = self.config.n_clusters
        if dataset.n_users <= k:
            raise ValueError(f"cannot form {k} segments from {dataset.n_users} users: need more users than n_clusters")
        raw, groups = user_feature_frame(dataset)
        self.fill_values_ = raw.median().fillna(0.0)
        self.n_imputed_ = raw.isna().sum()
        self.features_ = raw
        self.feature_groups_ = groups
        self.scaler_ = StandardScaler().fit(raw.fillna(self.fill_values_).to_numpy())
        self.column_weights_ = self._column_weights(groups, list(raw.columns))
        X = self.transform_features(raw)
        self._fit_method(dataset, X, raw.index, interactions)
        self.users_ = dataset.user_features().set_index("user_id")
        self.data_config_ = dataset.config
        return self

    def _fit_method(self, dataset: Dataset, X: np.ndarray, index: pd.Index, interactions: Any) -> None:
        """Choose the method (``auto``: the blind rule on a sample), cluster, renumber by size."""
        from recsys.stage2 import segment_methods as sm

        cfg, k, seed = self.config, self.config.n_clusters, self.config.random_state
        needs_svd = cfg.method == "auto" or cfg.method.endswith("svd")
        self.spaces_ = sm.embed(dataset, X, index, cfg.svd_rank if needs_svd else None, seed, interactions)
        self.method_, self.selection_ = cfg.method, None
        if cfg.method == "auto":
            rows = np.sort(np.random.default_rng(seed).permutation(len(index))[:cfg.selection_sample])
            sample = sm.Spaces(X[rows], self.spaces_.svd[rows], self.spaces_.scales, None, index[rows])
            self.selection_, _ = sm.measure(sample, sm.METHODS, k, cfg.selection_seeds, seed, cfg.n_init,
                                            cfg.silhouette_sample)
            self.method_ = sm.choose(self.selection_)
        x = self.spaces_.space(self.method_)
        self.model_ = sm.cluster(self.method_, x, k, seed, cfg.n_init)
        raw_labels = self.model_.predict(x)
        centers = np.vstack([x[raw_labels == c].mean(axis=0) if (raw_labels == c).any() else np.zeros(x.shape[1])
                             for c in range(k)])
        order = np.lexsort((np.arange(k), -np.bincount(raw_labels, minlength=k)))  # as relabel_by_size
        self.new_of_old_ = np.empty(k, dtype=np.int64)
        self.new_of_old_[order] = np.arange(k)
        labels, self.centers_ = self.new_of_old_[raw_labels], centers[order]
        self.labels_ = pd.Series(labels, index=index, name="segment")
        self.inertia_ = float(((x - self.centers_[labels]) ** 2).sum())
        self.silhouette_ = _silhouette(x, labels, cfg.silhouette_sample, seed)

    def _column_weights(self, groups: dict[str, list[str]], columns: list[str]) -> np.ndarray:
        weights = pd.Series(1.0, index=columns)
        for group, group_cols in groups.items():
            w = float(self.config.group_weights.get(group, 1.0))
            weights[group_cols] = np.sqrt(w / len(group_cols)) if self.config.group_balance else np.sqrt(w)
        return weights.to_numpy()

    def transform_features(self, raw: pd.DataFrame) -> np.ndarray:
        """Standardize (and group-balance) raw feature rows as at fit time."""
        self._check_fitted("scaler_")
        if list(raw.columns) != list(self.features_.columns):
            raise ValueError(f"feature columns {list(raw.columns)} differ from the fitted {list(self.features_.columns)}")
        return self.scaler_.transform(raw.fillna(self.fill_values_).to_numpy()) * self.column_weights_

    @property
    def X_(self) -> np.ndarray:
        """The scaled feature matrix the clustering was fitted on."""
        return self.transform_features(self.features_)

    def predict(self, dataset: Dataset) -> pd.Series:
        """Segment of every user of ``dataset`` (the fitted estimator in the fitted
        method's space: nearest centroid for K-Means, most likely component for the mixture)."""
        from recsys.stage2.segment_methods import embed_like

        self._check_fitted("model_")
        raw, _ = user_feature_frame(dataset)
        missing = [c for c in self.features_.columns if c not in raw.columns]
        if missing:
            raise ValueError(f"data set lacks feature columns {missing} seen at fit time")
        X = self.transform_features(raw[self.features_.columns])
        x = embed_like(self.spaces_, dataset, X, raw.index).space(self.method_)
        return pd.Series(self.new_of_old_[self.model_.predict(x)], index=raw.index, name="segment")

    # -- output ---------------------------------------------------------------
    def summary_frame(self) -> pd.DataFrame:
        """One row per segment: ``segment, size, avg_age, dominant_region,
        dominant_age_group, avg_price_sensitivity, dominant_spending_tier``
        (dominant = most frequent; ties: first in configured order)."""
        self._check_fitted("labels_")
        users = self.users_.loc[self.labels_.index].assign(segment=self.labels_.to_numpy())
        cfg = self.data_config_
        cfg_order = {
            "region": list(cfg.region_names),
            "age_group": list(cfg.age_group_names) + ["unknown"],
            "spending_tier": list(cfg.spending_tier_names),
        }
        rows = []
        for seg in range(self.config.n_clusters):
            part = users[users["segment"] == seg]
            rows.append({
                "segment": f"segment_{seg}",
                "size": int(len(part)),
                "avg_age": float(part["age"].mean()),
                "dominant_region": dominant_value(part["region"], cfg_order["region"]),
                "dominant_age_group": dominant_value(part["age_group"], cfg_order["age_group"]),
                "avg_price_sensitivity": float(part["price_sensitivity"].mean()),
                "dominant_spending_tier": dominant_value(part["spending_tier"], cfg_order["spending_tier"]),
            })
        return pd.DataFrame(rows)

    def summary(self) -> dict[str, Any]:
        """The design's ``/segments`` structure: ``user_segments`` (segment_i ->
        its six fields) and ``clustering_info`` (n_clusters, algorithm,
        features_used, plus the columns and the silhouette)."""
        frame = self.summary_frame().set_index("segment")
        segments = {
            seg: {k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}
            for seg, row in frame.to_dict(orient="index").items()
        }
        info: dict[str, Any] = {
            "n_clusters": self.config.n_clusters,
            "algorithm": ALGORITHMS[self.method_],
            "method": self.method_,
            "features_used": [FEATURE_GROUPS[g] for g in self.feature_groups_]
            + (["Behaviour embedding (PureSVD user factors)"] if self.method_.endswith("svd") else []),
            "feature_columns": list(self.features_.columns),
            "silhouette": round(self.silhouette_, 6),
        }
        if self.selection_ is not None:
            table = self.selection_.set_index("candidate")[["stability_ari", "silhouette"]].round(6)
            info["selection"] = {"rule": "stability (mean pairwise ARI over seeds, 2 decimals), then silhouette; "
                                 "personas never read", "users": int(min(self.config.selection_sample,
                                                                          len(self.labels_))),
                                 "candidates": table.to_dict(orient="index")}
        return {"user_segments": segments, "clustering_info": info}

    def profile(self, standardized: bool = True) -> pd.DataFrame:
        """Mean feature value per segment (rows ``segment_i``): z-scores by
        default (for a heat map), raw values otherwise."""
        self._check_fitted("labels_")
        raw = self.features_.fillna(self.fill_values_)
        values = pd.DataFrame(self.scaler_.transform(raw.to_numpy()), index=raw.index, columns=raw.columns) \
            if standardized else raw
        out = values.groupby(self.labels_.to_numpy()).mean()
        out.index = [f"segment_{i}" for i in out.index]
        return out

    def _check_fitted(self, attribute: str) -> None:
        if not hasattr(self, attribute):
            raise RuntimeError("UserSegmentation is not fitted: call fit(dataset) first")


def dominant_value(values: pd.Series, order: list[str]) -> str:
    """The most frequent value of ``values``, ties broken by ``order``; ``"none"`` when empty."""
    counts = values.value_counts()
    if counts.empty:
        return "none"
    best = counts.max()
    winners = set(counts.index[counts == best])
    ranked = [v for v in order if v in winners] + sorted(winners - set(order))
    return ranked[0]


def relabel_by_size(labels: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster labels renumbered by size (0 = largest; ties by old label), centers reordered to match."""
    sizes = np.bincount(labels, minlength=len(centers))
    order = np.lexsort((np.arange(len(centers)), -sizes))  # by size desc, then old label
    new_of_old = np.empty_like(order)
    new_of_old[order] = np.arange(len(order))
    return new_of_old[labels], centers[order]


def _silhouette(X: np.ndarray, labels: np.ndarray, sample: int, random_state: int) -> float:
    if len(np.unique(labels)) < 2:
        return float("nan")
    from recsys.stage2.segment_methods import silhouette

    return silhouette(X, labels, sample if len(X) > sample else None, random_state)


# --------------------------------------------------------------------------- evaluation
def elbow_curve(
    X: np.ndarray, ks: range | list[int] = range(2, 16), n_init: int = 10, random_state: int = 42,
    silhouette_sample: int = 5000,
) -> pd.DataFrame:
    """K-Means inertia (within-cluster sum of squares) and silhouette for each
    ``k``: ``k, inertia, silhouette``."""
    ks = list(ks)
    if not ks or min(ks) < 2 or max(ks) >= len(X):
        raise ValueError(f"ks must lie in 2..{len(X) - 1} (n_samples - 1), got {ks}")
    rows = []
    for k in ks:
        km = KMeans(n_clusters=k, n_init=n_init, random_state=random_state).fit(X)
        rows.append({"k": k, "inertia": float(km.inertia_),
                     "silhouette": _silhouette(X, km.labels_, silhouette_sample, random_state)})
    return pd.DataFrame(rows)


def _persona_series(personas: pd.DataFrame) -> pd.Series:
    if "user_id" not in personas.columns or len(personas.columns) < 2:
        raise ValueError(f"personas must have a user_id column and a persona column, got {list(personas.columns)}")
    column = "persona" if "persona" in personas.columns else personas.columns[1]
    return personas.set_index("user_id")[column]


def persona_confusion(labels: pd.Series, personas: pd.DataFrame) -> pd.DataFrame:
    """Counts of users per (segment, persona): rows ``segment_i``, columns personas."""
    truth = _persona_series(personas)
    common = labels.index.intersection(truth.index)
    if len(common) != len(labels):
        raise ValueError(f"{len(labels) - len(common)} segmented users have no persona; expected one for every user")
    table = pd.crosstab(labels.loc[common].to_numpy(), truth.loc[common].to_numpy())
    table.index = [f"segment_{i}" for i in table.index]
    table.index.name, table.columns.name = "segment", "persona"
    return table


def persona_matching(labels: pd.Series, personas: pd.DataFrame) -> pd.DataFrame:
    """The Hungarian one-to-one matching of segments to personas: per segment
    ``segment, size, matched_persona, matched_users, purity`` (share of the
    segment from its matched persona; ``"-"`` and 0 for an unmatched segment)."""
    table = persona_confusion(labels, personas)
    rows, cols = linear_sum_assignment(table.to_numpy(), maximize=True)
    match = dict(zip(rows, cols, strict=True))
    out = []
    for i, segment in enumerate(table.index):
        size = int(table.iloc[i].sum())
        matched = int(table.iat[i, match[i]]) if i in match else 0
        out.append({"segment": segment, "size": size,
                    "matched_persona": table.columns[match[i]] if i in match else "-",
                    "matched_users": matched, "purity": matched / size if size else 0.0})
    return pd.DataFrame(out)


def persona_agreement(labels: pd.Series, personas: pd.DataFrame) -> dict[str, float]:
    """Agreement of segments with the hidden personas: adjusted Rand index,
    NMI (arithmetic normalisation), and accuracy after Hungarian matching
    (``linear_sum_assignment`` on the confusion counts; with more segments
    than personas, or fewer, unmatched users count as errors)."""
    table = persona_confusion(labels, personas)
    truth = _persona_series(personas).loc[labels.index]
    rows, cols = linear_sum_assignment(table.to_numpy(), maximize=True)
    matched = int(table.to_numpy()[rows, cols].sum())
    return {
        "ari": float(adjusted_rand_score(truth.to_numpy(), labels.to_numpy())),
        "nmi": float(normalized_mutual_info_score(truth.to_numpy(), labels.to_numpy())),
        "hungarian_accuracy": matched / int(table.to_numpy().sum()),
        "n_segments": int(labels.nunique()),
        "n_personas": int(truth.nunique()),
    }
