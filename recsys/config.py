"""Every domain table of SPEC.md as typed, frozen configuration.

The defaults reproduce the design's tables exactly. Adding a region is one more
``RegionConfig`` in :data:`DEFAULT_REGIONS` (or ``config.with_region(...)``);
changing a weight is ``config.replace(fusion=FusionWeights(...))``. Every
constructor validates its values and raises :class:`ConfigError` (a
``ValueError``) naming the field and the value that is wrong.

Component-level settings (k of the k-NN, SVD rank, ...) live beside their
component, as ``*Config`` dataclasses in that component's module.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from recsys.validation import ConfigError, check_ints, check_number, check_numbers

__all__ = [
    "CATEGORIES",
    "EVENT_TYPES",
    "SEASONS",
    "SPENDING_TIERS",
    "AgeGroupConfig",
    "ConfigError",
    "DealConfig",
    "FusionWeights",
    "InteractionWeights",
    "RecsysConfig",
    "RegionConfig",
    "SeasonCalendar",
    "SpendingTierConfig",
    "PicklableMappings",
    "DEFAULT_CONFIG",
]


CATEGORIES: tuple[str, ...] = (
    "Electronics",
    "Books",
    "Home & Garden",
    "Fashion",
    "Travel",
    "Sports",
    "Automotive",
    "Gaming",
    "Beauty",
    "Health",
)
"""The ten product categories named in SPEC.md's regional and age tables."""

EVENT_TYPES: tuple[str, ...] = ("view", "favorite", "cart", "purchase", "review")
"""The five kinds of interaction event, in funnel order."""

SEASONS: tuple[str, ...] = ("winter", "spring", "summer", "autumn")

SPENDING_TIERS: tuple[str, ...] = ("budget", "mid", "premium")


def _frozen_map(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


class PicklableMappings:
    """Pickle support for frozen dataclasses holding ``MappingProxyType``
    fields (which cannot be pickled): rebuild through the constructor."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        values = tuple(
            dict(v) if isinstance(v, MappingProxyType) else v
            for v in (getattr(self, f.name) for f in dataclasses.fields(self))  # type: ignore[arg-type]
        )
        return (type(self), values)


def _check_fraction(owner: str, name: str, value: float, low: float = 0.0, high: float = 1.0) -> None:
    check_number(owner, name, value, low, high)


def _check_categories(owner: str, name: str, categories: tuple[str, ...], known: tuple[str, ...]) -> None:
    unknown = [c for c in categories if c not in known]
    if unknown:
        raise ConfigError(f"{owner}.{name} has unknown categories {unknown}; known: {list(known)}")


@dataclass(frozen=True)
class RegionConfig(PicklableMappings):
    """A region's preferences (SPEC 'Regional preferences' table).

    ``avg_discount`` is the regional preference term of the deal formula;
    ``seasonal_boosts`` maps a season to the categories boosted there in that
    season (an empty tuple: no regional boost in that season).
    """

    name: str
    categories: tuple[str, ...]
    price_sensitivity: float
    avg_discount: float
    seasonal_boosts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        owner = f"RegionConfig({self.name!r})"
        if not self.name:
            raise ConfigError("RegionConfig.name must be a non-empty string")
        object.__setattr__(self, "categories", tuple(self.categories))
        _check_fraction(owner, "price_sensitivity", self.price_sensitivity)
        _check_fraction(owner, "avg_discount", self.avg_discount)
        boosts = {s: tuple(c) for s, c in dict(self.seasonal_boosts).items()}
        bad = [s for s in boosts if s not in SEASONS]
        if bad:
            raise ConfigError(f"{owner}.seasonal_boosts has unknown seasons {bad}; known: {list(SEASONS)}")
        object.__setattr__(self, "seasonal_boosts", _frozen_map(boosts))


@dataclass(frozen=True)
class AgeGroupConfig:
    """An age band (SPEC 'Age groups' table); ``min_age <= age <= max_age``."""

    name: str
    min_age: int
    max_age: int
    categories: tuple[str, ...]
    deal_preference: float
    price_sensitivity: float

    def __post_init__(self) -> None:
        owner = f"AgeGroupConfig({self.name!r})"
        object.__setattr__(self, "categories", tuple(self.categories))
        if self.min_age > self.max_age:
            raise ConfigError(f"{owner}: min_age {self.min_age} > max_age {self.max_age}")
        _check_fraction(owner, "deal_preference", self.deal_preference)
        _check_fraction(owner, "price_sensitivity", self.price_sensitivity)


@dataclass(frozen=True)
class SpendingTierConfig:
    """A spending tier; ``max_price_quantile`` is the business-rule filter:
    a user of this tier is shown products priced at or below this quantile of
    their category's price distribution (1.0 = no filter)."""

    name: str
    max_price_quantile: float

    def __post_init__(self) -> None:
        _check_fraction(f"SpendingTierConfig({self.name!r})", "max_price_quantile", self.max_price_quantile)


@dataclass(frozen=True)
class SeasonCalendar(PicklableMappings):
    """Month -> season (northern-hemisphere meteorological seasons by default),
    plus the season-wide boosts that apply in every region.

    The seed says spring is "a general boost" and autumn favours
    "back-to-school and preparation categories". This project decides:
    ``general_boost_seasons`` (spring) boosts every category of the user's
    region; ``global_boosts['autumn']`` lists the back-to-school and
    preparation categories (Books, Electronics, Home & Garden, Health).
    """

    month_to_season: Mapping[int, str] = field(
        default_factory=lambda: {
            12: "winter", 1: "winter", 2: "winter",
            3: "spring", 4: "spring", 5: "spring",
            6: "summer", 7: "summer", 8: "summer",
            9: "autumn", 10: "autumn", 11: "autumn",
        }
    )
    general_boost_seasons: tuple[str, ...] = ("spring",)
    global_boosts: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {"autumn": ("Books", "Electronics", "Home & Garden", "Health")}
    )

    def __post_init__(self) -> None:
        months = dict(self.month_to_season)
        if sorted(months) != list(range(1, 13)):
            raise ConfigError(f"SeasonCalendar.month_to_season must map months 1..12, got {sorted(months)}")
        bad = sorted({s for s in months.values() if s not in SEASONS})
        if bad:
            raise ConfigError(f"SeasonCalendar.month_to_season has unknown seasons {bad}")
        object.__setattr__(self, "month_to_season", _frozen_map(months))
        object.__setattr__(self, "general_boost_seasons", tuple(self.general_boost_seasons))
        object.__setattr__(
            self, "global_boosts", _frozen_map({s: tuple(c) for s, c in dict(self.global_boosts).items()})
        )

    def season_of(self, month: int) -> str:
        return self.month_to_season[int(month)]


