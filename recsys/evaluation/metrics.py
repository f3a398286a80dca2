"""Top-k recommendation metrics as plain functions: DataFrames in, a float out.

Conventions (Microsoft Recommenders style). ``recommended`` holds one row per
recommended (user, item) with a ``rank`` (1 = best); ``relevant`` holds one
row per relevant (user, item). Column names are keyword arguments with the
defaults ``user_col="user_id"``, ``item_col="product_id"``,
``rank_col="rank"``. Only a user's ``k`` best-ranked rows count (ordered by
rank, so ranks need not be contiguous).

Which users are averaged over
    Accuracy metrics (precision, recall, NDCG, MAP, hit rate) average over the
    users of ``relevant`` -- every user with at least one relevant item. A
    user with no recommendation rows scores 0; recommendations for users not
    in ``relevant`` are ignored. Beyond-accuracy metrics (diversity, novelty)
    average over the users of ``recommended``.

Notation: ``L_u`` the top-k list of user ``u``, ``R_u`` its relevant set,
``rel_u(i) = 1`` if the item at position ``i`` (1-based) of ``L_u`` is in
``R_u``, else 0.

Each ``<metric>`` returns the mean of ``<metric>_per_user``, which returns a
``pd.Series`` indexed by user (sorted) for bootstrap intervals
(:mod:`recsys.evaluation.statistics`).

Bad input (missing columns, nulls, a user listing the same item twice or the
same rank twice, non-positive ``k``, unknown items) raises ``ValueError``
naming the frame, the column and what was expected.
"""

from __future__ import annotations

import numbers
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.preprocessing import normalize

__all__ = [
    "ACCURACY_METRICS",
    "catalog_coverage",
    "hit_rate_at_k",
    "hit_rate_at_k_per_user",
    "intra_list_diversity_category",
    "intra_list_diversity_category_per_user",
    "intra_list_diversity_vectors",
    "intra_list_diversity_vectors_per_user",
    "item_popularity",
    "map_at_k",
    "map_at_k_per_user",
    "ndcg_at_k",
    "ndcg_at_k_per_user",
    "novelty",
    "novelty_per_user",
    "precision_at_k",
    "precision_at_k_per_user",
    "ranking_metrics_per_user",
    "recall_at_k",
    "recall_at_k_per_user",
    "seed_diversity_percent",
    "top_k_lists",
]

USER, ITEM, RANK = "user_id", "product_id", "rank"

#: the accuracy metrics computed by :func:`ranking_metrics_per_user`, in column order
ACCURACY_METRICS: tuple[str, ...] = ("precision", "recall", "ndcg", "map", "hit_rate")


# -- input checks ------------------------------------------------------------------------------------------------------
def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    return int(k)


def _require(frame: object, name: str, columns: list[str]) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s) {missing}; it has {list(frame.columns)}")
    nulls = [c for c in columns if frame[c].isna().any()]
    if nulls:
        raise ValueError(f"{name}.{nulls[0]} has {int(frame[nulls[0]].isna().sum())} missing value(s)")
    return frame[columns]


def top_k_lists(
    recommended: pd.DataFrame, k: int, *, user_col: str = USER, item_col: str = ITEM, rank_col: str = RANK
) -> pd.DataFrame:
    """The ``k`` best-ranked rows per user as ``user, item, pos`` (``pos`` 0-based),
    sorted by user then rank. Raises if a user lists an item or a rank twice."""
    k = _check_k(k)
    recs = _require(recommended, "recommended", [user_col, item_col, rank_col])
    if not pd.api.types.is_numeric_dtype(recs[rank_col]):
        raise ValueError(f"recommended.{rank_col} must be numeric, got dtype {recs[rank_col].dtype}")
    dup_item = recs.duplicated([user_col, item_col])
    if dup_item.any():
        ex = recs.loc[dup_item, [user_col, item_col]].head(3).to_dict("records")
        raise ValueError(f"recommended lists the same item twice for a user ({int(dup_item.sum())} rows; e.g. {ex})")
    dup_rank = recs.duplicated([user_col, rank_col])
    if dup_rank.any():
        ex = recs.loc[dup_rank, [user_col, rank_col]].head(3).to_dict("records")
        raise ValueError(f"recommended has the same rank twice for a user ({int(dup_rank.sum())} rows; e.g. {ex})")
    recs = recs.sort_values([user_col, rank_col], kind="stable")
    pos = recs.groupby(user_col, sort=False).cumcount().to_numpy()
    keep = pos < k
    return pd.DataFrame(
        {"user": recs[user_col].to_numpy()[keep], "item": recs[item_col].to_numpy()[keep], "pos": pos[keep]}
    )


