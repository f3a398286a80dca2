"""The logging policy: the formula with exploration and a holdout, and the
propensity of every discount it offers.

For one offer (user ``u``, product ``i``, period ``t``) with the formula's
guarded discount ``f`` (:mod:`recsys.deals.guardrails`) and the largest
discount the margin floor allows ``d_margin = 1 - floor / price``, the
exploration set ``E`` is the configured ``levels`` (default 5 %, 10 %, ...,
50 %) that lie within ``[min_discount, min(max_discount, d_margin)]`` and, if
``radius`` is set, within ``radius`` grid steps of the level nearest ``f``.
Every level of ``E`` keeps every guardrail. The policy takes

* with probability ``h`` (``holdout_share``, per user and period): no deal
  (discount 0; the user sees no deals at all, the offer is logged as a
  holdout decision);
* otherwise, with probability ``epsilon``: a level drawn uniformly from ``E``
  (``epsilon`` goes to the formula when ``E`` is empty);
* otherwise the formula's ``f``.

So the probability of a discount ``d`` is

    mu(d) = h [d = 0] + (1 - h) ((1 - eps') [d = f] + eps' [d in E] / |E|)

with ``eps' = epsilon`` if ``E`` is non-empty, else 0; this is the logged
**propensity** of the discount actually offered (a level equal to ``f``
gets both terms).

Assignment is deterministic: every draw is a uniform number made by hashing
``(salt, user_id, period, product_id, purpose)`` (blake2b of each id, mixed by
splitmix64), with ``period = floor(days since 1970-01-01 / period_days)``. So
a user keeps one arm (holdout or not) for a whole period, the same request
gives the same answer, and a log can be replayed. Off (``enabled=False``,
the default and the notebooks' formula chapter) the policy is the formula:
propensity 1.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import ConfigError, DealConfig

__all__ = ["ARMS", "DEFAULT_LEVELS", "ExplorationConfig", "LoggingPolicy", "period_of", "stable_uniform"]

DEFAULT_LEVELS: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 11))
ARMS: tuple[str, ...] = ("formula", "explore", "holdout")
_TOL = 1e-9
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_PURPOSE = {"holdout": 1, "explore": 2, "level": 3, "variant": 4}


@dataclass(frozen=True)
class ExplorationConfig:
    """Shares and identity of the logging policy (module docstring).

    ``enabled``: off = the formula alone (propensity 1, no holdout);
    ``epsilon``: exploration probability per offer; ``holdout_share``: share
    of (user, period) pairs with no deals; ``levels``: the exploration grid
    (fractions); ``radius``: grid steps around the formula's level (None =
    every feasible level); ``period_days``: length of an assignment period;
    ``salt``: changes every assignment at once; ``policy_name`` and
    ``policy_version``: logged with every decision.
    """

    enabled: bool = False
    epsilon: float = 0.1
    holdout_share: float = 0.1
    levels: tuple[float, ...] = DEFAULT_LEVELS
    radius: int | None = None
    period_days: int = 7
    salt: str = "deals"
    policy_name: str = "seed_formula"
    policy_version: str = "1"

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"ExplorationConfig.enabled must be a bool, got {self.enabled!r}")
        for name, high in (("epsilon", 1.0), ("holdout_share", 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= high:
                raise ConfigError(f"ExplorationConfig.{name} must be a number in [0, {high}], got {value!r}")
        if self.holdout_share == 1.0:
            raise ConfigError("ExplorationConfig.holdout_share must be < 1 (a holdout of everyone offers nothing)")
        try:
            levels = tuple(float(v) for v in self.levels)
        except (TypeError, ValueError):
            raise ConfigError(f"ExplorationConfig.levels must be numbers, got {self.levels!r}") from None
        if not levels or any(not 0 < v < 1 for v in levels) or list(levels) != sorted(set(levels)):
            raise ConfigError(f"ExplorationConfig.levels must be increasing distinct fractions in (0, 1), got {self.levels!r}")
        object.__setattr__(self, "levels", levels)
        if self.radius is not None and (isinstance(self.radius, bool) or not isinstance(self.radius, int)
                                        or self.radius < 0):
            raise ConfigError(f"ExplorationConfig.radius must be an int >= 0 or None, got {self.radius!r}")
        if isinstance(self.period_days, bool) or not isinstance(self.period_days, int) or self.period_days < 1:
            raise ConfigError(f"ExplorationConfig.period_days must be an int >= 1, got {self.period_days!r}")
        for name in ("salt", "policy_name", "policy_version"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"ExplorationConfig.{name} must be a non-empty string, got {getattr(self, name)!r}")


@lru_cache(maxsize=1 << 18)
def _text_key(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _key64(values: Any) -> np.ndarray:
    """A stable 64-bit key per value: blake2b of its text (cached per text)."""
    flat = np.asarray(values, dtype=object).ravel()
    return np.fromiter((_text_key(str(v)) for v in flat), dtype=np.uint64, count=len(flat))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (a bijection of uint64 with good avalanche)."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return x ^ (x >> np.uint64(31))


def stable_uniform(salt: str, purpose: str, *keys: Any) -> np.ndarray:
    """Uniform numbers in [0, 1), one per row of the broadcast ``keys``
    (arrays of ids or ints), the same on every machine and run."""
    arrays = np.broadcast_arrays(*(np.asarray(k, dtype=object) for k in keys))
    shape = arrays[0].shape
    h = _mix(np.full(int(np.prod(shape)), _key64([salt])[0] ^ np.uint64(_PURPOSE[purpose]), dtype=np.uint64))
    for array in arrays:
        h = _mix(h ^ _key64(array))
    return ((h >> np.uint64(11)).astype(np.float64) * 2.0 ** -53).reshape(shape)


def period_of(as_of: Any, period_days: int) -> int:
    """``floor(days since 1970-01-01 / period_days)`` of a timestamp."""
    stamp = pd.Timestamp(as_of)
    if pd.isna(stamp):
        raise ValueError(f"as_of must be a timestamp, got {as_of!r}")
    days = (stamp.tz_localize(None) if stamp.tzinfo else stamp) - pd.Timestamp("1970-01-01")
    return int(math.floor(days / pd.Timedelta(days=period_days)))


class LoggingPolicy:
    """The formula with exploration and holdout (module docstring)."""

    def __init__(self, config: ExplorationConfig, deals: DealConfig) -> None:
        if not isinstance(config, ExplorationConfig):
            raise ConfigError(f"config must be an ExplorationConfig, got {type(config).__name__}")
        self.config, self.deals = config, deals
        self.levels = np.array([v for v in config.levels if deals.min_discount - _TOL <= v <= deals.max_discount + _TOL])
        if config.enabled and config.epsilon > 0 and not self.levels.size:
            raise ConfigError(f"no exploration level {config.levels} lies within the deal bounds "
                              f"[{deals.min_discount}, {deals.max_discount}]")

    @property
    def name(self) -> str:
        return self.config.policy_name

    @property
    def version(self) -> str:
        c = self.config
        if not c.enabled:
            return c.policy_version
        return f"{c.policy_version}+eps{c.epsilon:g}+hold{c.holdout_share:g}"

    # -- the probabilities ------------------------------------------------------------
    def explore_mask(self, formula_discount: np.ndarray, max_feasible: np.ndarray) -> np.ndarray:
        """offers x levels: is the level in the offer's exploration set ``E``."""
        f = np.asarray(formula_discount, dtype=float)[:, None]
        top = np.minimum(self.deals.max_discount, np.asarray(max_feasible, dtype=float))[:, None]
        mask = (self.levels[None, :] <= top + _TOL) & (self.levels[None, :] >= self.deals.min_discount - _TOL)
        if self.config.radius is not None and self.levels.size:
            nearest = np.abs(self.levels[None, :] - f).argmin(axis=1)[:, None]
            mask &= np.abs(np.arange(self.levels.size)[None, :] - nearest) <= self.config.radius
        return mask

    def probability(self, discount: Any, formula_discount: Any, max_feasible: Any) -> np.ndarray:
        """``mu(d)`` of the module docstring, elementwise over offers."""
        d = np.asarray(discount, dtype=float)
        f = np.asarray(formula_discount, dtype=float)
        if not self.config.enabled:
            return (np.abs(d - f) <= _TOL).astype(float)
        h, eps = self.config.holdout_share, self.config.epsilon
        mask = self.explore_mask(f, max_feasible)
        size = mask.sum(axis=1)
        eps_eff = np.where(size > 0, eps, 0.0)
        in_e = (mask & (np.abs(self.levels[None, :] - d[:, None]) <= _TOL)).any(axis=1)
        deal = (1 - eps_eff) * (np.abs(d - f) <= _TOL) + eps_eff * in_e / np.maximum(size, 1)
        return h * (np.abs(d) <= _TOL) + (1 - h) * deal

    def holdout(self, user_ids: Any, period: int) -> np.ndarray:
        """Per user: is the user in the holdout for this period."""
        ids = np.asarray(user_ids, dtype=object)
        if not self.config.enabled or self.config.holdout_share == 0:
            return np.zeros(ids.shape, dtype=bool)
        return stable_uniform(self.config.salt, "holdout", ids, period) < self.config.holdout_share

    def decide(self, user_ids: Any, product_ids: Any, formula_discount: Any, max_feasible: Any,
               period: int) -> dict[str, np.ndarray]:
        """Per offer: ``arm`` (:data:`ARMS`), the ``discount`` offered (0 in the
        holdout) and its ``propensity`` ``mu(discount)``."""
        users = np.asarray(user_ids, dtype=object)
        products = np.asarray(product_ids, dtype=object)
        f = np.asarray(formula_discount, dtype=float)
        if not (users.shape == products.shape == f.shape) or f.ndim != 1:
            raise ValueError(f"user_ids, product_ids and formula_discount must be 1-d of one length, got "
                             f"{users.shape}, {products.shape}, {f.shape}")
        if np.isnan(f).any():
            raise ValueError("formula_discount has NaN values (an offer without a feasible deal)")
        arm = np.full(f.shape, "formula", dtype=object)
        discount = f.copy()
        if self.config.enabled:
            mask = self.explore_mask(f, max_feasible)
            size = mask.sum(axis=1)
            explore = (stable_uniform(self.config.salt, "explore", users, period, products) < self.config.epsilon)
            explore &= size > 0
            pick = np.floor(stable_uniform(self.config.salt, "level", users, period, products) * np.maximum(size, 1))
            position = np.cumsum(mask, axis=1) - 1  # the k-th level of E is where position == k
            chosen = (mask & (position == pick[:, None].astype(int))).argmax(axis=1)
            discount = np.where(explore, self.levels[chosen] if self.levels.size else f, discount)
            arm[explore] = "explore"
            hold = self.holdout(users, period)
            discount[hold] = 0.0
            arm[hold] = "holdout"
        return {"arm": arm, "discount": discount,
                "propensity": self.probability(discount, f, max_feasible)}

    def apply(self, deals: Mapping[str, Any], period: int) -> dict[str, np.ndarray]:
        """A deals frame (or its columns, :data:`~recsys.deals.generator.DEAL_COLUMNS`)
        with the policy applied: ``discount_percentage`` and ``deal_price``
        replaced by the offered ones (the list price in the holdout), plus
        ``formula_discount`` (percent), ``arm``, ``propensity``, ``policy``,
        ``policy_version``. Every explored price keeps the guardrails:
        ``deal_price = max(price (1 - d), margin_floor)``."""
        price = np.asarray(deals["original_price"], dtype=float)
        floor = np.asarray(deals["margin_floor"], dtype=float)
        f = np.asarray(deals["discount_percentage"], dtype=float) / 100.0
        decided = self.decide(deals["user_id"], deals["product_id"], f, 1.0 - floor / price, period)
        d = decided["discount"]
        deal_price = np.where(decided["arm"] == "holdout", price, np.maximum(price * (1.0 - d), floor))
        if not self.config.enabled:
            deal_price = np.asarray(deals["deal_price"], dtype=float)
        out = {k: np.asarray(v) for k, v in deals.items()}
        out.update({
            "discount_percentage": 100.0 * d, "deal_price": deal_price, "formula_discount": 100.0 * f,
            "arm": decided["arm"], "propensity": decided["propensity"],
            "policy": np.full(len(d), self.name, dtype=object),
            "policy_version": np.full(len(d), self.version, dtype=object),
        })
        return out
