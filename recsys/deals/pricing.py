"""The deal pricing formula: the design's, exactly, vectorised over a candidate frame.

Seed formula (SPEC 'Deals'), per product ``i`` for user ``u``::

    base_discount   = regional_preference(u) + age_preference(u)
    demand_factor   = max(demand_floor, 1 - demand_score(i) / 100)      # demand_floor = 0.5
    seasonal_factor = 1.2 if category(i) is in season for u's region else 1.0
    final_discount  = min(max_discount, base * demand_factor * seasonal_factor)   # max_discount = 0.5

``regional_preference`` is the region's ``avg_discount``; ``age_preference``
the age group's ``deal_preference``; "in season" is
``config.boosted_categories(region, season)``. A user of unknown age (real
data) gets the mean ``deal_preference`` of the configured age groups.

Price sensitivity (the seed lists it as a factor but leaves it out of the
formula). This project's decision: with ``use_price_sensitivity`` on, the raw
discount is multiplied by

    sensitivity_factor = max(0, 1 + strength * (s_u - s_ref(u)))

where ``s_u`` is the user's price sensitivity and ``s_ref(u)`` the mean of
the region's and the age group's configured price sensitivity (the region's
alone for an unknown age). A user exactly as price-sensitive as the typical
person of their demographic keeps the design's discount; a more sensitive one
gets proportionally more, a less sensitive one less. The factor re-targets
discounts within a demographic rather than raising them across the board,
because the demographic level is already in ``base_discount``. A user whose
sensitivity is unknown (NaN) gets factor 1. Off (the default in
``DealConfig``) reproduces the seed exactly.

Extension point: ``extra_factors`` is a sequence of callables
``factor(candidates, user) -> array`` of non-negative multipliers, one per
candidate row (e.g. a loyalty factor); their product multiplies the raw
discount before the cap. Adding one needs no edit of this module.

The bounds ``[min_discount, max_discount]`` beyond the design's cap and the
margin floor are guardrails, applied in :mod:`recsys.deals.guardrails`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import DEFAULT_CONFIG, ConfigError, DealConfig, RecsysConfig

__all__ = [
    "PRICING_COLUMNS",
    "DealPricer",
    "PriceFactor",
    "UserProfile",
    "expiry_days",
    "seed_discount",
]

PriceFactor = Callable[[pd.DataFrame, Mapping[str, Any]], Any]
"""``factor(candidates, user) -> array`` of non-negative multipliers, one per row."""

PRICING_COLUMNS = [
    "regional_preference",
    "age_preference",
    "base_discount",
    "demand_factor",
    "is_seasonal",
    "seasonal_factor",
    "sensitivity_factor",
    "extra_factor",
    "raw_discount",
    "formula_discount",
]
"""Columns of :meth:`DealPricer.price`; ``formula_discount`` is the design's
``final_discount`` (when price sensitivity is off and there are no extra
factors)."""


def seed_discount(
    regional_preference: Any,
    age_preference: Any,
    demand_score: Any,
    is_seasonal: Any,
    *,
    cap: float = 0.5,
    demand_floor: float = 0.5,
    seasonal_factor: float = 1.2,
) -> np.ndarray:
    """The design's ``final_discount``, vectorised (numpy broadcasting)."""
    base = np.asarray(regional_preference, dtype=float) + np.asarray(age_preference, dtype=float)
    demand_factor = np.maximum(demand_floor, 1.0 - np.asarray(demand_score, dtype=float) / 100.0)
    seasonal = np.where(np.asarray(is_seasonal, dtype=bool), seasonal_factor, 1.0)
    return np.minimum(cap, base * demand_factor * seasonal)


def expiry_days(demand_score: Any, deals: DealConfig) -> np.ndarray:
    """Deal lifetime in whole days, shorter when demand is high:
    ``days = expiry_max - round((expiry_max - expiry_min) * demand_score / 100)``
    (demand 0 -> 7 days, demand 100 -> 1 day with the defaults; half-way
    values round to even)."""
    demand = np.clip(np.asarray(demand_score, dtype=float), 0.0, 100.0)
    span = deals.expiry_max_days - deals.expiry_min_days
    return (deals.expiry_max_days - np.rint(span * demand / 100.0)).astype(np.int64)