@dataclass(frozen=True)
class _Hits:
    users: pd.Index  # evaluated users (those with >= 1 relevant item), sorted
    hits: np.ndarray  # bool, users x k: hits[u, i] = rel_u(i + 1)
    n_relevant: np.ndarray  # |R_u|


def _hits(
    recommended: pd.DataFrame, relevant: pd.DataFrame, k: int, user_col: str, item_col: str, rank_col: str
) -> _Hits:
    k = _check_k(k)
    top = top_k_lists(recommended, k, user_col=user_col, item_col=item_col, rank_col=rank_col)
    rel = _require(relevant, "relevant", [user_col, item_col]).drop_duplicates()
    if rel.empty:
        raise ValueError("relevant is empty: no user with a relevant item to evaluate")
    users = pd.Index(rel[user_col].unique()).sort_values()
    n_relevant = np.bincount(users.get_indexer(rel[user_col]), minlength=len(users))
    rel_keys = pd.MultiIndex.from_frame(rel[[user_col, item_col]])
    rows = users.get_indexer(top["user"])
    in_rel = pd.MultiIndex.from_arrays([top["user"], top["item"]]).isin(rel_keys) & (rows >= 0)
    hits = np.zeros((len(users), k), dtype=bool)
    hits[rows[in_rel], top["pos"].to_numpy()[in_rel]] = True
    return _Hits(users, hits, n_relevant)


def _discounts(k: int) -> np.ndarray:
    """``1 / log2(i + 1)`` for positions i = 1..k."""
    return 1.0 / np.log2(np.arange(2, k + 2))


# -- accuracy, per user ------------------------------------------------------------------------------------------------
def _series(values: np.ndarray, users: pd.Index, name: str) -> pd.Series:
    return pd.Series(values.astype(np.float64), index=pd.Index(users, name="user_id"), name=name)


def precision_at_k_per_user(
    recommended: pd.DataFrame, relevant: pd.DataFrame, k: int = 10, *,
    user_col: str = USER, item_col: str = ITEM, rank_col: str = RANK,
) -> pd.Series:
    """Precision@k of each user: ``|L_u ∩ R_u| / k``.

    The denominator is ``k`` even when fewer than ``k`` items were
    recommended (a short list is not rewarded)."""
    h = _hits(recommended, relevant, k, user_col, item_col, rank_col)
    return _series(h.hits.sum(axis=1) / h.hits.shape[1], h.users, "precision")


def recall_at_k_per_user(
    recommended: pd.DataFrame, relevant: pd.DataFrame, k: int = 10, *,
    user_col: str = USER, item_col: str = ITEM, rank_col: str = RANK,
) -> pd.Series:
    """Recall@k of each user: ``|L_u ∩ R_u| / |R_u|``."""
    h = _hits(recommended, relevant, k, user_col, item_col, rank_col)
    return _series(h.hits.sum(axis=1) / h.n_relevant, h.users, "recall")


