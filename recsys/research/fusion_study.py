"""Fusion compared: the design's weights, the tuned weights (as served) and the learned LambdaRank fusion.

Protocol (:func:`compare_fusions`): an engine is trained on the training
split with ``tune=True`` (the served configuration: the tuner's strategies
and weights, chosen on a validation window of the training data, and the
fusion the tuner chose there); the learned fusion
(:mod:`recsys.models.learned_fusion`) is trained on the validation window
over strategies with the served settings, then re-ranks the candidates of
the strategies fitted on the whole training split. All three fusions share
the served strategies; they differ in the fusion step only. Each is scored once on the test window; differences are paired
bootstrap intervals over users (:func:`recsys.evaluation.comparison.paired_differences`).

What each strategy contributes (:func:`slot_shares`, :func:`ablation`):

- **share of slots won**: over every recommended slot, the strategy that
  ranks the product highest in its own catalogue ranking (ties: the order
  knn, svd, content, demographic) -- the strategy that nominated it most
  strongly, defined the same way for every fusion;
- **ablation**: the fusion refitted without one strategy (weights: its
  weight 0, the others renormalised; learned: ranker retrained without it),
  paired with the full fusion.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import FusionWeights
from recsys.data.dataset import Dataset
from recsys.evaluation import metrics as M
from recsys.models.hybrid import STRATEGIES, HybridRecommender
from recsys.models.learned_fusion import LearnedFusion, LearnedFusionConfig, train_ranker

__all__ = ["FusionComparison", "ablation", "compare_fusions", "engine_ranker", "served_parts_on", "slot_shares"]


def served_parts_on(engine_config: Any, keep: tuple[str, ...] = STRATEGIES) -> Any:
    """``dataset -> {strategy: fitted}`` with an engine's (tuned) settings: the
    strategies ``keep`` as the engine fits them (EASE in the collaborative slot when configured)."""
    from recsys.models.content import ContentRecommender
    from recsys.models.demographic import DemographicRecommender
    from recsys.research.tuning import fit_hybrid_components

    def parts_on(dataset: Dataset) -> dict[str, Any]:
        parts = fit_hybrid_components(dataset, engine_config.realtime.knn, engine_config.batch.svd,
                                      ContentRecommender(engine_config.content),
                                      DemographicRecommender(engine_config.realtime.fallback), ease=engine_config.ease,
                                      rp3beta=engine_config.rp3beta)
        return {s: parts[s] for s in keep}

    return parts_on


def engine_ranker(dataset: Dataset, engine_config: Any, weights: FusionWeights) -> str | None:
    """The ranker an engine with ``engine_config.learned_fusion`` serves (LightGBM text, trained on the
    validation window of ``dataset`` over strategies with the engine's settings); None without it.
    Deterministic (seeded, one thread), so a loaded engine retrains the same model."""
    if engine_config.learned_fusion is None:
        return None
    return train_ranker(dataset, served_parts_on(engine_config), weights, engine_config.hybrid,
                        engine_config.learned_fusion).model


def slot_shares(model: HybridRecommender, users: list[str], n: int = 10) -> pd.Series:
    """Share of the top-``n`` slots each strategy wins (module docstring), summing to 1."""
    rows = model.interactions_.user_index(users)
    wins = np.zeros(len(STRATEGIES))
    for start in range(0, len(rows), 256):
        top = model.fuse_rows(rows[start:start + 256], n)
        ranks = np.full((len(top.col), len(STRATEGIES)), np.inf)
        for j, s in enumerate(STRATEGIES):
            block = top.component_scores.get(s)
            if block is None:
                continue
            chosen = block[top.row, top.col]
            ranks[:, j] = (block[top.row] > chosen[:, None]).sum(axis=1) + 1
        winner = np.argmin(ranks, axis=1)
        wins += np.bincount(winner, minlength=len(STRATEGIES))
    return pd.Series(wins / max(wins.sum(), 1), index=list(STRATEGIES), name="share_of_slots")


def _per_user(model: HybridRecommender, users: list[str], relevant: pd.DataFrame, k: int) -> pd.DataFrame:
    recs = model.recommend(users, n=k)[["user_id", "product_id", "rank"]]
    return M.ranking_metrics_per_user(recs, relevant, k).reindex(pd.Index(users)).fillna(0.0)


@dataclass
class FusionComparison:
    """Per-user test metrics by fusion (``design``: 40/30/20/10, ``tuned``:
    the tuned weights, ``learned``: LambdaRank), the tuned weights, the
    ranker's text model and the fitted fusions."""

    per_user: dict[str, pd.DataFrame]
    weights: FusionWeights
    ranker: str
    models: dict[str, HybridRecommender]


def compare_fusions(train: Dataset, served: Any, users: list[str], relevant: pd.DataFrame, k: int = 10,
                    config: LearnedFusionConfig | None = None) -> FusionComparison:
    """The three fusions over the served strategies (``served``: an engine
    trained on ``train`` with ``tune=True``), scored on ``users``/``relevant``
    (the test window). The ranker is the served one when the engine serves the
    learned fusion, else trained the same way (``config``: default the engine's)."""
    parts = dict(served.hybrid_.components_)
    cfg = served.engine_config
    ranker = served.__dict__.get("ranker_") or engine_ranker(
        train, replace(cfg, learned_fusion=config or cfg.learned_fusion or LearnedFusionConfig()), served.weights)
    searched = (getattr(served, "tuning_", None) or {}).get("searched_fusion_weights")
    tuned = FusionWeights(**searched) if searched else served.weights  # the search's best, served or not
    models = {
        "design": HybridRecommender.from_fitted(parts, served.config.fusion, cfg.hybrid),
        "tuned": HybridRecommender.from_fitted(parts, tuned, cfg.hybrid),
        "learned": LearnedFusion.from_fitted(parts, served.weights, cfg.hybrid, model=ranker),
    }
    per_user = {name: _per_user(model, users, relevant, k) for name, model in models.items()}
    return FusionComparison(per_user, tuned, ranker, models)


def ablation(train: Dataset, comparison: FusionComparison, served: Any, users: list[str], relevant: pd.DataFrame,
             k: int = 10, config: LearnedFusionConfig | None = None) -> dict[str, pd.DataFrame]:
    """Per-user metrics of each fusion without one strategy: ``{"<fusion>_no_<s>": frame}``."""
    parts = comparison.models["tuned"].components_
    cfg = served.engine_config
    config = config or cfg.learned_fusion or LearnedFusionConfig()
    out: dict[str, pd.DataFrame] = {}
    for s in STRATEGIES:
        keep = tuple(t for t in STRATEGIES if t != s)
        rest = {t: parts[t] for t in keep}
        for label, weights in (("design", served.config.fusion), ("tuned", comparison.weights)):
            w = {t: (0.0 if t == s else getattr(weights, t)) for t in STRATEGIES}
            total = sum(w.values())
            if total <= 0:
                continue
            w = FusionWeights(**{t: v / total for t, v in w.items()})
            model = HybridRecommender.from_fitted(rest, w, cfg.hybrid)
            out[f"{label}_no_{s}"] = _per_user(model, users, relevant, k)
        w = {t: (0.0 if t == s else getattr(comparison.weights, t)) for t in STRATEGIES}
        if sum(w.values()) <= 0:
            w = {t: (0.0 if t == s else 1.0) for t in STRATEGIES}
        w = FusionWeights(**{t: v / sum(w.values()) for t, v in w.items()})
        fit = train_ranker(train, served_parts_on(cfg, keep), w, cfg.hybrid, config)
        model = LearnedFusion.from_fitted(rest, w, cfg.hybrid, model=fit.model)
        out[f"learned_no_{s}"] = _per_user(model, users, relevant, k)
    return out
