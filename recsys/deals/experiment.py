"""A/B experiments on deal policies: deterministic assignment of users to
variants, and the deals path that answers each user with their variant.

An :class:`ExperimentConfig` names variants with shares summing to 1; each
:class:`Variant` is a deal policy: its logging policy
(:class:`~recsys.deals.exploration.ExplorationConfig`: exploration, holdout,
policy name and version) and whether the formula uses the price-sensitivity
factor. User ``u`` gets the variant ``k`` with ``U(u) in [S_{k-1}, S_k)``,
where ``S`` are the cumulative shares and ``U(u)`` the hash-uniform number of
(salt, experiment name, user) (:func:`~recsys.deals.exploration.stable_uniform`):
fixed for the experiment's life, independent of the holdout and exploration
draws (another purpose), reproducible everywhere. The variant's name is in
every deal answered and every decision logged (``variant``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import ConfigError, RecsysConfig
from recsys.deals.decision_log import DecisionSink
from recsys.deals.exploration import ExplorationConfig, LoggingPolicy, stable_uniform
from recsys.deals.generator import DealGenerator
from recsys.deals.new_products import LiveProducts
from recsys.deals.rate_limit import RateLimiter, RateLimitExceeded
from recsys.deals.serving import UserDeals

__all__ = ["ExperimentConfig", "ExplorationConfig", "Variant", "VariantDeals", "build_user_deals"]  # ExplorationConfig: re-exported


@dataclass(frozen=True)
class Variant:
    """One arm of an experiment: a deal policy and its share of users."""

    name: str
    share: float
    exploration: ExplorationConfig = field(default_factory=ExplorationConfig)
    use_price_sensitivity: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"Variant.name must be a non-empty string, got {self.name!r}")
        if isinstance(self.share, bool) or not isinstance(self.share, numbers.Real) or not 0 < self.share <= 1:
            raise ConfigError(f"Variant {self.name!r}: share must be in (0, 1], got {self.share!r}")
        if not isinstance(self.exploration, ExplorationConfig):
            raise ConfigError(f"Variant {self.name!r}: exploration must be an ExplorationConfig")
        if not isinstance(self.use_price_sensitivity, bool):
            raise ConfigError(f"Variant {self.name!r}: use_price_sensitivity must be a bool")


@dataclass(frozen=True)
class ExperimentConfig:
    """An experiment (``name`` "" = none: every user gets the engine's own policy)."""

    name: str = ""
    variants: tuple[Variant, ...] = ()
    salt: str = "experiment"

    def __post_init__(self) -> None:
        object.__setattr__(self, "variants", tuple(self.variants))
        if not isinstance(self.name, str):
            raise ConfigError(f"ExperimentConfig.name must be a string, got {self.name!r}")
        if not self.name:
            if self.variants:
                raise ConfigError("ExperimentConfig: variants given without an experiment name")
            return
        if len(self.variants) < 2:
            raise ConfigError(f"experiment {self.name!r} needs at least two variants, got {len(self.variants)}")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ConfigError(f"experiment {self.name!r}: variant names must be unique, got {names}")
        total = sum(v.share for v in self.variants)
        if not math.isclose(total, 1.0, abs_tol=1e-9):
            raise ConfigError(f"experiment {self.name!r}: variant shares must sum to 1, got {total}")

    @property
    def active(self) -> bool:
        return bool(self.name)

    def assign(self, user_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """The variant name of each user (module docstring)."""
        if not self.active:
            raise ConfigError("no experiment is configured (ExperimentConfig.name is empty)")
        u = stable_uniform(self.salt, "variant", self.name, np.asarray(user_ids, dtype=object))
        edges = np.cumsum([v.share for v in self.variants])[:-1]
        names = np.array([v.name for v in self.variants], dtype=object)
        return names[np.searchsorted(edges, u, side="right")]


class VariantDeals:
    """The deals path under an experiment: each user is answered by their
    variant's :class:`~recsys.deals.serving.UserDeals` (same candidates, rate
    sink and the caller's rate limiter; the variant's pricing and logging policy)."""

    def __init__(self, experiment: ExperimentConfig, arms: Mapping[str, UserDeals]) -> None:
        self.experiment, self.arms = experiment, dict(arms)

    @property
    def sink(self) -> DecisionSink | None:
        return next(iter(self.arms.values())).sink

    @sink.setter
    def sink(self, sink: DecisionSink | None) -> None:
        for arm in self.arms.values():
            arm.sink = sink

    def answer_many(self, user_ids: Sequence[str], affinities: Sequence[np.ndarray | None], demand: np.ndarray,
                    as_of: pd.Timestamp, num_deals: int | None, season: str,
                    rate_limiter: RateLimiter | None = None, segments: Mapping[str, Any] | None = None,
                    new_products: LiveProducts | None = None) -> list[dict[str, Any] | RateLimitExceeded]:
        """:meth:`UserDeals.answer_many`, each user through their variant."""
        variants = self.experiment.assign(list(user_ids))
        out: list[dict[str, Any] | RateLimitExceeded | None] = [None] * len(user_ids)
        for name, arm in self.arms.items():
            idx = np.flatnonzero(variants == name)
            if len(idx):
                answers = arm.answer_many([user_ids[i] for i in idx], [affinities[i] for i in idx], demand, as_of,
                                          num_deals, season, rate_limiter, segments, new_products)
                for i, answer in zip(idx, answers, strict=True):
                    out[i] = answer
        return out  # type: ignore[return-value]


def build_user_deals(base: UserDeals, config: RecsysConfig, exploration: ExplorationConfig,
                     experiment: ExperimentConfig) -> UserDeals | VariantDeals:
    """The engine's deals path: ``base`` priced by ``exploration``'s logging
    policy, or, with an active experiment, one arm per variant."""
    if not experiment.active:
        base.policy = LoggingPolicy(exploration, config.deals)
        return base
    arms = {}
    for v in experiment.variants:
        generator = DealGenerator(config, rules=base.generator.rules, use_price_sensitivity=v.use_price_sensitivity,
                                  rate_limiter=False)  # the caller's limiter applies (answer_many)
        arms[v.name] = UserDeals(base.builder, base.similarity, generator, base.user_records,
                                 base.similar_seed_items, LoggingPolicy(v.exploration, config.deals), base.sink,
                                 f"{experiment.name}:{v.name}")
    return VariantDeals(experiment, arms)