def ndcg_at_k_per_user(
    recommended: pd.DataFrame, relevant: pd.DataFrame, k: int = 10, *,
    user_col: str = USER, item_col: str = ITEM, rank_col: str = RANK,
) -> pd.Series:
    """NDCG@k of each user, binary relevance, log2 discount:

    ``DCG@k = sum_{i=1..k} rel_u(i) / log2(i + 1)``,
    ``IDCG@k = sum_{i=1..min(|R_u|, k)} 1 / log2(i + 1)``,
    ``NDCG@k = DCG@k / IDCG@k`` (in [0, 1])."""
    h = _hits(recommended, relevant, k, user_col, item_col, rank_col)
    return _series(_ndcg(h), h.users, "ndcg")


def _ndcg(h: _Hits) -> np.ndarray:
    k = h.hits.shape[1]
    disc = _discounts(k)
    dcg = h.hits @ disc
    idcg = np.cumsum(disc)[np.minimum(h.n_relevant, k) - 1]
    return dcg / idcg


def map_at_k_per_user(
    recommended: pd.DataFrame, relevant: pd.DataFrame, k: int = 10, *,
    user_col: str = USER, item_col: str = ITEM, rank_col: str = RANK,
) -> pd.Series:
    """Average precision@k of each user (MAP@k is its mean):

    ``AP@k = (1 / min(|R_u|, k)) * sum_{i=1..k} P@i * rel_u(i)`` with
    ``P@i = (1/i) sum_{j<=i} rel_u(j)``. The normaliser ``min(|R_u|, k)`` is
    the most hits a list of length k can hold, so a perfect list scores 1."""
    h = _hits(recommended, relevant, k, user_col, item_col, rank_col)
    return _series(_average_precision(h), h.users, "map")


def _average_precision(h: _Hits) -> np.ndarray:
    k = h.hits.shape[1]
    prec_at_i = np.cumsum(h.hits, axis=1) / np.arange(1, k + 1)
    return (prec_at_i * h.hits).sum(axis=1) / np.minimum(h.n_relevant, k)


def hit_rate_at_k_per_user(
    recommended: pd.DataFrame, relevant: pd.DataFrame, k: int = 10, *,
    user_col: str = USER, item_col: str = ITEM, rank_col: str = RANK,
) -> pd.Series:
    """Hit rate@k of each user: 1 if ``|L_u ∩ R_u| >= 1`` else 0."""
    h = _hits(recommended, relevant, k, user_col, item_col, rank_col)
    return _series(h.hits.any(axis=1), h.users, "hit_rate")


def ranking_metrics_per_user(
    recommended: pd.DataFrame, relevant: pd.DataFrame, k: int = 10, *,
    user_col: str = USER, item_col: str = ITEM, rank_col: str = RANK,
) -> pd.DataFrame:
    """All accuracy metrics at once (one join): a DataFrame indexed by user
    with columns :data:`ACCURACY_METRICS`; definitions as in the per-user
    functions."""
    h = _hits(recommended, relevant, k, user_col, item_col, rank_col)
    n_hits = h.hits.sum(axis=1)
    frame = pd.DataFrame(
        {
            "precision": n_hits / h.hits.shape[1],
            "recall": n_hits / h.n_relevant,
            "ndcg": _ndcg(h),
            "map": _average_precision(h),
            "hit_rate": h.hits.any(axis=1).astype(np.float64),
        },
        index=pd.Index(h.users, name="user_id"),
    )
    return frame


# -- accuracy, aggregate -----------------------------------------------------------------------------------------------
def precision_at_k(recommended: pd.DataFrame, relevant: pd.DataFrame, k: int = 10, **cols: str) -> float:
    """Mean over users with a relevant item of ``|L_u ∩ R_u| / k``."""
    return float(precision_at_k_per_user(recommended, relevant, k, **cols).mean())


def recall_at_k(recommended: pd.DataFrame, relevant: pd.DataFrame, k: int = 10, **cols: str) -> float:
    """Mean over users with a relevant item of ``|L_u ∩ R_u| / |R_u|``."""
    return float(recall_at_k_per_user(recommended, relevant, k, **cols).mean())