@dataclass(frozen=True)
class UserProfile:
    """The user attributes pricing and eligibility read, parsed and checked."""

    user_id: str
    region: str
    age_group: str  # a configured group or "unknown"
    spending_tier: str
    price_sensitivity: float  # NaN when unknown

    @classmethod
    def from_mapping(cls, user: Mapping[str, Any] | pd.Series, config: RecsysConfig = DEFAULT_CONFIG) -> UserProfile:
        """Read ``user_id, region, age`` (or ``age_group``)``, spending_tier,
        price_sensitivity`` from a mapping or a DataFrame row."""
        if not isinstance(user, (Mapping, pd.Series)):
            raise ValueError(f"user must be a mapping or a pandas Series, got {type(user).__name__}")
        missing = [k for k in ("user_id", "region", "spending_tier", "price_sensitivity") if k not in user]
        if "age" not in user and "age_group" not in user:
            missing.append("age or age_group")
        if missing:
            raise ValueError(f"user is missing field(s) {missing}; got fields {sorted(map(str, user.keys()))}")
        user_id = user["user_id"]
        if not isinstance(user_id, str) or not user_id:
            raise ValueError(f"user['user_id'] must be a non-empty string, got {user_id!r}")
        config.region(user["region"])  # ConfigError naming the known regions
        config.spending_tier(user["spending_tier"])
        if "age_group" in user and isinstance(user["age_group"], str):
            age_group = user["age_group"]
            if age_group != "unknown":
                config.age_group(age_group)
        else:
            age = user["age"]
            age_group = config.age_group_of(float(age) if age is not None else math.nan)
        ps = user["price_sensitivity"]
        ps = math.nan if ps is None else float(ps)
        if not (math.isnan(ps) or 0.0 <= ps <= 1.0):
            raise ValueError(f"user {user_id!r}: price_sensitivity must be in [0, 1] or NaN, got {ps!r}")
        return cls(user_id, str(user["region"]), age_group, str(user["spending_tier"]), ps)


