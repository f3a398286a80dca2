"""An independent audit of generated deals against the business rules.

Re-checks, from the deals frame and the per-user summary of a
:class:`~recsys.deals.generator.DealBatch` (not from the generator's flags):

* every user has ``min_deals..max_deals`` deals, or fewer with a
  ``shortfall_reason``;
* every discount is within ``[min_discount, max_discount]``;
* every deal price is at or above ``cost * (1 + min_margin)``;
* every expiry is ``expiry_min_days..expiry_max_days`` days after ``as_of``;
* the design's keys are present and filled; one deal per (user, product); no
  out-of-stock product.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.config import DealConfig
from recsys.deals.generator import SEED_DEAL_KEYS, DealBatch

__all__ = ["all_passed", "audit_deals"]


def audit_deals(batch: DealBatch, deals_config: DealConfig) -> pd.DataFrame:
    """One row per rule: ``rule, checked`` (rows or users checked),
    ``violations`` and ``passed``."""
    d, s, cfg = batch.deals, batch.summary, deals_config
    rows = []

    def add(rule: str, checked: int, violations: int) -> None:
        rows.append({"rule": rule, "checked": int(checked), "violations": int(violations), "passed": violations == 0})

    n = s["n_deals"]
    in_range = n.between(cfg.min_deals, cfg.max_deals)
    has_reason = s["shortfall_reason"].map(lambda r: isinstance(r, str) and len(r) > 0)
    add(f"users with {cfg.min_deals}..{cfg.max_deals} deals, or fewer with a reason", len(s),
        int((~in_range & ~(has_reason & (n < cfg.min_deals))).sum()))
    counted = d.groupby("user_id").size().reindex(s["user_id"], fill_value=0).to_numpy()
    add("summary n_deals equals the deals listed", len(s), int((counted != n.to_numpy()).sum()))
    discount = d["discount_percentage"].to_numpy(float)
    add(f"discount within {100 * cfg.min_discount:g}..{100 * cfg.max_discount:g}%", len(d),
        int((~((discount >= 100 * cfg.min_discount) & (discount <= 100 * cfg.max_discount))).sum()))
    floor = d["cost"].to_numpy(float) * (1.0 + cfg.min_margin)
    add(f"deal price >= cost x (1 + {cfg.min_margin:g})", len(d), int((~(d["deal_price"].to_numpy(float) >= floor)).sum()))
    days = (pd.to_datetime(d["deal_expiry"]) - batch.as_of) / pd.Timedelta(days=1)
    add(f"expiry {cfg.expiry_min_days}..{cfg.expiry_max_days} days after as_of", len(d),
        int((~days.between(cfg.expiry_min_days, cfg.expiry_max_days)).sum()))
    missing = [k for k in SEED_DEAL_KEYS if k not in d.columns]
    empty = int(d[[k for k in SEED_DEAL_KEYS if k in d.columns]].isna().any(axis=1).sum())
    add("seed keys present and filled", len(d), len(missing) * max(len(d), 1) + empty)
    add("one deal per (user, product)", len(d), int(d.duplicated(["user_id", "product_id"]).sum()))
    add("no out-of-stock product", len(d), int((d["stock"].to_numpy() <= 0).sum()))
    out = pd.DataFrame(rows)
    out["passed"] = out["passed"].astype(bool)
    return out


def all_passed(audit: pd.DataFrame) -> bool:
    """True when every rule of :func:`audit_deals` has no violation."""
    return bool(np.all(audit["passed"].to_numpy()))
