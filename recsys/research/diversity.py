"""The accuracy-diversity frontier of the hybrid's category cap (one-parameter business rule).

The rule (:class:`~recsys.models.hybrid.HybridConfig` ``category_cap = c``):
walking down the fused ranking, a product is skipped once ``c`` products of
its category are in the list. ``c = None`` is the unconstrained hybrid; ``c =
1`` gives ten categories in a top-10 when the catalogue has them.

:func:`category_cap_frontier` scores the same fitted components at every cap
on one set of users: mean NDCG@k and intra-list category diversity
(:func:`~recsys.evaluation.metrics.intra_list_diversity_category_per_user`, the
share of list pairs in different categories), each with a 95% bootstrap
interval over users, and the NDCG change against the uncapped hybrid with a
paired bootstrap interval. :func:`where_reached` reads off the loosest cap
whose diversity reaches a target (the design's 70%) and what it costs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import FusionWeights
from recsys.evaluation import metrics as M
from recsys.evaluation.statistics import bootstrap_table, paired_bootstrap
from recsys.models.base import Recommender

__all__ = ["category_cap_frontier", "where_reached"]


def category_cap_frontier(
    components: Mapping[str, Recommender],
    weights: FusionWeights,
    users: Sequence[str],
    relevant: pd.DataFrame,
    categories: pd.Series,
    caps: Sequence[int | None] = (None, 6, 5, 4, 3, 2, 1),
    k: int = 10,
    hybrid_config: Any = None,
    n_boot: int = 1000,
    seed: int = 42,
) -> pd.DataFrame:
    """One row per cap: ``cap, ndcg, ndcg_ci_low, ndcg_ci_high, ild_category,
    ild_ci_low, ild_ci_high, ndcg_change, change_ci_low, change_ci_high``
    (change = capped minus uncapped, paired over the same users).
    ``categories`` maps product id -> category; ``relevant`` holds
    ``user_id, product_id`` of the evaluation window."""
    import dataclasses

    from recsys.evaluation.comparison import PrecomputedScores
    from recsys.models.hybrid import HybridConfig, HybridRecommender

    base = hybrid_config or HybridConfig()
    users = list(users)
    first = next(iter(components.values()))
    rows_of = np.unique(first.interactions_.user_index(users))
    cached = {s: PrecomputedScores(c, rows_of) for s, c in components.items() if getattr(weights, s) > 0}
    index = pd.Index(sorted(set(relevant["user_id"]) & set(users)), name="user_id")
    per_cap: dict[Any, pd.DataFrame] = {}
    for cap in caps:
        model = HybridRecommender.from_fitted(cached, weights, dataclasses.replace(base, category_cap=cap))
        recs = model.recommend(users, n=k, exclude_purchased=True)[["user_id", "product_id", "rank"]]
        frame = M.ranking_metrics_per_user(recs, relevant, k)[["ndcg"]].reindex(index)
        frame["ild_category"] = M.intra_list_diversity_category_per_user(recs, categories, k).reindex(index)
        per_cap[cap] = frame
    reference = per_cap[caps[0]]["ndcg"]
    out = []
    for cap, frame in per_cap.items():
        ci = bootstrap_table(frame, n_boot, 0.95, seed).set_index("metric")
        change = paired_bootstrap(frame["ndcg"], reference, n_boot, 0.95, seed)
        out.append({"cap": "none" if cap is None else str(cap),
                    "ndcg": ci.loc["ndcg", "mean"], "ndcg_ci_low": ci.loc["ndcg", "ci_low"],
                    "ndcg_ci_high": ci.loc["ndcg", "ci_high"], "ild_category": ci.loc["ild_category", "mean"],
                    "ild_ci_low": ci.loc["ild_category", "ci_low"], "ild_ci_high": ci.loc["ild_category", "ci_high"],
                    "ndcg_change": change.difference, "change_ci_low": change.ci_low,
                    "change_ci_high": change.ci_high})
    return pd.DataFrame(out)


def where_reached(frontier: pd.DataFrame, target: float = 0.70) -> str:
    """A sentence: the loosest cap whose mean category diversity reaches
    ``target`` and its NDCG change with interval, or that no cap does."""
    hit = frontier[frontier["ild_category"] >= target]
    if hit.empty:
        best = frontier.iloc[int(np.argmax(frontier["ild_category"].to_numpy()))]
        return (f"no cap reaches {target:.0%} category diversity; the most diverse (cap {best['cap']}) reaches "
                f"{best['ild_category']:.1%}")
    r = hit.iloc[0]
    return (f"{target:.0%} category diversity is reached at cap {r['cap']} ({r['ild_category']:.1%}), "
            f"NDCG change {r['ndcg_change']:+.4f} (95% CI [{r['change_ci_low']:.4f}, {r['change_ci_high']:.4f}])")
