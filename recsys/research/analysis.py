"""Descriptive helpers for the notebooks: neighbour lists, histories,
latency (Stage 1), list overlap and example users (Stage 3).

Everything here reads fitted models; nothing is learned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.interactions import Interactions
from recsys.models.base import check_n

__all__ = [
    "similarity_summary",
    "category_agreement",
    "with_product_details",
    "user_history",
    "latency_summary",
    "overlap_at_k",
    "example_users",
]

_DETAILS = ["name", "category", "price"]


def similarity_summary(similarity: sp.csr_matrix, k: int) -> pd.DataFrame:
    """One row of statistics of a top-``k`` neighbour matrix: items, stored
    neighbours, items with a full list, items with none, quantiles of the
    kept similarities."""
    per_item = np.diff(similarity.indptr)
    values = similarity.data.astype(np.float64)
    q = np.quantile(values, [0.1, 0.5, 0.9]) if len(values) else np.full(3, np.nan)
    return pd.DataFrame([{
        "items": similarity.shape[0],
        "neighbours_stored": int(similarity.nnz),
        "mean_neighbours": float(per_item.mean()) if len(per_item) else 0.0,
        "share_full_lists": float((per_item == k).mean()) if len(per_item) else 0.0,
        "share_no_neighbours": float((per_item == 0).mean()) if len(per_item) else 0.0,
        "similarity_p10": q[0], "similarity_median": q[1], "similarity_p90": q[2],
        "similarity_mean": float(values.mean()) if len(values) else np.nan,
    }])


def category_agreement(similarity: sp.csr_matrix, categories: Sequence[str]) -> tuple[float, float]:
    """Share of stored neighbour pairs in the same category, and the share
    expected if neighbours were drawn at random (``sum_c share_c^2``, over
    items that have neighbours)."""
    cats = pd.Index(np.asarray(categories, dtype=object))
    codes = pd.factorize(cats)[0]
    rows = np.repeat(np.arange(similarity.shape[0]), np.diff(similarity.indptr))
    observed = float((codes[rows] == codes[similarity.indices]).mean()) if similarity.nnz else float("nan")
    share = np.bincount(codes) / len(codes)
    return observed, float((share**2).sum())


def with_product_details(frame: pd.DataFrame, products: pd.DataFrame, column: str = "product_id") -> pd.DataFrame:
    """``frame`` with each product's name, category and price inserted after
    ``column`` (prefixed ``neighbour_`` for a column ``neighbour_id``)."""
    details = products.set_index("product_id")[_DETAILS]
    extra = details.reindex(frame[column].to_numpy())
    prefix = "" if column == "product_id" else column.removesuffix("_id") + "_"
    out = frame.copy()
    at = out.columns.get_loc(column) + 1
    for i, name in enumerate(_DETAILS):
        out.insert(at + i, prefix + name, extra[name].to_numpy())
    return out


def user_history(interactions: Interactions, user_id: str, n: int = 10) -> pd.DataFrame:
    """A user's ``n`` strongest interactions: ``product_id, weight, purchased``."""
    row = interactions.user_index([user_id])[0]
    if row < 0:
        raise ValueError(f"unknown user id {user_id!r}")
    m = interactions.matrix
    cols, weights = m.indices[m.indptr[row] : m.indptr[row + 1]], m.data[m.indptr[row] : m.indptr[row + 1]]
    order = np.lexsort((cols, -weights))[:n]
    bought = set(interactions.purchased[row].indices)
    return pd.DataFrame({
        "product_id": np.asarray(interactions.product_ids, dtype=object)[cols[order]],
        "weight": weights[order],
        "purchased": [c in bought for c in cols[order]],
    })


def latency_summary(samples: dict[str, np.ndarray]) -> pd.DataFrame:
    """p50/p95/p99/max (ms) per named latency sample."""
    rows = []
    for name, values in samples.items():
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        rows.append({"path": name, "requests": len(values), "p50_ms": p50, "p95_ms": p95, "p99_ms": p99,
                     "max_ms": float(values.max())})
    return pd.DataFrame(rows)


def overlap_at_k(a: pd.DataFrame, b: pd.DataFrame, k: int = 10) -> float:
    """Mean over the users of ``a`` of ``|top_k(a) & top_k(b)| / k`` (lists
    from ``recommend`` frames: ``user_id, product_id, rank``); 1 = same sets."""
    k = check_n(k, "k")
    top_a = a.loc[a["rank"] <= k, ["user_id", "product_id"]]
    top_b = b.loc[b["rank"] <= k, ["user_id", "product_id"]]
    users = pd.Index(top_a["user_id"].unique())
    if users.empty:
        raise ValueError("overlap_at_k needs at least one recommendation in a")
    shared = top_a.merge(top_b, on=["user_id", "product_id"]).groupby("user_id").size()
    return float(shared.reindex(users, fill_value=0).mean() / k)


def example_users(interactions: Interactions, min_history: int = 5) -> dict[str, str]:
    """Three users that show the fusion at work:

    * ``heavy``: the most distinct products interacted with (ties: first row);
    * ``new``: the first user without any interaction (``"new_visitor"``, an
      unknown id, if every user has history);
    * ``niche``: among users with at least ``min_history`` products, the
      highest mean novelty ``-log2(p_i)`` of their products, ``p_i`` the share
      of users who interacted with product ``i``.
    """
    lengths = np.diff(interactions.matrix.indptr)
    ids = np.asarray(interactions.user_ids, dtype=object)
    empty = np.flatnonzero(lengths == 0)
    binary = interactions.matrix.astype(bool).astype(np.float64)
    share = np.asarray(binary.sum(axis=0)).ravel() / max(len(ids), 1)
    surprisal = -np.log2(np.where(share > 0, share, 1.0))
    mean_novelty = np.asarray(binary @ surprisal).ravel() / np.maximum(lengths, 1)
    eligible = lengths >= min_history
    if not eligible.any():
        raise ValueError(f"no user has at least {min_history} products; lower min_history")
    return {
        "heavy": str(ids[int(np.argmax(lengths))]),
        "new": str(ids[empty[0]]) if len(empty) else "new_visitor",
        "niche": str(ids[int(np.argmax(np.where(eligible, mean_novelty, -np.inf)))]),
    }