class DealPricer:
    """Prices a candidate frame for one user (see the module docstring).

    Parameters
    ----------
    config: the domain configuration (regions, age groups, seasons, ``deals``).
    extra_factors: extra multiplicative factors ``factor(candidates, user)``.
    use_price_sensitivity: override of ``config.deals.use_price_sensitivity``.
    sensitivity_strength: ``strength`` in the sensitivity factor (>= 0).
    """

    def __init__(
        self,
        config: RecsysConfig = DEFAULT_CONFIG,
        extra_factors: Sequence[PriceFactor] = (),
        use_price_sensitivity: bool | None = None,
        sensitivity_strength: float = 1.0,
    ) -> None:
        if not isinstance(config, RecsysConfig):
            raise ConfigError(f"config must be a RecsysConfig, got {type(config).__name__}")
        for factor in extra_factors:
            if not callable(factor):
                raise ConfigError(f"extra_factors must be callables factor(candidates, user), got {factor!r}")
        if not (isinstance(sensitivity_strength, (int, float)) and 0 <= sensitivity_strength < math.inf):
            raise ConfigError(f"sensitivity_strength must be a finite number >= 0, got {sensitivity_strength!r}")
        self.config = config
        self.extra_factors = tuple(extra_factors)
        self.use_price_sensitivity = (
            config.deals.use_price_sensitivity if use_price_sensitivity is None else bool(use_price_sensitivity)
        )
        self.sensitivity_strength = float(sensitivity_strength)

    # -- user-level terms ------------------------------------------------------
    def preferences(self, profile: UserProfile) -> tuple[float, float]:
        """``(regional_preference, age_preference)`` of the design's base discount."""
        region = self.config.region(profile.region)
        if profile.age_group == "unknown":
            age_pref = float(np.mean([g.deal_preference for g in self.config.age_groups]))
        else:
            age_pref = self.config.age_group(profile.age_group).deal_preference
        return region.avg_discount, age_pref

    def reference_sensitivity(self, profile: UserProfile) -> float:
        """``s_ref``: mean configured price sensitivity of the user's region and age group."""
        values = [self.config.region(profile.region).price_sensitivity]
        if profile.age_group != "unknown":
            values.append(self.config.age_group(profile.age_group).price_sensitivity)
        return float(np.mean(values))

    def sensitivity_factor(self, profile: UserProfile) -> float:
        """``max(0, 1 + strength * (s_u - s_ref))`` when on, else 1."""
        if not self.use_price_sensitivity or math.isnan(profile.price_sensitivity):
            return 1.0
        delta = profile.price_sensitivity - self.reference_sensitivity(profile)
        return max(0.0, 1.0 + self.sensitivity_strength * delta)

    # -- the formula -------------------------------------------------------------
    def seasonal_mask(self, categories: np.ndarray, profiles: Sequence[UserProfile], season: str,
                      factorized: tuple[np.ndarray, Any] | None = None) -> np.ndarray:
        """Users x products: is the product's category in season for the user's
        region (``config.boosted_categories(region, season)``). ``factorized``:
        ``pd.factorize(categories)`` if already known."""
        if factorized is not None:
            codes, uniques = factorized
        else:
            categories = np.asarray(categories, dtype=object)
            codes, uniques = pd.factorize(categories) if len(categories) else (np.zeros(0, np.int64), [])
        regions = sorted({p.region for p in profiles})
        boosted = [set(self.config.boosted_categories(r, season)) for r in regions]
        table = np.array([[c in b for c in uniques] for b in boosted], dtype=bool).reshape(len(regions), len(uniques))
        region_row = np.array([regions.index(p.region) for p in profiles], dtype=np.int64)
        return table[region_row][:, codes]

    def price(self, candidates: pd.DataFrame, user: Mapping[str, Any] | pd.Series, season: str) -> pd.DataFrame:
        """The formula's terms for every row of one user's candidate frame
        (:data:`PRICING_COLUMNS`, same index as ``candidates``, which needs
        ``category`` and ``demand_score`` (0..100))."""
        for column in ("category", "demand_score"):
            if column not in candidates.columns:
                raise ValueError(f"candidates lack column {column!r} needed for pricing")
        demand = candidates["demand_score"].to_numpy(dtype=float)
        profile = UserProfile.from_mapping(user, self.config) if not isinstance(user, UserProfile) else user
        seasonal = self.seasonal_mask(candidates["category"].to_numpy(dtype=object), [profile], season)
        extra = self.extra(lambda _: candidates, [user], len(candidates))
        terms = self.terms(demand, seasonal, [profile], extra)
        return pd.DataFrame({k: v[0] for k, v in terms.items()}, index=candidates.index)

    def extra(self, frame_of: Callable[[int], pd.DataFrame], users: Sequence[Any], n_products: int) -> np.ndarray:
        """Users x products product of the extra factors; ``frame_of(i)`` gives
        user ``i``'s candidate frame (built only when there are factors)."""
        out = np.ones((len(users), n_products))
        if self.extra_factors:
            for i, user in enumerate(users):
                frame = frame_of(i)
                for factor in self.extra_factors:
                    out[i] *= self._evaluate(factor, frame, user)
        return out

    def terms(
        self, demand_score: np.ndarray, seasonal: np.ndarray, profiles: Sequence[UserProfile], extra: np.ndarray
    ) -> dict[str, np.ndarray]:
        """The formula on users x products arrays (:data:`PRICING_COLUMNS`).

        ``demand_score``: (n_products,) in 0..100; ``seasonal``: users x
        products bool; ``extra``: users x products multipliers."""
        demand = np.asarray(demand_score, dtype=float)
        bad = ~((demand >= 0) & (demand <= 100))
        if bad.any():
            raise ValueError(
                f"demand_score must be in [0, 100]; {int(bad.sum())} values are not, e.g. {demand[bad][:3].tolist()}"
            )
        deals = self.config.deals
        shape = (len(profiles), demand.shape[-1])
        prefs = np.array([self.preferences(p) for p in profiles], dtype=float).reshape(len(profiles), 2)
        regional, age = prefs[:, :1], prefs[:, 1:]
        sensitivity = np.array([self.sensitivity_factor(p) for p in profiles], dtype=float)[:, None]
        demand_factor = np.maximum(deals.demand_floor, 1.0 - demand / 100.0)[None, :]
        seasonal = np.asarray(seasonal, dtype=bool)
        seasonal_factor = np.where(seasonal, deals.seasonal_factor, 1.0)
        base = regional + age
        raw = base * demand_factor * seasonal_factor * sensitivity * extra
        return {
            "regional_preference": np.broadcast_to(regional, shape),
            "age_preference": np.broadcast_to(age, shape),
            "base_discount": np.broadcast_to(base, shape),
            "demand_factor": np.broadcast_to(demand_factor, shape),
            "is_seasonal": seasonal,
            "seasonal_factor": seasonal_factor,
            "sensitivity_factor": np.broadcast_to(sensitivity, shape),
            "extra_factor": extra,
            "raw_discount": raw,
            "formula_discount": np.minimum(deals.max_discount, raw),
        }

    @staticmethod
    def _evaluate(factor: PriceFactor, candidates: pd.DataFrame, user: Any) -> np.ndarray:
        name = getattr(factor, "__name__", repr(factor))
        values = np.asarray(factor(candidates, user), dtype=float)
        if values.ndim == 0:
            values = np.full(len(candidates), float(values))
        if values.shape != (len(candidates),):
            raise ValueError(f"extra factor {name} returned shape {values.shape}, expected ({len(candidates)},)")
        bad = ~(np.isfinite(values) & (values >= 0))
        if bad.any():
            raise ValueError(
                f"extra factor {name} must return finite values >= 0; got {values[bad][:3].tolist()} "
                f"({int(bad.sum())} rows)"
            )
        return values