@dataclass(frozen=True)
class FusionWeights:
    """Stage 3 fusion weights; non-negative, summing to 1 (SPEC: 40/30/20/10)."""

    knn: float = 0.4
    svd: float = 0.3
    content: float = 0.2
    demographic: float = 0.1

    def __post_init__(self) -> None:
        check_numbers(self, *self.as_dict(), low=0)
        total = sum(self.as_dict().values())
        if not math.isclose(total, 1.0, abs_tol=1e-9):
            raise ConfigError(f"FusionWeights must sum to 1, got {total:.6f} ({self.as_dict()})")

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class InteractionWeights:
    """How events become implicit feedback.

    ``weight(event) = type_weight[event_type]`` (reviews: ``review_weight_per_star
    * rating``), times the time decay ``0.5 ** (age_days / half_life_days)``
    where ``age_days`` is measured back from the data set's ``as_of``.
    """

    view: float = 1.0
    favorite: float = 2.0
    cart: float = 3.0
    purchase: float = 5.0
    review_weight_per_star: float = 1.0
    half_life_days: float = 30.0

    def __post_init__(self) -> None:
        order = [self.view, self.favorite, self.cart, self.purchase]
        if any(w <= 0 for w in order) or order != sorted(order):
            raise ConfigError(
                "InteractionWeights must be positive with view <= favorite <= cart <= purchase, "
                f"got view={self.view}, favorite={self.favorite}, cart={self.cart}, purchase={self.purchase}"
            )
        check_numbers(self, "review_weight_per_star", low=0)
        check_numbers(self, "half_life_days", low=0, low_open=True)

    def type_weight(self, event_type: str) -> float:
        if event_type not in ("view", "favorite", "cart", "purchase"):
            raise ConfigError(f"no fixed weight for event type {event_type!r}")
        return float(getattr(self, event_type))


