"""The candidate frame (the deal engine's one input contract) and the four deal types.

Candidate frame: one row per product that may get a deal for one user.

=======================  ========  =====================================================
column                   dtype     rule / meaning
=======================  ========  =====================================================
product_id               str       unique, non-empty
name, category           str       as in ``Dataset.products``
price                    float     list price, finite, > 0
cost                     float     unit cost > 0; NaN = unknown (product gets no deal)
stock                    int       units in stock, whole number >= 0 (0: no deal)
demand_score             float     predicted demand, 0..100 (Stage 2)
affinity                 float     the user's Stage 2 affinity (any scale); NaN = none
similarity_to_viewed     float     0..1, similarity to the items the user views most
behaviour_score          float     0..1, from the user's own carts/wishlist (below)
purchased                bool      the user has bought the product
sales                    float     recent units sold (all users), >= 0
category_price_quantile  float     optional, 0..1: price percentile within the category
=======================  ========  =====================================================

A missing ``category_price_quantile`` is computed within the frame (so pass
the whole catalogue, or the column). Extra columns are kept (extra pricing
factors may read them). For many users at once the same data is held as a
:class:`CandidateBlock` (product columns once, per-user columns as users x
products matrices); :class:`CandidateBuilder` assembles either from a
``Dataset`` plus Stage 2 arrays, so the engine only passes arrays.

Deal types (each fires or not per product and has a strength in [0, 1]):

1. ``high_affinity``: affinity percentile (among the user's finite
   affinities, ties averaged) above ``affinity_quantile`` and ``sales`` at or
   below the ``low_sales_quantile`` of the catalogue's sales; strength =
   affinity percentile. ("Not bought" holds for every type: purchased
   products are excluded.)
2. ``similar_to_viewed``: ``similarity_to_viewed > 0`` and its percentile
   above ``similarity_quantile``; strength = similarity percentile.
3. ``regional_seasonal``: the category is in
   ``config.boosted_categories(region, season)``; strength = affinity
   percentile (0.5 when the user has no affinity scores).
4. ``personalized``: ``behaviour_score >= behaviour_min``; strength =
   ``behaviour_score``.

Ranking score: ``score = 100 * sum_t w_t * fired_t * strength_t / sum_t w_t``
(``w_t = type_weights``, equal by default): products with more and stronger
reasons rank first; ties break by ``product_id``.

``behaviour_score = 0.5 * intent + 0.5 * category_share``: ``intent`` is 1 for
a product the user put in the cart but never bought, the ``favorite/cart``
weight ratio (2/3 by default) for one only wish-listed and never bought, else
0; ``category_share`` is the category's share of the user's unconverted cart
and wishlist events, each event weighted by its type weight and time decay
(:func:`recsys.interactions.event_weights`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.config import EVENT_TYPES
from recsys.data.dataset import Dataset
from recsys.deals.candidate_block import CandidateBlock
from recsys.deals.candidate_contract import (
    CANDIDATE_COLUMNS,
    PRODUCT_COLUMNS,
    USER_COLUMNS,
    category_price_quantile,
    check_values,
    validate_candidates,
)
from recsys.deals.deal_types import DEAL_TYPES, DealRules, deal_type_scores, type_arrays, type_labels
from recsys.interactions import compact_csr, dataset_event_weights

__all__ = [
    "CANDIDATE_COLUMNS",
    "DEAL_TYPES",
    "PRODUCT_COLUMNS",
    "USER_COLUMNS",
    "CandidateBlock",
    "CandidateBuilder",
    "DealRules",
    "build_candidates",
    "deal_type_scores",
    "type_arrays",
    "type_labels",
    "validate_candidates",
]


def _per_product(values: Any, product_ids: pd.Index, name: str, fill: float | None) -> np.ndarray:
    """A float array in ``product_ids`` order from an array (already in that
    order, last axis = products) or a Series indexed by product id (missing
    ids -> ``fill``, or an error when ``fill`` is None)."""
    if isinstance(values, pd.Series):
        unknown = values.index.difference(product_ids)
        if len(unknown):
            raise ValueError(f"{name} has {len(unknown)} product ids not in the data set, e.g. {list(unknown[:3])}")
        aligned = values.reindex(product_ids).astype(float)
        if fill is None and aligned.isna().any():
            missing = product_ids[aligned.isna().to_numpy()]
            raise ValueError(f"{name} lacks {len(missing)} products, e.g. {list(missing[:3])}")
        return aligned.to_numpy() if fill is None else aligned.fillna(fill).to_numpy()
    array = np.asarray(values, dtype=float)
    if array.ndim not in (1, 2) or array.shape[-1] != len(product_ids):
        raise ValueError(f"{name} must have one value per product (last axis {len(product_ids)}), got shape {array.shape}")
    return array


class CandidateBuilder:
    """Per-dataset precomputation for assembling candidate frames and blocks.

    ``sales`` is the number of units purchased in the ``sales_window_days``
    before ``dataset.as_of``; ``category_price_quantile`` the price percentile
    within the category over the whole catalogue; ``behaviour_score`` as in
    the module docstring.
    """

    def __init__(self, dataset: Dataset, sales_window_days: float = 30.0) -> None:
        if not isinstance(dataset, Dataset):
            raise TypeError(f"CandidateBuilder expects a recsys Dataset, got {type(dataset).__name__}")
        if not (isinstance(sales_window_days, (int, float)) and sales_window_days > 0):
            raise ValueError(f"sales_window_days must be a number > 0, got {sales_window_days!r}")
        self.dataset = dataset
        products, events = dataset.products, dataset.events
        self.user_ids = pd.Index(dataset.users["user_id"])
        self.product_ids = pd.Index(products["product_id"])
        self._user_row = {u: i for i, u in enumerate(self.user_ids)}
        codes = dataset.event_index()  # the data set's cached per-event rows, columns and kinds
        rows, cols = codes.user_row, codes.product_col
        shape = (len(self.user_ids), len(self.product_ids))
        kind = codes.kind  # int8 position in EVENT_TYPES (no per-event strings)
        view, purchase, cart, favorite_code = (EVENT_TYPES.index(e) for e in ("view", "purchase", "cart", "favorite"))

        def matrix(mask: np.ndarray) -> sp.csr_matrix:
            """Events per (user, product), float64; summed in float32 when every count is below 2**24
            (integers: exact there, the same float64 values, half the per-event buffers)."""
            n = int(mask.sum())
            out = sp.csr_matrix((np.ones(n, dtype=np.float32 if n < 2**24 else np.float64), (rows[mask], cols[mask])),
                                shape=shape)
            out.sum_duplicates()
            return compact_csr(out).astype(np.float64, copy=False)

        self.views_ = matrix(kind == view)
        self.purchased_ = matrix(kind == purchase).astype(bool)
        carted = matrix(kind == cart).astype(bool).astype(float)
        favorite = matrix(kind == favorite_code).astype(bool).astype(float)
        weights = dataset.config.interactions
        intent = carted.maximum(favorite * (weights.favorite / weights.cart))
        self.intent_ = (intent - intent.multiply(self.purchased_)).tocsr()
        self.intent_.eliminate_zeros()
        # unconverted cart/wishlist events, weighted, per user x category
        # cart/wishlist events whose (user, product) was never purchased (looked up for those events only)
        unconverted = np.flatnonzero((kind == cart) | (kind == favorite_code))
        if len(unconverted):
            converted = np.asarray(self.purchased_[rows[unconverted], cols[unconverted]]).ravel().astype(bool)
            unconverted = unconverted[~converted]
        w = dataset_event_weights(dataset, weights, unconverted)  # theirs only: no per-event temporaries
        self.categories_ = pd.Index(sorted(products["category"].unique()))
        self.product_category_ = self.categories_.get_indexer(products["category"])
        per_user_cat = sp.csr_matrix(
            (w, (rows[unconverted], self.product_category_[cols[unconverted]])),
            shape=(shape[0], len(self.categories_)),
        ).toarray()
        totals = per_user_cat.sum(axis=1, keepdims=True)
        self.category_share_ = np.divide(per_user_cat, totals, out=np.zeros_like(per_user_cat), where=totals > 0)
        since = dataset.as_of - pd.Timedelta(days=sales_window_days)
        recent = (kind == purchase) & (events["timestamp"] > since).to_numpy()
        recent = np.flatnonzero(recent)  # the recent purchases' quantities only (not a float copy of every event's)
        self.sales_ = np.bincount(cols[recent], weights=events["quantity"].iloc[recent].to_numpy(dtype=float),
                                  minlength=shape[1])
        self.category_price_quantile_ = category_price_quantile(
            products["category"].to_numpy(dtype=object), products["price"].to_numpy(dtype=float)
        )
        self._static = {
            "product_id": products["product_id"].to_numpy(dtype=object),
            "name": products["name"].to_numpy(dtype=object),
            "category": products["category"].to_numpy(dtype=object),
            "price": products["price"].to_numpy(dtype=float),
            "cost": products["cost"].to_numpy(dtype=float),
            "stock": products["stock"].to_numpy(dtype=np.int64),
        }
        self._product_state = (self._static, self.category_price_quantile_)

    @classmethod
    def freeing_index(cls, dataset: Dataset, sales_window_days: float = 30.0) -> CandidateBuilder:
        """A builder for ``dataset``, then its cached :meth:`~recsys.data.dataset.Dataset.event_index` released
        (~17 bytes per event; recomputed, identical, by whoever asks for it next): the engine's last user of it."""
        builder = cls(dataset, sales_window_days)
        dataset.release_event_index()
        return builder

    def rows(self, user_ids: Sequence[str] | str) -> np.ndarray:
        """Row of each user id in the data set; ``ValueError`` for unknown ids."""
        ids = [user_ids] if isinstance(user_ids, str) else list(user_ids)
        unknown = [u for u in ids if u not in self._user_row]
        if unknown:
            raise ValueError(f"unknown user_id(s) {unknown[:3]!r}: not in the data set's users")
        return np.array([self._user_row[u] for u in ids], dtype=np.int64)

    def behaviour_scores(self, user_ids: Sequence[str] | str) -> np.ndarray:
        """``0.5 * intent + 0.5 * category_share``: users x products (one
        row, 1-D, for a single id given as a string)."""
        rows = self.rows(user_ids)
        intent = self.intent_[rows].toarray()
        out = 0.5 * intent + 0.5 * self.category_share_[rows][:, self.product_category_]
        return out[0] if isinstance(user_ids, str) else out

    def similarity_to_viewed(
        self, user_ids: Sequence[str] | str, item_similarity: np.ndarray | sp.spmatrix, top_k: int = 5
    ) -> np.ndarray:
        """Users x products (1-D for a single id given as a string): max
        similarity of each product to the user's ``top_k`` most viewed
        products (ties: catalogue order), a product's similarity to itself
        left out, clipped to [0, 1]; zeros for a user without views.
        ``item_similarity`` needs ``shape`` and row indexing ``[rows]``
        (dense, sparse, or an adapter computing rows on demand)."""
        n = len(self.product_ids)
        if item_similarity.shape != (n, n):
            raise ValueError(f"item_similarity must be products x products {(n, n)}, got {item_similarity.shape}")
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"top_k must be a positive int, got {top_k!r}")
        ids = [user_ids] if isinstance(user_ids, str) else list(user_ids)
        out = np.zeros((len(ids), n))
        for i, seeds in enumerate(self.viewed_seeds(ids, top_k)):
            if len(seeds):
                block = item_similarity[seeds]
                block = block.toarray() if sp.issparse(block) else np.array(block, dtype=float)
                block[np.arange(len(seeds)), seeds] = 0.0
                out[i] = np.clip(block.max(axis=0), 0.0, 1.0)
        return out[0] if isinstance(user_ids, str) else out

    def viewed_seeds(self, user_ids: Sequence[str], top_k: int = 5) -> list[np.ndarray]:
        """Each user's ``top_k`` most viewed product columns (most viewed first, ties by column)."""
        views = self.views_
        out = []
        for r in self.rows(user_ids):
            cols = views.indices[views.indptr[r]:views.indptr[r + 1]]  # canonical: sorted columns
            counts = views.data[views.indptr[r]:views.indptr[r + 1]]
            order = np.lexsort((cols, -counts))[:top_k]
            out.append(cols[order][counts[order] > 0])
        return out

    def _product_arrays(self, demand_score: Any) -> dict[str, np.ndarray]:
        demand = _per_product(demand_score, self.product_ids, "demand_score", None)
        if demand.shape != (len(self.product_ids),):
            raise ValueError(f"demand_score must have one value per product ({len(self.product_ids)},), got {demand.shape}")
        check_values({"demand_score": demand})
        static, quantile = self._products  # one reference: a concurrent update_products is seen whole or not at all
        return {**static, "demand_score": demand, "sales": self.sales_, "category_price_quantile": quantile}

    @property
    def _products(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        return self._product_state

    def update_products(self, cols: np.ndarray, price: np.ndarray | None = None, cost: np.ndarray | None = None,
                        stock: np.ndarray | None = None) -> None:
        """Current ``price``/``cost``/``stock`` of the products at catalogue columns ``cols`` (NaN: unchanged),
        for every candidate built from now on (stock 0: no deal; the margin floor of the new cost).
        Copy-on-write: new arrays replace the old ones by one assignment, requests in flight keep theirs."""
        static, _ = self._products
        static = dict(static)
        for name, values, dtype in (("price", price, float), ("cost", cost, float), ("stock", stock, np.int64)):
            if values is None:
                continue
            values = np.asarray(values, dtype=float)
            given = ~np.isnan(values)
            if given.any():
                array = static[name].copy()
                array[np.asarray(cols)[given]] = values[given].astype(dtype)
                static[name] = array
        check_values({k: static[k] for k in ("price", "cost", "stock")})
        quantile = category_price_quantile(static["category"], static["price"])
        self._static, self.category_price_quantile_ = static, quantile
        self._product_state = (static, quantile)

    def product_table(self, demand_score: Any) -> pd.DataFrame:
        """The product columns of the candidate frame (:data:`PRODUCT_COLUMNS`)."""
        return pd.DataFrame(self._product_arrays(demand_score))

    def build_block(
        self, user_ids: Sequence[str], affinity: Any, demand_score: Any, similarity: Any = None
    ) -> CandidateBlock:
        """A :class:`CandidateBlock` for ``user_ids``: ``affinity`` and
        ``similarity`` are users x products arrays in catalogue order (NaN
        affinity = none; similarity None = zeros), ``demand_score`` one value
        per product (array or Series by product id)."""
        ids = [user_ids] if isinstance(user_ids, str) else list(user_ids)
        rows = self.rows(ids)
        shape = (len(ids), len(self.product_ids))
        affinity = np.broadcast_to(_per_product(affinity, self.product_ids, "affinity", np.nan), shape)
        similarity = np.zeros(shape) if similarity is None else np.broadcast_to(
            _per_product(similarity, self.product_ids, "similarity", 0.0), shape)
        arrays, memo = self._valid_products(demand_score)
        return CandidateBlock.over_valid_products(
            arrays, memo, np.asarray(ids, dtype=object), affinity, similarity,
            self.behaviour_scores(ids), self.purchased_[rows].toarray().astype(bool),
        )

    def _valid_products(self, demand_score: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The product table validated as a :class:`CandidateBlock` does it,
        and its memo of derived values; kept for the last demand scores seen
        (the table is static between Stage 2 runs and product updates, so a
        request does not re-validate it)."""
        demand = _per_product(demand_score, self.product_ids, "demand_score", None)
        cached = self.__dict__.get("_products_cache")
        state = self._product_state  # an update_products since the last call invalidates the table
        if (cached is None or cached[3] is not state or cached[0].shape != demand.shape
                or not np.array_equal(cached[0], demand)):
            n = len(self.product_ids)
            empty = np.zeros((0, n))
            block = CandidateBlock(self.product_table(demand), [], empty, empty, empty, empty.astype(bool))
            cached = (demand.copy(), block.arrays, block._memo, state)
            self._products_cache = cached
        return cached[1], cached[2]

    def build(self, user_id: str, affinity: Any, demand_score: Any, similarity: Any = None) -> pd.DataFrame:
        """The candidate frame of ``user_id`` over the whole catalogue.

        ``affinity`` (NaN allowed), ``demand_score`` (0..100) and
        ``similarity`` (0..1, None = zeros) are arrays in catalogue order or
        Series indexed by product id; a Series missing products gives them
        NaN affinity / zero similarity (demand must be complete).
        """
        row = self.rows([user_id])[0]
        n = len(self.product_ids)
        affinity = _per_product(affinity, self.product_ids, "affinity", np.nan).reshape(-1)
        similarity = np.zeros(n) if similarity is None else _per_product(
            similarity, self.product_ids, "similarity", 0.0).reshape(-1)
        if affinity.shape != (n,) or similarity.shape != (n,):
            raise ValueError(f"affinity and similarity must have one value per product ({n},) for one user")
        user = {
            "affinity": affinity,
            "similarity_to_viewed": similarity,
            "behaviour_score": self.behaviour_scores(user_id),
            "purchased": self.purchased_[row].toarray().ravel().astype(bool),
        }
        check_values(user)
        columns = {c: (pd.Series(v, dtype=object, copy=False) if v.dtype == object else v)
                   for c, v in {**self._product_arrays(demand_score), **user}.items()}
        return pd.DataFrame(columns, copy=False)


def build_candidates(
    dataset: Dataset,
    user_id: str,
    affinity: Any,
    demand_score: Any,
    similarity: Any = None,
    sales_window_days: float = 30.0,
) -> pd.DataFrame:
    """One user's candidate frame (see :meth:`CandidateBuilder.build`); for many
    users build one :class:`CandidateBuilder` and call ``build_block``."""
    return CandidateBuilder(dataset, sales_window_days).build(user_id, affinity, demand_score, similarity)