def ndcg_at_k(recommended: pd.DataFrame, relevant: pd.DataFrame, k: int = 10, **cols: str) -> float:
    """Mean NDCG@k (binary relevance, log2 discount, IDCG over min(|R_u|, k)
    positions); see :func:`ndcg_at_k_per_user`."""
    return float(ndcg_at_k_per_user(recommended, relevant, k, **cols).mean())


def map_at_k(recommended: pd.DataFrame, relevant: pd.DataFrame, k: int = 10, **cols: str) -> float:
    """MAP@k: mean of AP@k normalised by min(|R_u|, k); see :func:`map_at_k_per_user`."""
    return float(map_at_k_per_user(recommended, relevant, k, **cols).mean())


def hit_rate_at_k(recommended: pd.DataFrame, relevant: pd.DataFrame, k: int = 10, **cols: str) -> float:
    """Share of users with a relevant item that get at least one of them in the top k."""
    return float(hit_rate_at_k_per_user(recommended, relevant, k, **cols).mean())


# -- beyond accuracy ---------------------------------------------------------------------------------------------------
def catalog_coverage(
    recommended: pd.DataFrame, catalog: Collection[str] | pd.Index, k: int = 10, *,
    user_col: str = USER, item_col: str = ITEM, rank_col: str = RANK,
) -> float:
    """Catalog coverage@k: ``|union_u L_u| / |catalog|``, the share of the
    catalog that appears in at least one top-k list. Every recommended item
    must be in ``catalog``."""
    catalog = pd.Index(catalog).unique()
    if len(catalog) == 0:
        raise ValueError("catalog is empty: coverage needs at least one item")
    top = top_k_lists(recommended, k, user_col=user_col, item_col=item_col, rank_col=rank_col)
    items = pd.Index(top["item"].unique())
    unknown = items.difference(catalog)
    if len(unknown):
        raise ValueError(f"recommended.{item_col} has {len(unknown)} item(s) not in the catalog, e.g. {list(unknown[:3])}")
    return len(items) / len(catalog)


def _lookup(mapping: Mapping[str, object] | pd.Series, name: str) -> pd.Series:
    series = mapping if isinstance(mapping, pd.Series) else pd.Series(dict(mapping))
    if series.index.has_duplicates:
        raise ValueError(f"{name} has duplicate item ids, e.g. {list(series.index[series.index.duplicated()][:3])}")
    return series