@dataclass(frozen=True)
class DealConfig:
    """Deal pricing bounds and guardrails (SPEC 'Deals', 'Safety rules').

    ``final = clip(min(max_discount, base * demand_factor * seasonal_factor),
    min_discount, max_discount)``, with ``demand_factor = max(demand_floor,
    1 - demand_score / 100)``. ``min_margin`` keeps ``deal_price >= cost *
    (1 + min_margin)``.
    """

    min_discount: float = 0.05
    max_discount: float = 0.50
    demand_floor: float = 0.5
    seasonal_factor: float = 1.2
    min_margin: float = 0.05
    min_deals: int = 3
    max_deals: int = 7
    expiry_min_days: int = 1
    expiry_max_days: int = 7
    use_price_sensitivity: bool = False
    rate_limit_requests: int = 10
    rate_limit_window_seconds: float = 60.0

    def __post_init__(self) -> None:
        _check_fraction("DealConfig", "min_discount", self.min_discount)
        _check_fraction("DealConfig", "max_discount", self.max_discount)
        _check_fraction("DealConfig", "demand_floor", self.demand_floor)
        if self.min_discount > self.max_discount:
            raise ConfigError(f"DealConfig.min_discount {self.min_discount} > max_discount {self.max_discount}")
        check_numbers(self, "seasonal_factor", low=1)
        check_numbers(self, "min_margin", low=0)
        check_ints(self, "min_deals", "max_deals", "expiry_min_days", "expiry_max_days", "rate_limit_requests")
        check_numbers(self, "rate_limit_window_seconds", low=0, low_open=True)
        if not 1 <= self.min_deals <= self.max_deals:
            raise ConfigError(f"DealConfig needs 1 <= min_deals <= max_deals, got {self.min_deals}, {self.max_deals}")
        if not 1 <= self.expiry_min_days <= self.expiry_max_days:
            raise ConfigError(
                f"DealConfig needs 1 <= expiry_min_days <= expiry_max_days, got {self.expiry_min_days}, {self.expiry_max_days}"
            )
        if self.rate_limit_requests < 1 or self.rate_limit_window_seconds <= 0:
            raise ConfigError(
                "DealConfig.rate_limit_requests must be >= 1 and rate_limit_window_seconds > 0, got "
                f"{self.rate_limit_requests}, {self.rate_limit_window_seconds}"
            )


DEFAULT_REGIONS: tuple[RegionConfig, ...] = (
    RegionConfig(
        "EU", ("Electronics", "Books", "Home & Garden", "Fashion", "Travel"), 0.7, 0.15,
        {"winter": ("Books", "Home & Garden"), "summer": ("Travel", "Fashion")},
    ),
    RegionConfig(
        "NA", ("Electronics", "Sports", "Automotive", "Books", "Gaming"), 0.5, 0.20,
        {"winter": ("Electronics", "Gaming"), "summer": ("Sports", "Automotive")},
    ),
    RegionConfig(
        "Asia", ("Electronics", "Fashion", "Beauty", "Home & Garden", "Gaming"), 0.8, 0.25,
        {"winter": ("Beauty", "Fashion"), "summer": ("Electronics", "Gaming")},
    ),
    RegionConfig("Other", ("Books", "Electronics", "Fashion", "Sports"), 0.6, 0.18, {}),
)

DEFAULT_AGE_GROUPS: tuple[AgeGroupConfig, ...] = (
    AgeGroupConfig("young", 13, 25, ("Electronics", "Fashion", "Sports", "Gaming", "Beauty"), 0.30, 0.9),
    AgeGroupConfig("adult", 26, 40, ("Home & Garden", "Books", "Automotive", "Electronics", "Travel"), 0.20, 0.6),
    AgeGroupConfig("middle", 41, 55, ("Home & Garden", "Books", "Health", "Travel", "Automotive"), 0.15, 0.4),
    AgeGroupConfig("senior", 56, 110, ("Books", "Health", "Home & Garden", "Travel"), 0.10, 0.3),
)
"""The design's bands are 18-25, 26-40, 41-55, 55+; the data model admits ages
from 13, so 'young' starts at 13, and 55 belongs to 'middle' (the design's
bands overlap at 55)."""

DEFAULT_SPENDING_TIERS: tuple[SpendingTierConfig, ...] = (
    SpendingTierConfig("budget", 0.6),
    SpendingTierConfig("mid", 0.9),
    SpendingTierConfig("premium", 1.0),
)


def _named(items: tuple[Any, ...], name: str, kind: str) -> Any:
    """The entry of ``items`` called ``name``; ``ConfigError`` naming the known ones otherwise."""
    for item in items:
        if item.name == name:
            return item
    raise ConfigError(f"unknown {kind} {name!r}; known: {[i.name for i in items]}")


