"""The four deal types: which fire for a user's products, and how strongly.

:class:`DealRules` holds their thresholds and weights; :func:`type_arrays`
scores a :class:`~recsys.deals.candidate_block.CandidateBlock`
(``high_affinity``, ``similar_to_viewed``, ``regional_seasonal``,
``personalized``; see :mod:`recsys.deals.candidates` for the definitions).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import ConfigError, PicklableMappings
from recsys.deals.candidate_block import CandidateBlock

__all__ = ["DEAL_TYPES", "DealRules", "deal_type_scores", "type_arrays", "type_labels"]

DEAL_TYPES: tuple[str, ...] = ("high_affinity", "similar_to_viewed", "regional_seasonal", "personalized")


@dataclass(frozen=True)
class DealRules(PicklableMappings):
    """Thresholds of the deal types, the ranking and how many deals to show.
    Pickles (through the constructor, so the checks run again on load).

    ``min_score``: with ``num_deals=None`` a user gets as many deals as have
    ``score >= min_score``, clipped to ``[min_deals, max_deals]`` of
    ``DealConfig`` (50 = the strength of two reasons at full strength, on
    the default equal weights). ``cover_types``: the best deal of every type that fires
    is taken first, then the rest by score (variety of reasons).
    """

    affinity_quantile: float = 0.8
    low_sales_quantile: float = 0.5
    similarity_quantile: float = 0.8
    behaviour_min: float = 0.25
    type_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    min_score: float = 50.0
    cover_types: bool = True
    exclude_purchased: bool = True
    apply_spending_tier: bool = True
    reasons: Mapping[str, str] = field(
        default_factory=lambda: {
            "high_affinity": "Limited Time Offer",
            "similar_to_viewed": "Similar to Items You Viewed",
            "regional_seasonal": "Seasonal Special",
            "personalized": "Personalized for You",
        }
    )

    def __post_init__(self) -> None:
        for name in ("affinity_quantile", "low_sales_quantile", "similarity_quantile", "behaviour_min"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"DealRules.{name} must be in [0, 1], got {value!r}")
        weights = tuple(float(w) for w in self.type_weights)
        if len(weights) != len(DEAL_TYPES) or min(weights) < 0 or sum(weights) <= 0:
            raise ConfigError(
                f"DealRules.type_weights must be {len(DEAL_TYPES)} weights >= 0 with a positive sum, "
                f"got {self.type_weights!r}"
            )
        object.__setattr__(self, "type_weights", weights)
        if not 0.0 <= self.min_score <= 100.0:
            raise ConfigError(f"DealRules.min_score must be in [0, 100], got {self.min_score!r}")
        missing = [t for t in DEAL_TYPES if t not in self.reasons]
        if missing:
            raise ConfigError(f"DealRules.reasons lacks a text for deal type(s) {missing}")
        object.__setattr__(self, "reasons", MappingProxyType(dict(self.reasons)))


# -- the four deal types ------------------------------------------------------------
def _rank_pct(values: np.ndarray, above: float | None = None) -> np.ndarray:
    """Row-wise percentile rank in (0, 1] among finite values: the average
    1-based rank of a tie group (as ``scipy.stats.rankdata``) over the number
    of finite values; NaN stays NaN. The tie group at a row's minimum (e.g.
    the zero similarity of most products) gets its rank without sorting it.

    ``above=q``: only ranks that may exceed ``q`` are computed (exactly);
    every finite value whose rank is surely ``<= q`` gets 0. With ``j =
    floor(q * count) - 1`` and ``cut`` the ``j``-th smallest value
    (``np.partition``), a value below ``cut`` has at most ``j`` values ``<=``
    it, so its rank is at most ``j / count < q``; the values ``>= cut`` (whole
    tie groups) are ranked among themselves, offset by the count below."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    out = np.full(values.shape, np.nan)
    for i, row in enumerate(values):
        finite = ~np.isnan(row)
        count = int(finite.sum())
        if not count:
            continue
        j = int(np.floor(above * count)) - 1 if above is not None else 0
        if j > 0:
            cut = np.partition(row[finite], j)[j]
            upper = np.flatnonzero(finite & (row >= cut))
            out[i, finite] = 0.0
            out[i, upper] = (_tie_bounds(row[upper]) + 2 * (count - len(upper)) + 2) / 2.0 / count
            continue
        low = row == row[finite].min()
        n_low = int(low.sum())
        out[i, low] = (n_low + 1) / 2.0 / count  # positions 0..n_low-1: (start + end + 2) / 2
        rest = np.flatnonzero(finite & ~low)
        if len(rest):
            out[i, rest] = (_tie_bounds(row[rest]) + 2 * n_low + 2) / 2.0 / count
    return out


