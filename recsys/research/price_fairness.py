"""A fairness audit of the deal prices: who pays what for the same product.

The design's formula prices by region and age group (``base = regional
preference + age preference``), so two people offered the same product at
the same time can pay different prices. Three views:

* :func:`group_prices`: what each group was offered (the generated deals):
  mean discount and deal price, a **price index** (mean over the group's
  offers of ``deal_price / mean deal price of that product over all its
  offers``; 1 = average, > 1 = pays more for the same products) and the share
  of its offers priced above the product's median offered price.
* :func:`same_product_prices` and :func:`pays_more_matrix`: the formula's
  guarded price of every deal product for every (region, age group) cell, at
  the product's demand score and the data's season (seasonal boosts follow
  the region); then, per pair of groups of one attribute, the share of
  products that the first pays strictly more for than the second, with the
  other attribute held equal.
* :func:`without_age_term`: the deals re-priced with the age preference
  replaced by its mean over users (same average level, no age difference),
  and the expected conversions, revenue and margin per user under the
  purchase model of :mod:`recsys.deals.response`, against the formula, with
  paired bootstrap intervals, overall and per age group.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from recsys.config import RecsysConfig
from recsys.deals.guardrails import guard_arrays
from recsys.deals.pricing import seed_discount
from recsys.deals.response import METRICS, ResponseModel
from recsys.evaluation.statistics import paired_bootstrap

__all__ = ["group_prices", "pays_more_matrix", "same_product_prices", "without_age_term"]

_TOL = 1e-9


def _with_groups(deals: pd.DataFrame, users: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("user_id", "region", "age_group") if c not in users.columns]
    if missing:
        raise ValueError(f"users lack column(s) {missing}")
    needed = ["user_id", "product_id", "original_price", "deal_price", "discount_percentage"]
    lacking = [c for c in needed if c not in deals.columns]
    if lacking:
        raise ValueError(f"deals lack column(s) {lacking}")
    groups = users.set_index("user_id")[["region", "age_group"]]
    return deals.drop(columns=[c for c in ("region", "age_group") if c in deals.columns]).join(groups, on="user_id")


def group_prices(deals: pd.DataFrame, users: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Per group of ``by`` (``region`` and/or ``age_group``): ``users,
    deals, mean_discount_pct, mean_deal_price, price_index,
    share_above_median`` (module docstring)."""
    frame = _with_groups(deals, users)
    product = frame.groupby("product_id")["deal_price"]
    frame["relative_price"] = frame["deal_price"] / product.transform("mean")
    frame["above_median"] = frame["deal_price"] > product.transform("median") + _TOL
    out = frame.groupby(list(by), observed=True).agg(
        users=("user_id", "nunique"), deals=("product_id", "size"),
        mean_discount_pct=("discount_percentage", "mean"), mean_deal_price=("deal_price", "mean"),
        price_index=("relative_price", "mean"), share_above_median=("above_median", "mean"))
    return out.reset_index()


def same_product_prices(deals: pd.DataFrame, config: RecsysConfig, season: str) -> pd.DataFrame:
    """The formula's guarded price of every product of ``deals`` (one row per
    product: ``product_id, category, original_price, cost, demand_score``)
    for every (region, age group) cell: ``product_id, region, age_group,
    discount, deal_price``."""
    lacking = [c for c in ("product_id", "category", "original_price", "cost", "demand_score") if c not in deals]
    if lacking:
        raise ValueError(f"deals lack column(s) {lacking}")
    products = deals.drop_duplicates("product_id")[["product_id", "category", "original_price", "cost",
                                                    "demand_score"]]
    frames = []
    for region in config.regions:
        seasonal = products["category"].isin(config.boosted_categories(region.name, season)).to_numpy()
        for group in config.age_groups:
            raw = seed_discount(region.avg_discount, group.deal_preference, products["demand_score"], seasonal,
                                cap=config.deals.max_discount, demand_floor=config.deals.demand_floor,
                                seasonal_factor=config.deals.seasonal_factor)
            guard = guard_arrays(products["original_price"], products["cost"], raw, config.deals)
            frames.append(pd.DataFrame({"product_id": products["product_id"].to_numpy(), "region": region.name,
                                        "age_group": group.name, "discount": guard["discount"],
                                        "deal_price": guard["deal_price"]}))
    return pd.concat(frames, ignore_index=True)


