"""Deals for products upserted while serving, before the next training has seen them.

A product upserted with a name, category and price (``LiveProducts``: the engine's
:class:`~recsys.serving.catalogue.NewProducts`) joins a user's candidate block as one extra
product row (:func:`extended_block`), beside the catalogue's rows:

* ``similarity_to_viewed``: as for a catalogue product, the largest content cosine with the user's
  ``top_k`` most viewed products (:func:`new_similarity`; ``ContentRecommender.similarity_of``
  of its vector with each seed), clipped to [0, 1];
* no collaborative ``affinity`` (NaN: Stage 2 has not seen it), ``behaviour_score`` 0 (no cart or
  wishlist event of it was trained on), not ``purchased``, ``sales`` 0;
* ``demand_score`` :data:`NEW_PRODUCT_DEMAND` (50, the middle: no forecast ranks it; the same score
  :func:`recsys.stage2.demand.demand_score` gives when nothing can be ranked);
* ``price``, ``cost`` and ``stock`` as upserted; an unknown cost or stock gives no deal (the cost
  floor cannot be checked; stock must be known and > 0).

Everything else is the catalogue's path: the four deal types, the pricing formula, the guardrails
(the margin floor of its cost), the spending tier (its price percentile within the category, over
the catalogue and the new products) and the selection. Its deal's reason says it is new
(:func:`mark_new`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.deals.candidate_block import CandidateBlock
from recsys.deals.candidates import CandidateBuilder
from recsys.deals.deal_types import DealRules
from recsys.deals.generator import DealResult
from recsys.models.content import ContentRecommender

__all__ = ["NEW_PRODUCT_DEMAND", "NEW_PRODUCT_REASON", "LiveProducts", "extended_block", "mark_new",
           "new_similarity"]

NEW_PRODUCT_DEMAND = 50.0
"""``demand_score`` of a product no demand forecast has seen yet."""

NEW_PRODUCT_REASON = "New product similar to items you viewed"
"""The reason of a new product's answer or deal (when ``similar_to_viewed`` fired)."""


class LiveProducts(Protocol):
    """What the deals read of the products not yet trained on (per product arrays, NaN: unknown)."""

    product_id: np.ndarray
    name: np.ndarray
    category: np.ndarray
    price: np.ndarray
    cost: np.ndarray
    stock: np.ndarray
    vectors: sp.csr_matrix


def new_similarity(content: ContentRecommender, seeds: Sequence[np.ndarray], vectors: sp.csr_matrix) -> np.ndarray:
    """Users x new products: ``max_s cos(x_s, x_new)`` over each user's seed columns (their most viewed
    products), clipped to [0, 1]; zeros for a user without seeds."""
    out = np.zeros((len(seeds), vectors.shape[0]))
    for i, cols in enumerate(seeds):
        if len(cols) and vectors.shape[0]:
            per_seed = np.column_stack([content.similarity_of(vectors, np.array([c])) for c in cols])
            out[i] = np.clip(per_seed.max(axis=1), 0.0, 1.0)
    return out


def _product_rows(live: LiveProducts) -> pd.DataFrame:
    """The new products as candidate product rows (module docstring)."""
    stock = np.asarray(live.stock, dtype=float)
    return pd.DataFrame({
        "product_id": np.asarray(live.product_id, dtype=object),
        "name": np.asarray(live.name, dtype=object).astype(str).astype(object),
        "category": np.asarray(live.category, dtype=object).astype(str).astype(object),
        "price": np.asarray(live.price, dtype=float),
        "cost": np.asarray(live.cost, dtype=float),
        "stock": np.where(np.isnan(stock), 0, stock).astype(np.int64),
        "demand_score": np.full(len(stock), NEW_PRODUCT_DEMAND),
        "sales": np.zeros(len(stock)),
    })


def extended_block(builder: CandidateBuilder, user_ids: Sequence[str], affinity: np.ndarray, demand: np.ndarray,
                   similarity: np.ndarray, live: LiveProducts, live_similarity: np.ndarray) -> CandidateBlock:
    """The users' candidate block over the catalogue (``affinity``, ``similarity``: users x catalogue, as
    :meth:`CandidateBuilder.build_block` takes them) plus one row per new product (``live_similarity``:
    users x new products, :func:`new_similarity`), validated as a whole."""
    ids = list(user_ids)
    rows = builder.rows(ids)
    products = builder.product_table(demand).drop(columns="category_price_quantile")
    table = pd.concat([products, _product_rows(live)], ignore_index=True)
    m = len(live.product_id)
    extra = np.zeros((len(ids), m))
    return CandidateBlock(
        table, np.asarray(ids, dtype=object),
        np.hstack([np.broadcast_to(affinity, (len(ids), affinity.shape[-1])), np.full((len(ids), m), np.nan)]),
        np.hstack([np.broadcast_to(similarity, (len(ids), similarity.shape[-1])), live_similarity]),
        np.hstack([builder.behaviour_scores(ids), extra]),
        np.hstack([builder.purchased_[rows].toarray().astype(bool), extra.astype(bool)]),
    )


def mark_new(result: DealResult, new_ids: np.ndarray, rules: DealRules) -> DealResult:
    """``result`` with the reason of each new product's deal saying it is new: :data:`NEW_PRODUCT_REASON`
    in place of the "similar to viewed" text, or ``"New product: "`` before the reasons that fired."""
    columns = result.deal_columns()
    is_new = np.isin(np.asarray(columns["product_id"], dtype=object), new_ids)
    if not is_new.any():
        return result
    similar = rules.reasons["similar_to_viewed"]
    reasons = np.asarray(columns["deal_reason"], dtype=object).copy()
    for i in np.flatnonzero(is_new):
        parts = [p for p in str(reasons[i]).split(", ") if p != similar]
        fired = bool(np.asarray(columns["similar_to_viewed"])[i])
        reasons[i] = ", ".join([NEW_PRODUCT_REASON, *parts]) if fired else "New product: " + ", ".join(parts)
    renewed = dict(columns) if not isinstance(columns, pd.DataFrame) else columns.assign(deal_reason=reasons)
    if not isinstance(columns, pd.DataFrame):
        renewed["deal_reason"] = reasons
    return DealResult(result.user_id, result.as_of, result.season, renewed, result.n_candidates, result.n_eligible,
                      result.n_requested, result.excluded, result.shortfall_reason)
