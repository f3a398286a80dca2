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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.config import ConfigError, PicklableMappings
from recsys.data.dataset import Dataset
from recsys.interactions import event_weights

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
    "type_labels",
    "validate_candidates",
]

CANDIDATE_COLUMNS: Mapping[str, str] = MappingProxyType(
    {
        "product_id": "str",
        "name": "str",
        "category": "str",
        "price": "float",
        "cost": "float",
        "stock": "int",
        "demand_score": "float",
        "affinity": "float",
        "similarity_to_viewed": "float",
        "behaviour_score": "float",
        "purchased": "bool",
        "sales": "float",
    }
)
"""Required columns of the candidate frame and their dtype kind."""

USER_COLUMNS = ("affinity", "similarity_to_viewed", "behaviour_score", "purchased")
"""Columns that differ between users (matrices in a :class:`CandidateBlock`)."""

PRODUCT_COLUMNS = tuple(c for c in CANDIDATE_COLUMNS if c not in USER_COLUMNS) + ("category_price_quantile",)
"""Columns that are properties of the product (one table in a block)."""

DEAL_TYPES: tuple[str, ...] = ("high_affinity", "similar_to_viewed", "regional_seasonal", "personalized")


@dataclass(frozen=True)
class DealRules(PicklableMappings):
    """Thresholds of the deal types, the ranking and how many deals to show.
    Pickles (through the constructor, so the checks run again on load).

    ``min_score``: with ``num_deals=None`` a user gets as many deals as have
    ``score >= min_score``, clipped to ``[min_deals, max_deals]`` of
    ``DealConfig`` (50 = the strength of two reasons at full strength, on
    the default equal weights). ``cover_types``: the best deal of every type that fires
    is taken first, then the rest by score (variety of reasons).
    """

    affinity_quantile: float = 0.8
    low_sales_quantile: float = 0.5
    similarity_quantile: float = 0.8
    behaviour_min: float = 0.25
    type_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    min_score: float = 50.0
    cover_types: bool = True
    exclude_purchased: bool = True
    apply_spending_tier: bool = True
    reasons: Mapping[str, str] = field(
        default_factory=lambda: {
            "high_affinity": "Limited Time Offer",
            "similar_to_viewed": "Similar to Items You Viewed",
            "regional_seasonal": "Seasonal Special",
            "personalized": "Personalized for You",
        }
    )

    def __post_init__(self) -> None:
        for name in ("affinity_quantile", "low_sales_quantile", "similarity_quantile", "behaviour_min"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"DealRules.{name} must be in [0, 1], got {value!r}")
        weights = tuple(float(w) for w in self.type_weights)
        if len(weights) != len(DEAL_TYPES) or min(weights) < 0 or sum(weights) <= 0:
            raise ConfigError(
                f"DealRules.type_weights must be {len(DEAL_TYPES)} weights >= 0 with a positive sum, "
                f"got {self.type_weights!r}"
            )
        object.__setattr__(self, "type_weights", weights)
        if not 0.0 <= self.min_score <= 100.0:
            raise ConfigError(f"DealRules.min_score must be in [0, 100], got {self.min_score!r}")
        missing = [t for t in DEAL_TYPES if t not in self.reasons]
        if missing:
            raise ConfigError(f"DealRules.reasons lacks a text for deal type(s) {missing}")
        object.__setattr__(self, "reasons", MappingProxyType(dict(self.reasons)))


# -- the contract -------------------------------------------------------------------
def _fail(column: str, problem: str, values: np.ndarray) -> None:
    values = np.asarray(values).ravel()
    raise ValueError(f"candidates.{column}: {problem} ({len(values)} values; e.g. {values[:3].tolist()})")


_VALUE_RULES: Mapping[str, tuple[str, Any]] = MappingProxyType(
    {
        "price": ("must be finite and > 0", lambda v: ~(np.isfinite(v) & (v > 0))),
        "cost": ("must be > 0 or NaN", lambda v: ~np.isnan(v) & ~(np.isfinite(v) & (v > 0))),
        "stock": ("must be a whole number >= 0", lambda v: ~((v >= 0) & (v == np.floor(v)))),
        "demand_score": ("must be in [0, 100]", lambda v: ~((v >= 0) & (v <= 100))),
        "affinity": ("must be finite or NaN", lambda v: np.isinf(v)),
        "similarity_to_viewed": ("must be in [0, 1]", lambda v: ~((v >= 0) & (v <= 1))),
        "behaviour_score": ("must be in [0, 1]", lambda v: ~((v >= 0) & (v <= 1))),
        "sales": ("must be finite and >= 0", lambda v: ~(np.isfinite(v) & (v >= 0))),
        "category_price_quantile": ("must be in [0, 1]", lambda v: ~((v >= 0) & (v <= 1))),
    }
)


