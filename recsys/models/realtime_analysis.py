"""Descriptive helpers for the Stage 1 chapter: neighbour lists, histories, latency.

Everything here reads fitted models; nothing is learned.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.interactions import Interactions

__all__ = [
    "similarity_summary",
    "category_agreement",
    "with_product_details",
    "user_history",
    "latencies_ms",
    "latency_summary",
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


def latencies_ms(call: Callable[[str], object], user_ids: Sequence[str], warmup: int = 20) -> np.ndarray:
    """Wall-clock milliseconds of ``call(user_id)`` for each id, after a warm-up."""
    for user in list(user_ids)[:warmup]:
        call(user)
    out = np.empty(len(user_ids))
    for i, user in enumerate(user_ids):
        start = time.perf_counter_ns()
        call(user)
        out[i] = (time.perf_counter_ns() - start) / 1e6
    return out


def latency_summary(samples: dict[str, np.ndarray]) -> pd.DataFrame:
    """p50/p95/p99/max (ms) per named latency sample."""
    rows = []
    for name, values in samples.items():
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        rows.append({"path": name, "requests": len(values), "p50_ms": p50, "p95_ms": p95, "p99_ms": p99,
                     "max_ms": float(values.max())})
    return pd.DataFrame(rows)
