"""Learned fusion: a LambdaRank model re-ranks the hybrid's candidates (LightGBM; Burges 2010, Ke et al. 2017).

The candidates, business rules and effective weights are the weighted
hybrid's (:mod:`recsys.models.hybrid`, steps 1-4); only the fusion step
changes. For user ``u`` and candidate ``i`` the ranker reads (:data:`FEATURES`):

- per strategy ``s``: the raw score ``s(u, i)`` (missing where ``-inf``), the
  score min-max normalised over ``C_u`` (as the weighted fusion uses it), the
  rank of ``i`` among ``C_u`` by ``s`` (1 = best) and ``w'_s(u)``, the
  strategy's effective weight (0 when it cannot answer ``u``);
- the user's history length ``log(1 + |I_u|)`` and days since their last event;
- the product's popularity ``log(1 + users)``, price, category (categorical)
  and days since its last event;
- the weighted fusion's score and rank of ``i`` (the ranker starts from it).

**Training** (:func:`train_ranker`): the strategies are fitted on the events
before a validation cut (``as_of - validation_days`` of the training data;
the test window is never read), the candidates of the validation users are
labelled 1 when the user carted/bought the product in the validation window
(not bought before), users with no relevant candidate are dropped (no
gradient), and ``lightgbm.LGBMRanker(objective="lambdarank")`` is fitted,
one query per user, seeded, one thread, ``deterministic=True``.

**Serving** (:class:`LearnedFusion`): the same booster over the strategies
fitted on all the training data. The fused score is ``sigmoid(margin)`` in
(0, 1); the per-strategy contributions are the weighted fusion's, rescaled to
sum to it, so the reason of a recommendation stays the strategy that
contributes most. The booster is kept as LightGBM's text model (no pickle).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import ConfigError, FusionWeights
from recsys.data.dataset import Dataset
from recsys.models.base import Recommender
from recsys.models.hybrid import STRATEGIES, HybridConfig, HybridRecommender
from recsys.validation import check_ints

__all__ = ["FEATURES", "LearnedFusion", "LearnedFusionConfig", "RankerFit", "served_fusion", "train_ranker"]

_PER_STRATEGY = ("score", "norm", "rank", "weight")
FEATURES: tuple[str, ...] = tuple(f"{s}_{f}" for s in STRATEGIES for f in _PER_STRATEGY) + (
    "user_history", "user_recency_days", "product_popularity", "product_price", "product_category",
    "product_recency_days", "weighted_score", "weighted_rank")
CATEGORY_FEATURE = FEATURES.index("product_category")


@dataclass(frozen=True)
class LearnedFusionConfig:
    """LambdaRank settings: ``n_estimators`` trees of ``num_leaves`` leaves at
    ``learning_rate``, ``min_child_samples`` per leaf, ``seed``;
    ``max_users``: seeded sample of validation users trained on (bounds time);
    ``validation_days``: the window cut from the end of the training data."""

    n_estimators: int = 200
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 20
    seed: int = 42
    max_users: int = 4000
    validation_days: float = 28.0

    def __post_init__(self) -> None:
        check_ints(self, "n_estimators", "num_leaves", "min_child_samples", "max_users")
        if not (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate <= 1):
            raise ConfigError(f"LearnedFusionConfig.learning_rate must be in (0, 1], got {self.learning_rate!r}")
        if not (isinstance(self.validation_days, (int, float)) and self.validation_days > 0):
            raise ConfigError(f"LearnedFusionConfig.validation_days must be > 0, got {self.validation_days!r}")


def _booster(model: str) -> Any:
    import lightgbm

    return lightgbm.Booster(model_str=model)


class LearnedFusion(HybridRecommender):
    """The weighted hybrid's candidates, re-ranked by a LambdaRank booster
    (see the module docstring). ``model``: the booster as LightGBM text."""

    name = "hybrid_learned"

    def __init__(self, model: str | None, weights: FusionWeights | Mapping[str, float] | None = None,
                 config: HybridConfig | None = None, components: Any = None) -> None:
        if model is not None and (not isinstance(model, str) or not model.startswith("tree")):
            raise ConfigError("LearnedFusion needs a LightGBM text model (Booster.model_to_string()) or None "
                              "(candidates and features only, for training)")
        super().__init__(weights, config, components)
        self.model = model
        self.booster_ = _booster(model) if model is not None else None

    @classmethod
    def from_fitted(cls, components: Mapping[str, Recommender], weights: Any = None,  # type: ignore[override]
                    config: HybridConfig | None = None, model: str | None = None) -> LearnedFusion:
        """Wrap fitted strategies (sharing one index) with a trained booster
        (``model=None``: :meth:`candidate_features` only)."""
        fusion = cls(model, weights, config)
        fusion._attach(dict(components))
        return fusion

    def _prepare_rules(self, dataset: Dataset) -> None:
        super()._prepare_rules(dataset)
        products, inter = dataset.products, self.interactions_
        as_of = dataset.as_of
        events = dataset.events
        last_p = events.groupby("product_id", observed=True)["timestamp"].max().reindex(inter.product_ids)
        last_u = events.groupby("user_id", observed=True)["timestamp"].max().reindex(inter.user_ids)
        days = pd.Timedelta(days=1)
        self.product_features_ = np.column_stack([
            np.log1p(np.diff(inter.matrix.tocsc().indptr)),
            products.set_index("product_id")["price"].reindex(inter.product_ids).to_numpy(dtype=np.float64),
            self.category_codes_.astype(np.float64),
            ((as_of - last_p) / days).to_numpy(dtype=np.float64),
        ])
        self.user_features_ = np.column_stack([np.log1p(np.diff(inter.matrix.indptr)),
                                               ((as_of - last_u) / days).to_numpy(dtype=np.float64)])

    def features(self, rows: np.ndarray, cand: np.ndarray, valid: np.ndarray, blocks: Mapping[str, np.ndarray],
                 weights: np.ndarray, contrib: np.ndarray | None = None) -> np.ndarray:
        """Feature tensor (rows x candidates x :data:`FEATURES`), float32, NaN where missing."""
        n_rows, width = cand.shape
        out = np.full((n_rows, width, len(FEATURES)), np.nan, dtype=np.float32)
        r = np.arange(n_rows)[:, None]
        for j, s in enumerate(STRATEGIES):
            base = 4 * j
            out[:, :, base + 3] = weights[:, j][:, None]
            if s not in blocks:
                continue
            at = getattr(blocks, "at_candidates", {})
            raw = at[s] if s in at else blocks[s][r, cand]
            finite = np.isfinite(raw) & valid
            out[:, :, base] = np.where(finite, raw, np.nan)
            out[:, :, base + 1] = self._normalize(raw, valid)
            order = np.argsort(-np.where(finite, raw, -np.inf), axis=1, kind="stable")
            ranks = np.empty_like(order)
            np.put_along_axis(ranks, order, np.arange(1, width + 1)[None, :], axis=1)
            out[:, :, base + 2] = np.where(finite, ranks, np.nan)
        known = rows >= 0
        user = np.where(known[:, None], self.user_features_[np.where(known, rows, 0)], np.nan)
        out[:, :, 16:18] = user[:, None, :]
        out[:, :, 18:22] = self.product_features_[cand]
        if contrib is not None:  # the weighted fusion's own score and rank: the ranker starts from it
            fused = np.where(valid, contrib.sum(axis=0), -np.inf)
            order = np.argsort(-fused, axis=1, kind="stable")
            ranks = np.empty_like(order)
            np.put_along_axis(ranks, order, np.arange(1, width + 1)[None, :], axis=1)
            out[:, :, 22] = np.where(valid, fused, np.nan)
            out[:, :, 23] = np.where(valid, ranks, np.nan)
        return out

    def candidate_features(self, rows: np.ndarray, n: int = 1, exclude_purchased: bool = True) -> tuple:
        """The weighted hybrid's candidates of ``rows`` and their features:
        ``(cand, valid, x, (contrib, blocks, weights))``."""
        cand, valid, _, contrib, blocks, weights = super()._fuse(rows, n, exclude_purchased)
        return cand, valid, self.features(rows, cand, valid, blocks, weights, contrib), (contrib, blocks, weights)

    def _fuse(self, rows: np.ndarray, n: int, exclude_purchased: bool) -> tuple:
        if self.booster_ is None:
            raise RuntimeError("this LearnedFusion has no trained model (built for training: candidate_features only)")
        cand, valid, x, (contrib, blocks, weights) = self.candidate_features(rows, n, exclude_purchased)
        margin = self.booster_.predict(x.reshape(-1, len(FEATURES)), num_threads=1).reshape(cand.shape)
        learned = 1.0 / (1.0 + np.exp(-margin))
        total = contrib.sum(axis=0)
        scale = np.where(total > 0, learned / np.where(total > 0, total, 1.0), 0.0)
        contrib = contrib * scale[None]
        ri, ci = np.nonzero(valid & ~(total > 0))  # no weighted contribution: credit the strongest-weighted strategy
        contrib[np.argmax(weights, axis=1)[ri], ri, ci] = learned[ri, ci]
        return cand, valid, np.where(valid, learned, -np.inf), contrib, blocks, weights

    def describe(self) -> dict[str, object]:
        info = super().describe()
        if self.booster_ is None:
            return info
        importance = self.booster_.feature_importance(importance_type="gain")
        info.update({"fusion": "learned (LightGBM LambdaRank)", "trees": self.booster_.num_trees(),
                     "gain_by_feature": {f: round(float(g), 3) for f, g in zip(FEATURES, importance, strict=True)}})
        return info


@dataclass
class RankerFit:
    """A trained ranker: ``model`` (LightGBM text), the validation window
    (``cut``, ``users`` trained on, ``queries`` with a relevant candidate,
    ``rows``), ``candidate_recall`` (share of relevant validation pairs among
    the candidates), ``seconds``."""

    model: str = field(repr=False)
    cut: str
    users: int
    queries: int
    rows: int
    candidate_recall: float
    seconds: float


def train_ranker(train: Dataset, parts_on: Any, weights: FusionWeights, hybrid_config: HybridConfig | None = None,
                 config: LearnedFusionConfig | None = None,
                 relevant_events: tuple[str, ...] | None = None) -> RankerFit:
    """Fit the LambdaRank booster on a validation window cut from ``train``
    (module docstring). ``parts_on(dataset) -> {strategy: fitted model}`` fits
    the strategies on the data it is given (the pre-validation events here)."""
    import time

    import lightgbm

    from recsys.evaluation.comparison import sample_users
    from recsys.evaluation.split import validation_split

    config = config or LearnedFusionConfig()
    started = time.perf_counter()
    kinds = relevant_events or tuple(t for t in ("purchase", "cart") if t in set(train.events["event_type"].unique()))
    split = validation_split(train, config.validation_days, relevant_events=kinds or ("purchase",))
    parts = parts_on(split.train)
    users = sample_users(split.warm_users, config.max_users, config.seed)
    inter = next(iter(parts.values())).interactions_
    rows = inter.user_index(users)
    relevant = split.relevant[split.relevant["user_id"].isin(users)]
    pid = {p: i for i, p in enumerate(inter.product_ids)}
    uid = {u: i for i, u in enumerate(users)}
    wanted = set(zip(relevant["user_id"].map(uid), relevant["product_id"].map(pid).fillna(-1).astype(int),
                     strict=True))
    fusion = LearnedFusion.from_fitted(parts, weights, hybrid_config, model=None)
    xs, ys, groups, hits = [], [], [], 0
    for start in range(0, len(rows), 256):
        cand, valid, x, _ = fusion.candidate_features(rows[start:start + 256])
        for i in range(len(cand)):
            keep = valid[i]
            y = np.array([(start + i, int(c)) in wanted for c in cand[i][keep]], dtype=np.int32)
            hits += int(y.sum())
            if y.any():
                xs.append(x[i][keep])
                ys.append(y)
                groups.append(int(keep.sum()))
    if not groups:
        raise ValueError("no validation user has a relevant product among the candidates: nothing to learn from")
    ranker = lightgbm.LGBMRanker(
        objective="lambdarank", n_estimators=config.n_estimators, learning_rate=config.learning_rate,
        num_leaves=config.num_leaves, min_child_samples=config.min_child_samples, random_state=config.seed,
        n_jobs=1, deterministic=True, force_row_wise=True, verbose=-1)
    ranker.fit(np.concatenate(xs), np.concatenate(ys), group=groups, feature_name=list(FEATURES),
               categorical_feature=[CATEGORY_FEATURE])
    return RankerFit(model=ranker.booster_.model_to_string(), cut=str(split.cut), users=len(users),
                     queries=len(groups), rows=int(sum(groups)), candidate_recall=hits / max(len(relevant), 1),
                     seconds=time.perf_counter() - started)


def served_fusion(components: Mapping[str, Recommender], weights: FusionWeights, config: HybridConfig | None,
                  model: str | None) -> HybridRecommender:
    """The engine's Stage 3: the learned fusion when a ranker ``model`` was trained, else the weighted hybrid."""
    if model is None:
        return HybridRecommender.from_fitted(components, weights, config)
    return LearnedFusion.from_fitted(components, weights, config, model=model)