def pays_more_matrix(prices: pd.DataFrame, attribute: str) -> pd.DataFrame:
    """Rows x columns = groups of ``attribute`` (``age_group`` or
    ``region``): the share of (product, other-attribute value) pairs where
    the row group's price is strictly above the column group's."""
    if attribute not in ("age_group", "region"):
        raise ValueError(f"attribute must be 'age_group' or 'region', got {attribute!r}")
    other = "region" if attribute == "age_group" else "age_group"
    wide = prices.pivot_table(index=["product_id", other], columns=attribute, values="deal_price").dropna()
    groups = list(dict.fromkeys(prices[attribute]))
    data = [[float((wide[a] > wide[b] + _TOL).mean()) for b in groups] for a in groups]
    return pd.DataFrame(data, index=pd.Index(groups, name=f"{attribute} pays more"), columns=groups)


def _per_user(deals: pd.DataFrame, discount: np.ndarray, deal_price: np.ndarray, sensitivity: np.ndarray,
              model: ResponseModel) -> pd.DataFrame:
    p = model.probability(discount, sensitivity, deals["affinity_pct"].to_numpy(float))
    frame = pd.DataFrame({"user_id": deals["user_id"].to_numpy(), "conversions": p, "revenue": p * deal_price,
                          "margin": p * (deal_price - deals["cost"].to_numpy(float))})
    return frame.groupby("user_id", sort=True)[list(METRICS)].sum()


def without_age_term(deals: pd.DataFrame, users: pd.DataFrame, config: RecsysConfig,
                     model: ResponseModel | None = None, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The formula against the formula without the age term (module
    docstring). ``deals`` are the formula's (price sensitivity off, the
    pricing columns of :data:`~recsys.deals.generator.DEAL_COLUMNS`).
    Columns: ``group`` ("all users" or an age group), ``metric, formula,
    no_age_term, difference, ci_low, ci_high`` (per user, no_age_term -
    formula) and ``mean_discount_formula, mean_discount_no_age`` (percent)."""
    model = model or ResponseModel()
    frame = _with_groups(deals, users)
    lacking = [c for c in ("regional_preference", "age_preference", "demand_score", "is_seasonal", "cost",
                           "affinity_pct") if c not in frame.columns]
    if lacking:
        raise ValueError(f"deals lack column(s) {lacking}")
    mean_age = float(users["age_group"].map({g.name: g.deal_preference for g in config.age_groups}).mean())
    raw = seed_discount(frame["regional_preference"], mean_age, frame["demand_score"], frame["is_seasonal"],
                        cap=config.deals.max_discount, demand_floor=config.deals.demand_floor,
                        seasonal_factor=config.deals.seasonal_factor)
    guard = guard_arrays(frame["original_price"], frame["cost"], raw, config.deals)
    profile = users.set_index("user_id")
    sens = profile["price_sensitivity"].astype(float).fillna(profile["region"].map(
        lambda r: config.region(r).price_sensitivity)).reindex(frame["user_id"]).to_numpy()
    formula = _per_user(frame, frame["discount_percentage"].to_numpy(float) / 100, frame["deal_price"].to_numpy(float),
                        sens, model)
    no_age = _per_user(frame, guard["discount"], guard["deal_price"], sens, model)
    frame["no_age_discount"] = 100 * guard["discount"]
    age_of = profile["age_group"].reindex(formula.index)
    rows = []
    for group in ["all users", *dict.fromkeys(config.age_group_names)]:
        keep = np.ones(len(formula), bool) if group == "all users" else (age_of == group).to_numpy()
        offers = frame if group == "all users" else frame[frame["age_group"] == group]
        if not keep.any():
            continue
        for metric in METRICS:
            diff = paired_bootstrap(no_age.loc[keep, metric], formula.loc[keep, metric], n_boot=n_boot, seed=seed)
            rows.append({"group": group, "metric": metric, "users": int(keep.sum()),
                         "formula": float(formula.loc[keep, metric].mean()),
                         "no_age_term": float(no_age.loc[keep, metric].mean()), "difference": diff.difference,
                         "ci_low": diff.ci_low, "ci_high": diff.ci_high,
                         "mean_discount_formula": float(offers["discount_percentage"].mean()),
                         "mean_discount_no_age": float(offers["no_age_discount"].mean())})
    return pd.DataFrame(rows)
