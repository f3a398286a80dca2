"""Spending tiers from a per-user measure, shared by the real-data loaders
(Online Retail: total spend; MovieLens: number of purchases)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.config import DEFAULT_CONFIG, RecsysConfig

__all__ = ["spending_tiers_by_rank"]


def spending_tiers_by_rank(values: np.ndarray | pd.Series, config: RecsysConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Equal-size rank bins of ``values`` -> the configured spending tiers,
    lowest first (terciles for budget/mid/premium); ties broken by order:
    tier index ``floor((rank - 1) * k / n)`` with ``rank`` 1..n by
    ``rank(method="first")`` and ``k`` tiers."""
    names = np.asarray(config.spending_tier_names, dtype=object)
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return np.asarray([], dtype=object)
    ranks = pd.Series(values).rank(method="first").to_numpy()
    codes = np.floor((ranks - 1) * len(names) / len(values)).astype(int)
    return names[np.clip(codes, 0, len(names) - 1)]