def intra_list_diversity_category_per_user(
    recommended: pd.DataFrame, item_categories: Mapping[str, str] | pd.Series, k: int = 10, *,
    user_col: str = USER, item_col: str = ITEM, rank_col: str = RANK,
) -> pd.Series:
    """Intra-list category diversity of each user's top-k list: the share of
    unordered item pairs whose categories differ,

    ``ILD_cat(L) = (1 / C(n, 2)) * sum_{i<j} [cat(i) != cat(j)] = 1 - sum_c C(n_c, 2) / C(n, 2)``

    with ``n = |L|`` and ``n_c`` the items of category ``c``. In [0, 1]. A
    list with fewer than two items has no pairs: NaN (left out of the mean).
    ``item_categories`` maps item id -> category and must cover every
    recommended item."""
    cats = _lookup(item_categories, "item_categories")
    top = top_k_lists(recommended, k, user_col=user_col, item_col=item_col, rank_col=rank_col)
    cat = cats.reindex(top["item"]).to_numpy()
    missing = pd.isna(cat)
    if missing.any():
        raise ValueError(f"item_categories has no category for {int(missing.sum())} recommended item(s), "
                         f"e.g. {list(top['item'][missing][:3])}")
    users = pd.Index(top["user"].unique()).sort_values()
    counts = pd.DataFrame({"user": top["user"], "cat": cat}).groupby(["user", "cat"]).size()
    same = (counts * (counts - 1) / 2).groupby(level="user").sum().reindex(users).to_numpy()
    n = counts.groupby(level="user").sum().reindex(users).to_numpy().astype(np.float64)
    pairs = n * (n - 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(pairs > 0, 1.0 - same / pairs, np.nan)
    return _series(values, users, "ild_category")


def intra_list_diversity_category(
    recommended: pd.DataFrame, item_categories: Mapping[str, str] | pd.Series, k: int = 10, **cols: str
) -> float:
    """Mean intra-list category diversity over users with >= 2 recommended
    items; see :func:`intra_list_diversity_category_per_user`."""
    return _nanmean(intra_list_diversity_category_per_user(recommended, item_categories, k, **cols))


def intra_list_diversity_vectors_per_user(
    recommended: pd.DataFrame, item_vectors: np.ndarray | sp.spmatrix, item_ids: Collection[str] | pd.Index,
    k: int = 10, *, user_col: str = USER, item_col: str = ITEM, rank_col: str = RANK,
) -> pd.Series:
    """Intra-list distance of each user's top-k list: the mean pairwise
    cosine distance of the items' vectors (e.g. TF-IDF rows),

    ``ILD_vec(L) = (1 / C(n, 2)) * sum_{i<j} (1 - cos(x_i, x_j))``.

    ``item_vectors`` row ``r`` is the vector of ``item_ids[r]``. A zero vector
    has cosine 0 with everything (distance 1), as in scikit-learn. Computed
    without forming pair matrices: with unit rows ``x̂``,
    ``sum_{i != j} x̂_i·x̂_j = ||sum_i x̂_i||² - sum_i ||x̂_i||²``.
    Lists with fewer than two items: NaN."""
    ids = pd.Index(item_ids)
    if ids.has_duplicates:
        raise ValueError("item_ids has duplicates; each row of item_vectors must be one item")
    if item_vectors.shape[0] != len(ids):
        raise ValueError(f"item_vectors has {item_vectors.shape[0]} rows but item_ids has {len(ids)} ids")
    top = top_k_lists(recommended, k, user_col=user_col, item_col=item_col, rank_col=rank_col)
    cols = ids.get_indexer(top["item"])
    if (cols < 0).any():
        raise ValueError(f"item_ids lacks {int((cols < 0).sum())} recommended item(s), e.g. "
                         f"{list(top['item'][cols < 0][:3])}")
    unit = sp.csr_matrix(normalize(sp.csr_matrix(item_vectors, dtype=np.float64)))[cols]
    users = pd.Index(top["user"].unique()).sort_values()
    rows = users.get_indexer(top["user"])
    member = sp.csr_matrix((np.ones(len(top)), (rows, np.arange(len(top)))), shape=(len(users), len(top)))
    summed = member @ unit
    sq_norm_of_sum = np.asarray(summed.multiply(summed).sum(axis=1)).ravel()
    sum_of_sq_norms = member @ np.asarray(unit.multiply(unit).sum(axis=1)).ravel()
    n = np.bincount(rows, minlength=len(users)).astype(np.float64)
    ordered_pairs = n * (n - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_cos = (sq_norm_of_sum - sum_of_sq_norms) / ordered_pairs
        values = np.where(ordered_pairs > 0, 1.0 - mean_cos, np.nan)
    return _series(np.clip(values, 0.0, 2.0), users, "ild_vectors")


def intra_list_diversity_vectors(
    recommended: pd.DataFrame, item_vectors: np.ndarray | sp.spmatrix, item_ids: Collection[str] | pd.Index,
    k: int = 10, **cols: str,
) -> float:
    """Mean intra-list cosine distance over users with >= 2 recommended items;
    see :func:`intra_list_diversity_vectors_per_user`."""
    return _nanmean(intra_list_diversity_vectors_per_user(recommended, item_vectors, item_ids, k, **cols))


def item_popularity(
    events: pd.DataFrame, catalog: Collection[str] | pd.Index, n_users: int, *,
    user_col: str = USER, item_col: str = ITEM,
) -> pd.Series:
    """Smoothed popularity of each catalog item for :func:`novelty`:

    ``p(i) = (|U_i| + 1) / (n_users + 1)``

    with ``U_i`` the distinct users with any event on ``i`` in ``events``
    (the training events). The +1 keeps never-seen items finite
    (``-log2 p <= log2(n_users + 1)``)."""
    if isinstance(n_users, bool) or not isinstance(n_users, numbers.Integral) or n_users < 1:
        raise ValueError(f"n_users must be a positive int, got {n_users!r}")
    ev = _require(events, "events", [user_col, item_col])
    catalog = pd.Index(catalog).unique()
    unknown = pd.Index(ev[item_col].unique()).difference(catalog)
    if len(unknown):
        raise ValueError(f"events.{item_col} has {len(unknown)} item(s) not in the catalog, e.g. {list(unknown[:3])}")
    users_per_item = ev.drop_duplicates([user_col, item_col]).groupby(item_col).size()
    if len(users_per_item) and users_per_item.max() > n_users:
        raise ValueError(f"n_users={n_users} is smaller than the {int(users_per_item.max())} users of one item")
    counts = users_per_item.reindex(catalog, fill_value=0).to_numpy()
    return pd.Series((counts + 1) / (n_users + 1), index=pd.Index(catalog, name=item_col), name="popularity")


def novelty_per_user(
    recommended: pd.DataFrame, popularity: Mapping[str, float] | pd.Series, k: int = 10, *,
    user_col: str = USER, item_col: str = ITEM, rank_col: str = RANK,
) -> pd.Series:
    """Novelty of each user's top-k list: the mean self-information of its items,

    ``nov(L) = (1 / |L|) * sum_{i in L} -log2 p(i)``

    with ``p(i)`` the item's popularity in (0, 1] (see :func:`item_popularity`);
    higher = less popular items, in bits."""
    pop = _lookup(popularity, "popularity").astype(np.float64)
    top = top_k_lists(recommended, k, user_col=user_col, item_col=item_col, rank_col=rank_col)
    p = pop.reindex(top["item"]).to_numpy()
    if np.isnan(p).any():
        raise ValueError(f"popularity has no value for {int(np.isnan(p).sum())} recommended item(s), "
                         f"e.g. {list(top['item'][np.isnan(p)][:3])}")
    if ((p <= 0) | (p > 1)).any():
        raise ValueError(f"popularity must lie in (0, 1], got values from {p.min()} to {p.max()}")
    info = pd.Series(-np.log2(p)).groupby(top["user"].to_numpy()).mean()
    return _series(info.to_numpy(), info.index, "novelty")


def novelty(recommended: pd.DataFrame, popularity: Mapping[str, float] | pd.Series, k: int = 10, **cols: str) -> float:
    """Mean over users of the mean self-information ``-log2 p(i)`` of their top-k items (bits)."""
    return float(novelty_per_user(recommended, popularity, k, **cols).mean())


def seed_diversity_percent(
    recommended: pd.DataFrame, item_categories: Mapping[str, str] | pd.Series, k: int = 10, **cols: str
) -> float:
    """The design's "Recommendation Diversity 70-85%", made measurable.

    The seed gives a percentage without a definition. This project reads it
    as **intra-list category diversity in percent**: ``100 * ILD_cat@k``, the
    share of pairs in a user's top-k list that come from different
    categories, averaged over users (see
    :func:`intra_list_diversity_category_per_user`). It is a per-list
    property in [0, 100] that a percentage range can sensibly describe;
    a list drawn uniformly from C equally sized categories scores about
    ``100 * (1 - 1/C)`` (90 with the ten categories), a single-category list 0.
    Catalog coverage is reported beside it as the aggregate view."""
    return 100.0 * intra_list_diversity_category(recommended, item_categories, k, **cols)


def _nanmean(series: pd.Series) -> float:
    if series.notna().sum() == 0:
        raise ValueError(f"{series.name}: no list with at least two items, the metric is undefined")
    return float(series.mean(skipna=True))
