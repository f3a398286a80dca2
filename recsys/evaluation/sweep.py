"""The weight simplex and the one weight sweep of the hybrid.

:func:`simplex_grid` lists every fusion weight vector whose coordinates are
multiples of ``step``; :func:`weight_sweep` re-ranks a set of users under
each of them (same fitted strategies, no refit) and measures each list
with the given metrics. The evaluation protocol
(:func:`recsys.evaluation.comparison.run_comparison`) sweeps validation
accuracy with it; the Stage 3 notebook sweeps overlap, diversity and
coverage.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import FusionWeights
from recsys.models.base import Recommender
from recsys.models.hybrid import STRATEGIES, HybridConfig, HybridRecommender
from recsys.research.analysis import overlap_at_k

__all__ = ["hybrid_of", "simplex_grid", "weight_sweep"]

Metric = Callable[[pd.DataFrame], "float | Mapping[str, float]"]


def simplex_grid(step: float = 0.2, strategies: Sequence[str] = STRATEGIES) -> pd.DataFrame:
    """Every weight vector on the simplex with coordinates in multiples of
    ``step`` (``1/step`` must be an integer), one row each, in lexicographic
    order: ``C(1/step + d - 1, d - 1)`` rows for ``d`` strategies (56 for
    step 0.2 and four strategies, 286 for 0.1)."""
    if isinstance(step, bool) or not isinstance(step, (int, float)):
        raise ValueError(f"step must be in (0, 1] and divide 1, got {step!r}")
    steps = round(1.0 / step) if step > 0 else 0
    if steps < 1 or not math.isclose(steps * step, 1.0, abs_tol=1e-9):
        raise ValueError(f"step must be in (0, 1] and divide 1, got {step!r}")
    rows = [c for c in itertools.product(range(steps + 1), repeat=len(strategies)) if sum(c) == steps]
    return pd.DataFrame(np.array(rows, dtype=np.float64) / steps, columns=list(strategies))


def hybrid_of(components: Mapping[str, Recommender], weights: FusionWeights, rules: bool = True) -> HybridRecommender:
    """A hybrid of the fitted ``components`` that have a positive weight
    (``rules=False``: without the stock and spending-tier rules)."""
    config = HybridConfig() if rules else HybridConfig(exclude_out_of_stock=False, spending_tier_filter=False)
    used = {s: c for s, c in components.items() if getattr(weights, s) > 0}
    return HybridRecommender.from_fitted(used, weights, config)


def _weights(grid: pd.DataFrame | Sequence[FusionWeights]) -> list[FusionWeights]:
    if isinstance(grid, pd.DataFrame):
        return [FusionWeights(**{s: float(v) for s, v in row.items()}) for row in grid.to_dict("records")]
    return [w if isinstance(w, FusionWeights) else FusionWeights(**w) for w in grid]


def weight_sweep(
    hybrid: HybridRecommender | Mapping[str, Recommender],
    user_ids: Sequence[str],
    grid: pd.DataFrame | Sequence[FusionWeights],
    n: int = 10,
    metrics: Mapping[str, Metric] | None = None,
    reference: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Re-rank ``user_ids`` (top-``n``, purchases excluded) under every weight
    vector of ``grid``: one row per vector with the four weights, then
    ``overlap_at_{n}`` with the ``reference`` lists (if given), then each
    metric of ``metrics`` applied to the recommendation frame (a metric
    returning a mapping adds one column per key).

    ``hybrid``: a fitted :class:`HybridRecommender` (re-weighted with
    :meth:`~HybridRecommender.with_weights`, its configuration kept) or
    fitted components by strategy name (:func:`hybrid_of` at each vector)."""
    users = list(user_ids)
    rows = []
    for w in _weights(grid):
        if isinstance(hybrid, HybridRecommender):
            model: Recommender = hybrid.with_weights(w)
        else:
            model = hybrid_of(hybrid, w)
        recs = model.recommend(users, n=n, exclude_purchased=True)
        row: dict[str, Any] = {s: float(getattr(w, s)) for s in STRATEGIES}
        if reference is not None:
            row[f"overlap_at_{n}"] = overlap_at_k(recs, reference, n)
        for name, metric in (metrics or {}).items():
            value = metric(recs)
            if isinstance(value, Mapping):
                row.update({str(k): float(v) for k, v in value.items()})
            else:
                row[name] = float(value)
        rows.append(row)
    return pd.DataFrame(rows)