def _tie_bounds(values: np.ndarray) -> np.ndarray:
    """``start + end`` (0-based sorted positions of the first and last member
    of each value's tie group) for finite 1-D ``values``."""
    n = len(values)
    order = np.argsort(values)  # the order within a tie group does not matter
    s = values[order]
    new = np.ones(n, dtype=bool)
    np.not_equal(s[1:], s[:-1], out=new[1:])  # a tie group starts here
    out = np.empty(n, dtype=np.int64)
    if new.all():  # no ties: start = end = the sorted position
        out[order] = np.arange(0, 2 * n, 2)
        return out
    starts = np.flatnonzero(new)
    bounds = np.append(starts, n)
    out[order] = np.repeat(starts + bounds[1:] - 1, np.diff(bounds))
    return out


def type_arrays(block: CandidateBlock, seasonal: np.ndarray, rules: DealRules,
                all_strengths: bool = True) -> dict[str, np.ndarray]:
    """Per user x product: fired masks (``<type>``), strengths
    (``<type>_strength``), ``affinity_pct``, ``any_type`` and ``score``.
    ``seasonal`` is the users x products mask of in-season categories.
    ``all_strengths=False`` (the generator): the similarity percentile is
    only computed where it can exceed ``similarity_quantile`` (elsewhere the
    type cannot fire and its strength is given as 0); masks and scores are
    the same."""
    aff_pct = _rank_pct(block.affinity)
    sales = block.arrays["sales"]
    low_sales = sales <= block.sales_quantile(rules.low_sales_quantile)
    sim_pct = _rank_pct(block.similarity_to_viewed, None if all_strengths else rules.similarity_quantile)
    behaviour = block.behaviour_score
    fired = {
        "high_affinity": (np.nan_to_num(aff_pct) > rules.affinity_quantile) & low_sales[None, :],
        "similar_to_viewed": (block.similarity_to_viewed > 0) & (np.nan_to_num(sim_pct) > rules.similarity_quantile),
        "regional_seasonal": np.asarray(seasonal, dtype=bool),
        "personalized": behaviour >= rules.behaviour_min,
    }
    strength = {
        "high_affinity": np.nan_to_num(aff_pct),
        "similar_to_viewed": np.nan_to_num(sim_pct),
        "regional_seasonal": np.where(np.isnan(aff_pct), 0.5, aff_pct),
        "personalized": behaviour,
    }
    out: dict[str, np.ndarray] = {"affinity_pct": aff_pct}
    total = np.zeros(block.affinity.shape)
    any_type = np.zeros(block.affinity.shape, dtype=bool)
    for t, w in zip(DEAL_TYPES, rules.type_weights, strict=True):
        out[t] = fired[t]
        out[f"{t}_strength"] = strength[t]
        total += w * fired[t] * strength[t]
        any_type |= fired[t]
    out["any_type"] = any_type
    out["score"] = 100.0 * total / sum(rules.type_weights)
    return out


def type_labels(fired: np.ndarray, rules: DealRules) -> tuple[list[str], list[str]]:
    """``deal_types`` ('|'-joined) and ``deal_reason`` (comma-separated
    reason texts) for the rows of a (rows x 4) fired matrix."""
    codes = np.asarray(fired, dtype=bool).reshape(-1, len(DEAL_TYPES)) @ (1 << np.arange(len(DEAL_TYPES)))
    table = {}
    for code in np.unique(codes):
        names = [t for k, t in enumerate(DEAL_TYPES) if code >> k & 1]
        table[code] = ("|".join(names), ", ".join(dict.fromkeys(rules.reasons[t] for t in names)))
    return [table[c][0] for c in codes], [table[c][1] for c in codes]


def deal_type_scores(candidates: pd.DataFrame, seasonal_categories: Any, rules: DealRules) -> pd.DataFrame:
    """Which types fire for one user's candidate frame, their strengths and
    the ranking score (same index as ``candidates``, which must be valid).

    Columns: ``affinity_pct``, ``<type>`` and ``<type>_strength`` for each
    of :data:`DEAL_TYPES`, ``any_type``, ``score`` (0..100), ``deal_types``
    and ``deal_reason``. ``seasonal_categories``: the user's in-season
    categories (``config.boosted_categories(region, season)``).
    """
    block = CandidateBlock.from_frame(candidates, "user")
    seasonal = np.isin(block.arrays["category"], list(seasonal_categories))[None, :]
    arrays = type_arrays(block, seasonal, rules)
    out = pd.DataFrame({k: v[0] for k, v in arrays.items()}, index=candidates.index)
    out["deal_types"], out["deal_reason"] = type_labels(out[list(DEAL_TYPES)].to_numpy(), rules)
    return out


# -- building candidates from a Dataset ---------------------------------------------
