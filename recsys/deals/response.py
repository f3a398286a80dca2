"""A simulated customer response to deals, for comparing discount policies.

Purchase-probability model (an assumption, not a fitted model): a user ``u``
shown product ``i`` at discount ``d`` (a fraction) buys one unit with

    p(u, i, d) = sigmoid( logit(base_rate)
                          + affinity_weight * (a_ui - 0.5)
                          + discount_weight * s_u * d )

where ``a_ui`` is the user's affinity percentile for the product (0..1, from
Stage 2; 0.5 when unknown) and ``s_u`` the user's price sensitivity (0..1;
the region's configured value when unknown). Defaults: ``base_rate = 0.05``
(a product of median affinity, at list price, sells to 1 user in 20),
``affinity_weight = 2`` (top vs bottom affinity: odds x e^2 = 7.4),
``discount_weight = 6`` (a 25% discount to a user of sensitivity 0.6
multiplies the odds by e^0.9 = 2.5).

Assumptions, stated plainly: each offer is an independent chance of one
unit; discounts act only through the log-odds, linearly in ``d`` and in
proportion to the user's sensitivity; no cannibalisation between offers, no
stock-outs, no strategic waiting for deals, no effect on future demand; the
same products are offered under every policy (those the seed formula's
generator chose), so policies differ only in the discount. Expected values
are reported (no Bernoulli draws): per user, ``conversions = sum p``,
``revenue = sum p * deal_price``, ``margin = sum p * (deal_price - cost)``.
Intervals are percentile bootstrap intervals over users
(:mod:`recsys.evaluation.statistics`); they carry the between-user variation
of the simulated expectations, not uncertainty in the model's parameters
(for that, vary the parameters: :func:`parameter_sweep`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from recsys.config import DEFAULT_CONFIG, RecsysConfig
from recsys.deals.guardrails import guard_arrays
from recsys.evaluation.statistics import bootstrap_ci, paired_bootstrap
from recsys.validation import check_numbers

__all__ = [
    "POLICIES",
    "ResponseModel",
    "compare_policies",
    "parameter_sweep",
    "policy_offers",
    "simulate",
]

POLICIES: tuple[str, ...] = ("no_deals", "uniform_15", "seed_formula", "formula_price_sensitivity")
"""The compared discount policies, in table order."""

METRICS: tuple[str, ...] = ("conversions", "revenue", "margin")


@dataclass(frozen=True)
class ResponseModel:
    """The purchase-probability model of the module docstring."""

    base_rate: float = 0.05
    affinity_weight: float = 2.0
    discount_weight: float = 6.0

    def __post_init__(self) -> None:
        check_numbers(self, "base_rate", low=0, high=1, low_open=True, high_open=True)
        check_numbers(self, "affinity_weight", "discount_weight", low=0, high=math.inf, high_open=True)

    def probability(self, discount: np.ndarray, price_sensitivity: np.ndarray, affinity_pct: np.ndarray) -> np.ndarray:
        """``p(u, i, d)`` elementwise; NaN affinity -> 0.5 (NaN sensitivity is an error here)."""
        d = np.asarray(discount, dtype=float)
        s = np.asarray(price_sensitivity, dtype=float)
        a = np.nan_to_num(np.asarray(affinity_pct, dtype=float), nan=0.5)
        if np.isnan(d).any() or np.isnan(s).any():
            raise ValueError("discount and price_sensitivity must not be NaN")
        logit = (math.log(self.base_rate) - math.log1p(-self.base_rate)
                 + self.affinity_weight * (a - 0.5) + self.discount_weight * s * d)
        return 1.0 / (1.0 + np.exp(-logit))


def policy_offers(
    seed_deals: pd.DataFrame,
    sensitivity_deals: pd.DataFrame,
    users: pd.DataFrame,
    config: RecsysConfig = DEFAULT_CONFIG,
    uniform_discount: float = 0.15,
) -> pd.DataFrame:
    """The offers of every policy, one row per (policy, user, product).

    ``seed_deals`` / ``sensitivity_deals``: deals frames of a
    :class:`~recsys.deals.generator.DealGenerator` with price sensitivity off
    and on, over the same (user, product) pairs (the formula does not change
    which products are chosen; a mismatch is an error). ``users`` gives
    ``user_id, region, price_sensitivity``. Policies: ``no_deals`` (d = 0),
    ``uniform_15`` (``uniform_discount`` through the same guardrails),
    ``seed_formula``, ``formula_price_sensitivity``.

    Columns: ``policy, user_id, product_id, price, cost, discount,
    deal_price, price_sensitivity, affinity_pct``.
    """
    keys = ["user_id", "product_id"]
    for name, frame in (("seed_deals", seed_deals), ("sensitivity_deals", sensitivity_deals)):
        missing = [c for c in keys + ["original_price", "cost", "discount_percentage", "deal_price", "affinity_pct"]
                   if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} lacks column(s) {missing}")
    a = seed_deals.set_index(keys).sort_index()
    b = sensitivity_deals.set_index(keys).sort_index()
    if not a.index.equals(b.index):
        diff = a.index.symmetric_difference(b.index)
        raise ValueError(f"seed_deals and sensitivity_deals offer different (user, product) pairs: "
                         f"{len(diff)} differ, e.g. {list(diff[:3])}")
    if a.index.has_duplicates:
        raise ValueError("seed_deals has duplicate (user_id, product_id) pairs")
    users = users.set_index("user_id")
    missing_users = a.index.get_level_values("user_id").unique().difference(users.index)
    if len(missing_users):
        raise ValueError(f"users lacks {len(missing_users)} user ids of the deals, e.g. {list(missing_users[:3])}")
    sens = users["price_sensitivity"].astype(float)
    fallback = users["region"].map(lambda r: config.region(r).price_sensitivity).astype(float)
    sens = sens.fillna(fallback).reindex(a.index.get_level_values("user_id")).to_numpy()
    price, cost = a["original_price"].to_numpy(float), a["cost"].to_numpy(float)
    uniform = guard_arrays(price, cost, np.full(len(a), uniform_discount), config.deals)
    discounts = {
        "no_deals": (np.zeros(len(a)), price),
        "uniform_15": (uniform["discount"], uniform["deal_price"]),
        "seed_formula": (a["discount_percentage"].to_numpy(float) / 100.0, a["deal_price"].to_numpy(float)),
        "formula_price_sensitivity": (b["discount_percentage"].to_numpy(float) / 100.0, b["deal_price"].to_numpy(float)),
    }
    frames = []
    for policy in POLICIES:
        d, deal_price = discounts[policy]
        frames.append(pd.DataFrame({
            "policy": policy,
            "user_id": a.index.get_level_values("user_id").to_numpy(dtype=object),
            "product_id": a.index.get_level_values("product_id").to_numpy(dtype=object),
            "price": price, "cost": cost, "discount": d, "deal_price": deal_price,
            "price_sensitivity": sens, "affinity_pct": a["affinity_pct"].to_numpy(float),
        }))
    out = pd.concat(frames, ignore_index=True)
    out["policy"] = pd.Categorical(out["policy"], categories=list(POLICIES), ordered=True)
    return out


def simulate(offers: pd.DataFrame, model: ResponseModel | None = None) -> pd.DataFrame:
    """Per (policy, user): expected ``conversions``, ``revenue``, ``margin``
    and the mean ``discount`` of the offers (module docstring)."""
    model = model or ResponseModel()
    p = model.probability(offers["discount"], offers["price_sensitivity"], offers["affinity_pct"])
    deal_price = offers["deal_price"].to_numpy(float)
    frame = pd.DataFrame({
        "policy": offers["policy"], "user_id": offers["user_id"],
        "conversions": p, "revenue": p * deal_price, "margin": p * (deal_price - offers["cost"].to_numpy(float)),
        "discount": offers["discount"].to_numpy(float),
    })
    agg = frame.groupby(["policy", "user_id"], observed=True, sort=True).agg(
        conversions=("conversions", "sum"), revenue=("revenue", "sum"), margin=("margin", "sum"),
        discount=("discount", "mean"))
    return agg.reset_index()


def compare_policies(
    per_user: pd.DataFrame, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0, baseline: str = "no_deals"
) -> pd.DataFrame:
    """The central table: per policy, the mean per user of each metric with
    its percentile bootstrap interval over users, and the paired difference
    to ``baseline`` with its interval. Columns ``policy, mean_discount`` and
    for each metric ``m``: ``m, m_ci_low, m_ci_high, m_vs_<baseline>,
    m_vs_<baseline>_ci_low, m_vs_<baseline>_ci_high``."""
    policies = [p for p in POLICIES if p in set(per_user["policy"].astype(str))]
    if baseline not in policies:
        raise ValueError(f"baseline policy {baseline!r} is not in per_user (policies: {policies})")
    wide = {m: per_user.pivot(index="user_id", columns="policy", values=m) for m in METRICS}
    wide = {m: w.set_axis(w.columns.astype(str), axis=1) for m, w in wide.items()}
    rows = []
    for policy in policies:
        row: dict[str, float | str] = {"policy": policy}
        row["mean_discount"] = float(per_user.loc[per_user["policy"].astype(str) == policy, "discount"].mean())
        for m in METRICS:
            ci = bootstrap_ci(wide[m][policy].to_numpy(), n_boot=n_boot, confidence=confidence, seed=seed)
            row[m], row[f"{m}_ci_low"], row[f"{m}_ci_high"] = ci.estimate, ci.ci_low, ci.ci_high
            diff = paired_bootstrap(wide[m][policy], wide[m][baseline], n_boot=n_boot, confidence=confidence, seed=seed)
            row[f"{m}_vs_{baseline}"] = diff.difference
            row[f"{m}_vs_{baseline}_ci_low"], row[f"{m}_vs_{baseline}_ci_high"] = diff.ci_low, diff.ci_high
        rows.append(row)
    return pd.DataFrame(rows)


def parameter_sweep(
    offers: pd.DataFrame, parameter: str, values: Sequence[float], model: ResponseModel | None = None
) -> pd.DataFrame:
    """Mean per-user metrics of every policy as one model parameter varies:
    columns ``parameter_value, policy, conversions, revenue, margin``."""
    model = model or ResponseModel()
    if parameter not in ("base_rate", "affinity_weight", "discount_weight"):
        raise ValueError(f"parameter must be a ResponseModel field, got {parameter!r}")
    frames = []
    for value in values:
        per_user = simulate(offers, replace(model, **{parameter: float(value)}))
        means = per_user.groupby("policy", observed=True)[list(METRICS)].mean().reset_index()
        means.insert(0, "parameter_value", float(value))
        frames.append(means)
    out = pd.concat(frames, ignore_index=True)
    out["policy"] = out["policy"].astype(str)
    return out
