"""Surprise's SVD on purchase-only data: a stated rule turns purchases into 1..5 ratings.

Real transaction logs (UCI Online Retail) have purchases but no reviews, and
Surprise's rating models need ratings. The rule here, per (user, product)
pair with total purchased quantity ``q`` over the data set:

``rating = 1 + 4 * min(1, log(q) / log(q_cap))``   (``q >= 1``)

with ``q_cap`` the ``cap_quantile`` (0.99) quantile of ``q`` over all pairs:
log-scaled quantity, so buying 100 units is not 100 times the preference of
buying one, mapped onto Surprise's 1..5 scale: one unit rates 1, the rare
bulk orders at or above the cap rate 5 (if every pair has ``q_cap = 1``,
all rate 3). The rating's timestamp is the pair's last purchase.

This is a rating *by assumption*, so Surprise's rating metrics (RMSE, MAE)
on it measure how well the quantity rule is predicted, not a preference a
customer expressed; the notebooks report only ranking metrics for it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.data.dataset import Dataset
from recsys.evaluation.peers.surprise_models import SurpriseSVD, SurpriseSVDConfig
from recsys.interactions import Interactions

__all__ = ["PurchaseRatingSVD", "purchase_ratings", "with_purchase_ratings"]


def purchase_ratings(events: pd.DataFrame, cap_quantile: float = 0.99) -> pd.DataFrame:
    """``user_id, product_id, rating, timestamp``: one rating per purchased pair (module docstring)."""
    if not 0 < cap_quantile <= 1:
        raise ValueError(f"cap_quantile must be in (0, 1], got {cap_quantile!r}")
    bought = events.loc[events["event_type"].eq("purchase"), ["user_id", "product_id", "quantity", "timestamp"]]
    if bought.empty:
        raise ValueError("no purchase events to derive ratings from")
    pairs = (bought.groupby(["user_id", "product_id"], sort=True)
             .agg(quantity=("quantity", "sum"), timestamp=("timestamp", "max")).reset_index())
    log_q = np.log(pairs["quantity"].to_numpy(dtype=float))
    cap = float(np.quantile(log_q, cap_quantile))
    scaled = np.minimum(1.0, log_q / cap) if cap > 0 else np.full_like(log_q, 0.5)
    pairs["rating"] = 1.0 + 4.0 * scaled
    return pairs[["user_id", "product_id", "rating", "timestamp"]]


def with_purchase_ratings(dataset: Dataset, cap_quantile: float = 0.99) -> Dataset:
    """The same world with a ``review`` event per purchased pair carrying the
    derived rating (quantity 0, no value, session ``"derived_rating"``)."""
    ratings = purchase_ratings(dataset.events, cap_quantile)
    reviews = pd.DataFrame({
        "user_id": ratings["user_id"].to_numpy(dtype=object),
        "product_id": ratings["product_id"].to_numpy(dtype=object),
        "event_type": "review",
        "timestamp": ratings["timestamp"].to_numpy(),
        "session_id": "derived_rating",
        "quantity": 0,
        "value": np.nan,
        "rating": ratings["rating"].to_numpy(),
    })
    events = pd.concat([dataset.events[dataset.events["event_type"] != "review"], reviews], ignore_index=True)
    meta = {**dataset.meta, "ratings": f"derived from purchases: 1 + 4 * min(1, log(q) / log(q_{cap_quantile}))"}
    return Dataset(dataset.users, dataset.products, events, dataset.as_of, dataset.personas, meta, dataset.config)


class PurchaseRatingSVD(SurpriseSVD):
    """:class:`~recsys.evaluation.peers.surprise_models.SurpriseSVD` fitted on ratings derived from
    purchases (:func:`purchase_ratings`), ranking by predicted rating.

    Any review events of the data set are replaced by the derived ratings;
    the shared interaction matrix (and so "exclude purchased") is untouched.
    """

    name = "surprise_svd"
    reason = "Predicted to be bought in quantity by you"

    def __init__(self, config: SurpriseSVDConfig | None = None, cap_quantile: float = 0.99) -> None:
        super().__init__(config)
        self.cap_quantile = cap_quantile

    def _fit(self, dataset: Dataset, interactions: Interactions) -> None:
        super()._fit(with_purchase_ratings(dataset, self.cap_quantile), interactions)