def _check_values(arrays: Mapping[str, np.ndarray]) -> None:
    for column, (problem, is_bad) in _VALUE_RULES.items():
        if column in arrays:
            bad = is_bad(arrays[column])
            if bad.any():
                _fail(column, problem, arrays[column][bad])


def _check_ids(ids: np.ndarray) -> None:
    if len(ids):
        empty = ids == ""
        if empty.any():
            _fail("product_id", "empty ids", ids[empty])
        if len(set(ids.tolist())) != len(ids):
            dup = pd.Index(ids).duplicated(keep=False)
            _fail("product_id", "duplicate ids (one deal per product needs unique rows)", ids[dup])


def _column_arrays(candidates: pd.DataFrame, columns: Mapping[str, str]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for column, kind in columns.items():
        series = candidates[column]
        if kind == "str":
            values = series.to_numpy(dtype=object)
            if not len(values):
                ok = True
            elif series.dtype == object:  # NaN/None in an object column make infer_dtype "mixed"
                ok = pd.api.types.infer_dtype(values, skipna=False) in ("string", "empty")
            else:
                ok = pd.api.types.infer_dtype(series, skipna=False) in ("string", "empty") and not series.isna().any()
            if not ok:
                bad = np.array([not isinstance(v, str) for v in values], dtype=bool)
                _fail(column, "expected non-missing strings", values[bad])
        elif kind == "bool":
            if not pd.api.types.is_bool_dtype(series):
                raise ValueError(f"candidates.{column}: expected a bool column, got dtype {series.dtype}")
            values = series.to_numpy(dtype=bool)
        else:
            if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
                raise ValueError(f"candidates.{column}: expected a numeric column, got dtype {series.dtype}")
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        out[column] = values
    return out


def _category_price_quantile(category: np.ndarray, price: np.ndarray) -> np.ndarray:
    """Price percentile within each category, ``rank(max) / n_category``."""
    if not len(price):
        return np.zeros(0)
    return pd.Series(price).groupby(pd.Series(category)).rank(pct=True, method="max").to_numpy(dtype=float)


def validate_candidates(candidates: pd.DataFrame) -> pd.DataFrame:
    """Check ``candidates`` against the contract; return a new frame (fresh
    RangeIndex) with canonical dtypes and ``category_price_quantile`` filled
    in. Raises ``ValueError`` naming the column, the problem and example
    values. Extra columns are kept."""
    if not isinstance(candidates, pd.DataFrame):
        raise ValueError(f"candidates must be a pandas DataFrame, got {type(candidates).__name__}")
    missing = [c for c in CANDIDATE_COLUMNS if c not in candidates.columns]
    if missing:
        raise ValueError(f"candidates lack column(s) {missing}; the contract needs {list(CANDIDATE_COLUMNS)}")
    return pd.DataFrame(_validated_arrays(candidates))


def _validated_arrays(candidates: pd.DataFrame) -> dict[str, np.ndarray]:
    """The columns of a valid candidate frame as arrays (contract columns,
    ``category_price_quantile``, then any extra columns)."""
    if not isinstance(candidates, pd.DataFrame):
        raise ValueError(f"candidates must be a pandas DataFrame, got {type(candidates).__name__}")
    present = set(candidates.columns)
    missing = [c for c in CANDIDATE_COLUMNS if c not in present]
    if missing:
        raise ValueError(f"candidates lack column(s) {missing}; the contract needs {list(CANDIDATE_COLUMNS)}")
    out = _column_arrays(candidates, CANDIDATE_COLUMNS)
    if "category_price_quantile" in present:
        out["category_price_quantile"] = candidates["category_price_quantile"].to_numpy(dtype=np.float64, na_value=np.nan)
    _check_values(out)
    _check_ids(out["product_id"])
    out["stock"] = out["stock"].astype(np.int64)
    if "category_price_quantile" not in out:
        out["category_price_quantile"] = _category_price_quantile(out["category"], out["price"])
    for column in candidates.columns:
        if column not in out:
            out[column] = candidates[column].to_numpy()
    return out


class CandidateBlock:
    """Candidate frames of many users over one product table.

    ``products``: a DataFrame of :data:`PRODUCT_COLUMNS` (one row per product,
    unique ids; extra columns kept); ``user_ids`` (n_users,); ``affinity``,
    ``similarity_to_viewed``, ``behaviour_score`` (float) and ``purchased``
    (bool): users x products arrays. Validated on construction against the
    same rules as the frame. ``arrays`` holds the product columns as numpy
    arrays (what the generator reads).
    """

    def __init__(self, products: pd.DataFrame, user_ids: Any, affinity: Any, similarity_to_viewed: Any,
                 behaviour_score: Any, purchased: Any) -> None:
        if not isinstance(products, pd.DataFrame):
            raise ValueError(f"CandidateBlock.products must be a DataFrame, got {type(products).__name__}")
        columns = {c: CANDIDATE_COLUMNS[c] for c in PRODUCT_COLUMNS if c in CANDIDATE_COLUMNS}
        missing = [c for c in columns if c not in products.columns]
        if missing:
            raise ValueError(f"CandidateBlock.products lacks column(s) {missing}; needs {list(PRODUCT_COLUMNS)}")
        arrays = _column_arrays(products, columns)
        if "category_price_quantile" in products.columns:
            arrays["category_price_quantile"] = products["category_price_quantile"].to_numpy(dtype=float)
        else:
            arrays["category_price_quantile"] = _category_price_quantile(arrays["category"], arrays["price"])
        _check_values(arrays)
        _check_ids(arrays["product_id"])
        arrays["stock"] = arrays["stock"].astype(np.int64)
        for column in products.columns:
            if column not in arrays:
                arrays[column] = products[column].to_numpy()
        self._init_users(arrays, {}, user_ids, affinity, similarity_to_viewed, behaviour_score, purchased)

    def _init_users(self, arrays: dict[str, np.ndarray], memo: dict[str, Any], user_ids: Any, affinity: Any,
                    similarity_to_viewed: Any, behaviour_score: Any, purchased: Any) -> None:
        """Set the (already valid) product ``arrays`` and their ``memo`` of
        derived values, and check and set the per-user matrices."""
        self.arrays = arrays
        self._memo = memo
        self._products: pd.DataFrame | None = None
        self.user_ids = np.asarray(user_ids, dtype=object).ravel()
        shape = (len(self.user_ids), len(arrays["product_id"]))
        given = {"affinity": affinity, "similarity_to_viewed": similarity_to_viewed,
                 "behaviour_score": behaviour_score, "purchased": purchased}
        for name in USER_COLUMNS:
            value = np.asarray(given[name], dtype=bool if name == "purchased" else np.float64)
            if value.ndim == 1 and shape[0] == 1:
                value = value[None, :]
            if value.shape != shape:
                raise ValueError(f"CandidateBlock.{name} must be users x products {shape}, got {value.shape}")
            setattr(self, name, value)
        _check_values({c: getattr(self, c) for c in ("affinity", "similarity_to_viewed", "behaviour_score")})

    affinity: np.ndarray
    similarity_to_viewed: np.ndarray
    behaviour_score: np.ndarray
    purchased: np.ndarray

    @classmethod
    def _from_valid_products(cls, arrays: dict[str, np.ndarray], memo: dict[str, Any], user_ids: Any,
                             affinity: Any, similarity_to_viewed: Any, behaviour_score: Any,
                             purchased: Any) -> CandidateBlock:
        """A block over product ``arrays`` that were validated before (by
        :class:`CandidateBuilder`); only the per-user matrices are checked.
        ``memo`` is shared with other blocks over the same arrays."""
        block = object.__new__(cls)
        block._init_users(arrays, memo, user_ids, affinity, similarity_to_viewed, behaviour_score, purchased)
        return block

    def _derived(self, key: str, compute: Any) -> Any:
        """A product-level value derived from ``arrays`` (computed once and
        shared by the blocks over the same product arrays)."""
        memo = self.__dict__.setdefault("_memo", {})
        if key not in memo:
            memo[key] = compute()
        return memo[key]

    def id_rank(self) -> np.ndarray:
        """Position of each product's id in sorted id order: ordering by it
        is ordering by ``product_id`` (the ranking's tie-break)."""

        def compute() -> np.ndarray:
            ids = self.arrays["product_id"].astype(str)
            out = np.empty(len(ids), dtype=np.int64)
            out[np.argsort(ids, kind="stable")] = np.arange(len(ids))
            return out

        return self._derived("id_rank", compute)

    def sales_quantile(self, q: float) -> float:
        """The ``q``-quantile of ``sales`` over the products (0 when there are none)."""
        sales = self.arrays["sales"]
        return self._derived(f"sales_quantile_{q!r}", lambda: float(np.quantile(sales, q)) if len(sales) else 0.0)

    def category_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """``pd.factorize`` of the product categories: (codes, uniques)."""

        def compute() -> tuple[np.ndarray, np.ndarray]:
            categories = np.asarray(self.arrays["category"], dtype=object)
            if not len(categories):
                return np.zeros(0, np.int64), np.zeros(0, dtype=object)
            codes, uniques = pd.factorize(categories)
            return codes, np.asarray(uniques, dtype=object)

        return self._derived("category_codes", compute)

    @property
    def products(self) -> pd.DataFrame:
        """The product table as a DataFrame (built on first use)."""
        if self._products is None:
            self._products = pd.DataFrame(self.arrays)
        return self._products

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_products(self) -> int:
        return len(self.arrays["product_id"])

    @classmethod
    def from_frame(cls, candidates: pd.DataFrame, user_id: str) -> CandidateBlock:
        """A one-user block from a candidate frame (validated)."""
        arrays = _validated_arrays(candidates)
        block = object.__new__(cls)  # the arrays are valid: skip re-validation
        block.arrays = {c: v for c, v in arrays.items() if c not in USER_COLUMNS}
        block._products, block._memo = None, {}
        block.user_ids = np.array([user_id], dtype=object)
        for c in USER_COLUMNS:
            setattr(block, c, arrays[c][None, :])
        return block

    def frame(self, i: int) -> pd.DataFrame:
        """The candidate frame of the block's ``i``-th user."""
        return pd.DataFrame({**self.arrays, **{c: getattr(self, c)[i] for c in USER_COLUMNS}})

    def take(self, rows: Sequence[int] | np.ndarray) -> CandidateBlock:
        """The block restricted to some users (rows)."""
        rows = np.asarray(rows, dtype=np.int64)
        block = object.__new__(CandidateBlock)
        block.arrays, block._products, block.user_ids = self.arrays, self._products, self.user_ids[rows]
        block._memo = self.__dict__.setdefault("_memo", {})
        for c in USER_COLUMNS:
            setattr(block, c, getattr(self, c)[rows])
        return block


# -- the four deal types ------------------------------------------------------------
def _rank_pct(values: np.ndarray, above: float | None = None) -> np.ndarray:
    """Row-wise percentile rank in (0, 1] among finite values: the average
    1-based rank of a tie group (as ``scipy.stats.rankdata``) over the number
    of finite values; NaN stays NaN. The tie group at a row's minimum (e.g.
    the zero similarity of most products) gets its rank without sorting it.

    ``above=q``: only ranks that may exceed ``q`` are computed (exactly);
    every finite value whose rank is surely ``<= q`` gets 0. With ``j =
    floor(q * count) - 1`` and ``cut`` the ``j``-th smallest value
    (``np.partition``), a value below ``cut`` has at most ``j`` values ``<=``
    it, so its rank is at most ``j / count < q``; the values ``>= cut`` (whole
    tie groups) are ranked among themselves, offset by the count below."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    out = np.full(values.shape, np.nan)
    for i, row in enumerate(values):
        finite = ~np.isnan(row)
        count = int(finite.sum())
        if not count:
            continue
        j = int(np.floor(above * count)) - 1 if above is not None else 0
        if j > 0:
            cut = np.partition(row[finite], j)[j]
            upper = np.flatnonzero(finite & (row >= cut))
            out[i, finite] = 0.0
            out[i, upper] = (_tie_bounds(row[upper]) + 2 * (count - len(upper)) + 2) / 2.0 / count
            continue
        low = row == row[finite].min()
        n_low = int(low.sum())
        out[i, low] = (n_low + 1) / 2.0 / count  # positions 0..n_low-1: (start + end + 2) / 2
        rest = np.flatnonzero(finite & ~low)
        if len(rest):
            out[i, rest] = (_tie_bounds(row[rest]) + 2 * n_low + 2) / 2.0 / count
    return out


def _tie_bounds(values: np.ndarray) -> np.ndarray:
    """``start + end`` (0-based sorted positions of the first and last member
    of each value's tie group) for finite 1-D ``values``."""
    n = len(values)
    order = np.argsort(values)  # the order within a tie group does not matter
    s = values[order]
    new = np.ones(n, dtype=bool)
    np.not_equal(s[1:], s[:-1], out=new[1:])  # a tie group starts here
    out = np.empty(n, dtype=np.int64)
    if new.all():  # no ties: start = end = the sorted position
        out[order] = np.arange(0, 2 * n, 2)
        return out
    starts = np.flatnonzero(new)
    bounds = np.append(starts, n)
    out[order] = np.repeat(starts + bounds[1:] - 1, np.diff(bounds))
    return out


def type_arrays(block: CandidateBlock, seasonal: np.ndarray, rules: DealRules,
                all_strengths: bool = True) -> dict[str, np.ndarray]:
    """Per user x product: fired masks (``<type>``), strengths
    (``<type>_strength``), ``affinity_pct``, ``any_type`` and ``score``.
    ``seasonal`` is the users x products mask of in-season categories.
    ``all_strengths=False`` (the generator): the similarity percentile is
    only computed where it can exceed ``similarity_quantile`` (elsewhere the
    type cannot fire and its strength is given as 0); masks and scores are
    the same."""
    aff_pct = _rank_pct(block.affinity)
    sales = block.arrays["sales"]
    low_sales = sales <= block.sales_quantile(rules.low_sales_quantile)
    sim_pct = _rank_pct(block.similarity_to_viewed, None if all_strengths else rules.similarity_quantile)
    behaviour = block.behaviour_score
    fired = {
        "high_affinity": (np.nan_to_num(aff_pct) > rules.affinity_quantile) & low_sales[None, :],
        "similar_to_viewed": (block.similarity_to_viewed > 0) & (np.nan_to_num(sim_pct) > rules.similarity_quantile),
        "regional_seasonal": np.asarray(seasonal, dtype=bool),
        "personalized": behaviour >= rules.behaviour_min,
    }
    strength = {
        "high_affinity": np.nan_to_num(aff_pct),
        "similar_to_viewed": np.nan_to_num(sim_pct),
        "regional_seasonal": np.where(np.isnan(aff_pct), 0.5, aff_pct),
        "personalized": behaviour,
    }
    out: dict[str, np.ndarray] = {"affinity_pct": aff_pct}
    total = np.zeros(block.affinity.shape)
    any_type = np.zeros(block.affinity.shape, dtype=bool)
    for t, w in zip(DEAL_TYPES, rules.type_weights, strict=True):
        out[t] = fired[t]
        out[f"{t}_strength"] = strength[t]
        total += w * fired[t] * strength[t]
        any_type |= fired[t]
    out["any_type"] = any_type
    out["score"] = 100.0 * total / sum(rules.type_weights)
    return out


def type_labels(fired: np.ndarray, rules: DealRules) -> tuple[list[str], list[str]]:
    """``deal_types`` ('|'-joined) and ``deal_reason`` (comma-separated
    reason texts) for the rows of a (rows x 4) fired matrix."""
    codes = np.asarray(fired, dtype=bool).reshape(-1, len(DEAL_TYPES)) @ (1 << np.arange(len(DEAL_TYPES)))
    table = {}
    for code in np.unique(codes):
        names = [t for k, t in enumerate(DEAL_TYPES) if code >> k & 1]
        table[code] = ("|".join(names), ", ".join(dict.fromkeys(rules.reasons[t] for t in names)))
    return [table[c][0] for c in codes], [table[c][1] for c in codes]


def deal_type_scores(candidates: pd.DataFrame, seasonal_categories: Any, rules: DealRules) -> pd.DataFrame:
    """Which types fire for one user's candidate frame, their strengths and
    the ranking score (same index as ``candidates``, which must be valid).

    Columns: ``affinity_pct``, ``<type>`` and ``<type>_strength`` for each
    of :data:`DEAL_TYPES`, ``any_type``, ``score`` (0..100), ``deal_types``
    and ``deal_reason``. ``seasonal_categories``: the user's in-season
    categories (``config.boosted_categories(region, season)``).
    """
    block = CandidateBlock.from_frame(candidates, "user")
    seasonal = np.isin(block.arrays["category"], list(seasonal_categories))[None, :]
    arrays = type_arrays(block, seasonal, rules)
    out = pd.DataFrame({k: v[0] for k, v in arrays.items()}, index=candidates.index)
    out["deal_types"], out["deal_reason"] = type_labels(out[list(DEAL_TYPES)].to_numpy(), rules)
    return out


# -- building candidates from a Dataset ---------------------------------------------
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
        rows = self.user_ids.get_indexer(events["user_id"])
        cols = self.product_ids.get_indexer(events["product_id"])
        shape = (len(self.user_ids), len(self.product_ids))
        kind = events["event_type"].to_numpy()

        def matrix(mask: np.ndarray) -> sp.csr_matrix:
            out = sp.csr_matrix((np.ones(int(mask.sum())), (rows[mask], cols[mask])), shape=shape)
            out.sum_duplicates()
            return out

        self.views_ = matrix(kind == "view")
        self.purchased_ = matrix(kind == "purchase").astype(bool)
        carted = matrix(kind == "cart").astype(bool).astype(float)
        favorite = matrix(kind == "favorite").astype(bool).astype(float)
        weights = dataset.config.interactions
        intent = carted.maximum(favorite * (weights.favorite / weights.cart))
        self.intent_ = (intent - intent.multiply(self.purchased_)).tocsr()
        self.intent_.eliminate_zeros()
        # unconverted cart/wishlist events, weighted, per user x category
        w = event_weights(events, dataset.as_of, weights)
        converted = np.asarray(self.purchased_[rows, cols]).ravel().astype(bool) if len(events) else np.zeros(0, bool)
        unconverted = np.isin(kind, ("cart", "favorite")) & ~converted
        self.categories_ = pd.Index(sorted(products["category"].unique()))
        self.product_category_ = self.categories_.get_indexer(products["category"])
        per_user_cat = sp.csr_matrix(
            (w[unconverted], (rows[unconverted], self.product_category_[cols[unconverted]])),
            shape=(shape[0], len(self.categories_)),
        ).toarray()
        totals = per_user_cat.sum(axis=1, keepdims=True)
        self.category_share_ = np.divide(per_user_cat, totals, out=np.zeros_like(per_user_cat), where=totals > 0)
        since = dataset.as_of - pd.Timedelta(days=sales_window_days)
        recent = (kind == "purchase") & (events["timestamp"] > since).to_numpy()
        self.sales_ = np.bincount(cols[recent], weights=events["quantity"].to_numpy(dtype=float)[recent],
                                  minlength=shape[1])
        self.category_price_quantile_ = _category_price_quantile(
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
        rows = self.rows(user_ids)
        views = self.views_
        out = np.zeros((len(rows), n))
        for i, r in enumerate(rows):
            # the user's sparse row (canonical: sorted columns) -- most viewed first, ties by column
            cols = views.indices[views.indptr[r]:views.indptr[r + 1]]
            counts = views.data[views.indptr[r]:views.indptr[r + 1]]
            order = np.lexsort((cols, -counts))[:top_k]
            seeds = cols[order][counts[order] > 0]
            if len(seeds):
                block = item_similarity[seeds]
                block = block.toarray() if sp.issparse(block) else np.array(block, dtype=float)
                block[np.arange(len(seeds)), seeds] = 0.0
                out[i] = np.clip(block.max(axis=0), 0.0, 1.0)
        return out[0] if isinstance(user_ids, str) else out

    def _product_arrays(self, demand_score: Any) -> dict[str, np.ndarray]:
        demand = _per_product(demand_score, self.product_ids, "demand_score", None)
        if demand.shape != (len(self.product_ids),):
            raise ValueError(f"demand_score must have one value per product ({len(self.product_ids)},), got {demand.shape}")
        _check_values({"demand_score": demand})
        return {**self._static, "demand_score": demand, "sales": self.sales_,
                "category_price_quantile": self.category_price_quantile_}

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
        return CandidateBlock._from_valid_products(
            arrays, memo, np.asarray(ids, dtype=object), affinity, similarity,
            self.behaviour_scores(ids), self.purchased_[rows].toarray().astype(bool),
        )

    def _valid_products(self, demand_score: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The product table validated as a :class:`CandidateBlock` does it,
        and its memo of derived values; kept for the last demand scores seen
        (the table is static between Stage 2 runs, so a request does not
        re-validate it)."""
        demand = _per_product(demand_score, self.product_ids, "demand_score", None)
        cached = self.__dict__.get("_products_cache")
        if cached is None or cached[0].shape != demand.shape or not np.array_equal(cached[0], demand):
            n = len(self.product_ids)
            empty = np.zeros((0, n))
            block = CandidateBlock(self.product_table(demand), [], empty, empty, empty, empty.astype(bool))
            cached = (demand.copy(), block.arrays, block._memo)
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
        _check_values(user)
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