@dataclass(frozen=True)
class RecsysConfig:
    """The whole domain configuration. Build variants with :meth:`replace`."""

    categories: tuple[str, ...] = CATEGORIES
    regions: tuple[RegionConfig, ...] = DEFAULT_REGIONS
    age_groups: tuple[AgeGroupConfig, ...] = DEFAULT_AGE_GROUPS
    spending_tiers: tuple[SpendingTierConfig, ...] = DEFAULT_SPENDING_TIERS
    seasons: SeasonCalendar = field(default_factory=SeasonCalendar)
    fusion: FusionWeights = field(default_factory=FusionWeights)
    interactions: InteractionWeights = field(default_factory=InteractionWeights)
    deals: DealConfig = field(default_factory=DealConfig)

    def __post_init__(self) -> None:
        for name in ("categories", "regions", "age_groups", "spending_tiers"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for group_name, items in (("regions", self.regions), ("age_groups", self.age_groups),
                                  ("spending_tiers", self.spending_tiers)):
            names = [i.name for i in items]
            if len(set(names)) != len(names):
                raise ConfigError(f"RecsysConfig.{group_name} has duplicate names: {names}")
            if not names:
                raise ConfigError(f"RecsysConfig.{group_name} must not be empty")
        for region in self.regions:
            _check_categories(f"RegionConfig({region.name!r})", "categories", region.categories, self.categories)
            for season, cats in region.seasonal_boosts.items():
                _check_categories(f"RegionConfig({region.name!r})", f"seasonal_boosts[{season!r}]", cats, self.categories)
        for group in self.age_groups:
            _check_categories(f"AgeGroupConfig({group.name!r})", "categories", group.categories, self.categories)
        for season, cats in self.seasons.global_boosts.items():
            _check_categories("SeasonCalendar", f"global_boosts[{season!r}]", cats, self.categories)
        bands = sorted((g.min_age, g.max_age) for g in self.age_groups)
        for (_, hi), (lo, _) in itertools.pairwise(bands):
            if lo <= hi:
                raise ConfigError(f"RecsysConfig.age_groups overlap: a band ends at {hi} and the next starts at {lo}")

    # -- look-ups -------------------------------------------------------------
    def replace(self, **changes: Any) -> RecsysConfig:
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    def with_region(self, region: RegionConfig) -> RecsysConfig:
        """A copy with ``region`` added (or replacing the region of that name)."""
        others = tuple(r for r in self.regions if r.name != region.name)
        return self.replace(regions=others + (region,))

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.regions)

    @property
    def age_group_names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.age_groups)

    @property
    def spending_tier_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.spending_tiers)

    def region(self, name: str) -> RegionConfig:
        return _named(self.regions, name, "region")

    def age_group(self, name: str) -> AgeGroupConfig:
        return _named(self.age_groups, name, "age group")

    def spending_tier(self, name: str) -> SpendingTierConfig:
        return _named(self.spending_tiers, name, "spending tier")

    def age_group_of(self, age: float) -> str:
        """The name of the age band containing ``age`` ('unknown' for NaN)."""
        if age is None or (isinstance(age, float) and math.isnan(age)):
            return "unknown"
        for group in self.age_groups:
            if group.min_age <= age <= group.max_age:
                return group.name
        raise ConfigError(f"age {age!r} falls in no age group; bands: {[(g.min_age, g.max_age) for g in self.age_groups]}")

    def age_groups_of(self, ages: Any) -> Any:
        """Vectorised :meth:`age_group_of` over a pandas Series of ages."""
        import numpy as np
        import pandas as pd

        ages = pd.Series(ages)
        out = np.full(len(ages), "unknown", dtype=object)
        values = ages.to_numpy(dtype=float, na_value=np.nan)
        for group in self.age_groups:
            out[(values >= group.min_age) & (values <= group.max_age)] = group.name
        return pd.Series(out, index=ages.index, name="age_group")

    def boosted_categories(self, region: str, season: str) -> tuple[str, ...]:
        """Categories in season for ``region``: the region's own seasonal
        boosts, the season-wide boosts, and, in a general-boost season, all
        of the region's categories."""
        reg = self.region(region)
        boosted = list(reg.seasonal_boosts.get(season, ()))
        boosted += list(self.seasons.global_boosts.get(season, ()))
        if season in self.seasons.general_boost_seasons:
            boosted += list(reg.categories)
        return tuple(dict.fromkeys(boosted))

    def is_seasonal(self, category: str, region: str, season: str) -> bool:
        return category in self.boosted_categories(region, season)


DEFAULT_CONFIG = RecsysConfig()
