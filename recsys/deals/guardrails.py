"""Business rules that every deal obeys (SPEC 'Safety rules').

For a product with list price ``p``, unit cost ``c`` and the formula's raw
discount ``f`` (before the cap; from :class:`~recsys.deals.pricing.DealPricer`):

* bounds: ``d = clip(f, min_discount, max_discount)``;
* margin floor: ``floor = c * (1 + min_margin)``; the largest discount the
  floor allows is ``d_margin = 1 - floor / p``. If ``d_margin < min_discount``
  no deal within the bounds keeps the margin, and the product is not eligible
  (``margin_infeasible``); otherwise ``d = min(d, d_margin)`` and
  ``margin_clamped`` marks the rows where that lowered the discount;
* ``deal_price = max(p * (1 - d), floor)`` (the ``max`` only absorbs
  floating-point rounding), ``discount = d``.

So ``min_discount <= discount <= max_discount`` and ``deal_price >= floor``
hold exactly for every deal. Eligibility (:func:`eligibility`) also excludes
out-of-stock products, products of unknown cost (the floor cannot be
checked), products already bought and products above the user's spending
tier; one deal per product is guaranteed by the unique ``product_id`` of the
candidate frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recsys.config import DealConfig

__all__ = ["EXCLUSION_REASONS", "GUARDRAIL_COLUMNS", "apply_guardrails", "eligibility", "guard_arrays"]

GUARDRAIL_COLUMNS = [
    "discount",
    "deal_price",
    "margin_floor",
    "cap_bound",
    "floor_bound",
    "margin_clamped",
    "margin_infeasible",
]

EXCLUSION_REASONS = (
    "out_of_stock",
    "unknown_cost",
    "already_purchased",
    "above_spending_tier",
    "no_deal_type",
    "margin_infeasible",
)
"""Why a candidate gets no deal, in the order the rules are checked; each
excluded product is counted under the first rule it fails."""


def apply_guardrails(
    price: pd.Series | np.ndarray,
    cost: pd.Series | np.ndarray,
    raw_discount: pd.Series | np.ndarray,
    deals: DealConfig,
    index: pd.Index | None = None,
) -> pd.DataFrame:
    """Bound and margin-protect the formula's ``raw_discount`` (before its cap;
    see the module docstring).

    Returns :data:`GUARDRAIL_COLUMNS`: the final ``discount`` (fraction) and
    ``deal_price``, the ``margin_floor``, and flags: ``cap_bound`` (raw >
    max, capped), ``floor_bound`` (raw < min, raised), ``margin_clamped``,
    ``margin_infeasible`` (no valid deal; ``discount`` and ``deal_price`` are
    NaN there). Unknown cost (NaN) is infeasible too.
    """
    return pd.DataFrame(guard_arrays(price, cost, raw_discount, deals), index=index)


def guard_arrays(price: Any, cost: Any, raw_discount: Any, deals: DealConfig) -> dict[str, np.ndarray]:
    """:func:`apply_guardrails` as a dict of arrays."""
    try:
        p, c, f = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (price, cost, raw_discount)))
    except ValueError as error:
        raise ValueError(f"price, cost and raw_discount must broadcast to one shape: {error}") from None
    if np.isnan(f).any():
        raise ValueError(f"raw_discount has {int(np.isnan(f).sum())} NaN values")
    floor = c * (1.0 + deals.min_margin)
    d_margin = 1.0 - floor / p
    infeasible = ~(d_margin >= deals.min_discount)  # NaN cost -> infeasible
    bounded = np.clip(f, deals.min_discount, deals.max_discount)
    clamped = ~infeasible & (d_margin < bounded)
    discount = np.where(infeasible, np.nan, np.minimum(bounded, d_margin))
    deal_price = np.where(infeasible, np.nan, np.maximum(p * (1.0 - discount), floor))
    return {
        "discount": discount,
        "deal_price": deal_price,
        "margin_floor": floor,
        "cap_bound": f > deals.max_discount,
        "floor_bound": f < deals.min_discount,
        "margin_clamped": clamped,
        "margin_infeasible": infeasible,
    }


def eligibility(
    stock: np.ndarray,
    cost: np.ndarray,
    purchased: np.ndarray,
    category_price_quantile: np.ndarray,
    max_price_quantile: np.ndarray | float,
    any_type: np.ndarray,
    margin_infeasible: np.ndarray,
    exclude_purchased: bool = True,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The eligible mask (users x products) and, per reason of
    :data:`EXCLUSION_REASONS`, the number of excluded products per user (a
    product counts under the first rule it fails).

    Product arrays (``stock, cost, category_price_quantile``) have shape
    (n_products,); ``purchased, any_type, margin_infeasible`` users x
    products; ``max_price_quantile`` is the spending tier's per user
    (n_users,) or a scalar: ``above_spending_tier`` is
    ``category_price_quantile > max_price_quantile``.
    """
    any_type = np.atleast_2d(np.asarray(any_type, dtype=bool))
    shape = any_type.shape
    tier_q = np.broadcast_to(np.asarray(max_price_quantile, dtype=float).reshape(-1, 1), (shape[0], 1))
    rules = {
        "out_of_stock": np.asarray(stock) <= 0,
        "unknown_cost": np.isnan(np.asarray(cost, dtype=float)),
        "already_purchased": np.asarray(purchased, dtype=bool) & bool(exclude_purchased),
        "above_spending_tier": np.asarray(category_price_quantile, dtype=float)[None, :] > tier_q,
        "no_deal_type": ~any_type,
        "margin_infeasible": np.asarray(margin_infeasible, dtype=bool),
    }
    excluded = np.zeros(shape, dtype=bool)
    counts: dict[str, np.ndarray] = {}
    for reason in EXCLUSION_REASONS:
        newly = np.broadcast_to(rules[reason], shape) & ~excluded
        counts[reason] = newly.sum(axis=1)
        excluded |= newly
    return ~excluded, counts
