"""Demographic recommendations: segment popularity blended with SPEC's category preferences.

A segment ``g = (region, age group, spending tier)``; any part may be ``*``
(unknown: a new user without demographics, a missing age). With ``X`` the
weighted, time-decayed interaction matrix:

* popularity share ``s_g(i) = sum_{u in g} x_ui / sum_{u in g, j} x_uj``
  (users of ``g`` with a ``*`` part count in every value of that part);
* shrunk towards the all-shoppers share ``s_*`` by ``prior_users`` pseudo
  users: ``p_g = (N_g s_g + m s_*) / (N_g + m)``, ``N_g`` = users of ``g``
  with history, so small segments borrow from everyone;
* category preference ``c_g(cat) = 0.5 [cat in region categories] + 0.5
  [cat in age-group categories]`` (SPEC tables; an unknown part adds 0);
* ``score_g(i) = (1 - a) p_g(i) / max_j p_g(j) + a c_g(category(i))`` with
  ``a = category_weight``, so scores lie in [0, 1];
* spending-tier filter (``price_filter``): a user of tier ``t`` only sees
  products priced at or below the ``max_price_quantile(t)`` quantile of
  their category's prices; filtered products score ``-inf``.

It is both the Stage 1 fallback for unknown or history-less users and the
Stage 3 demographic strategy. Reasons say which preference put a product
there ("Popular in your region", "Popular with your age group", ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.config import ConfigError, RecsysConfig
from recsys.data.dataset import Dataset
from recsys.interactions import Interactions
from recsys.models.base import Recommender, check_n
from recsys.models.fusion import take_at
from recsys.models.ranking import entries_frame, first_allowed, take_rows
from recsys.validation import check_numbers

__all__ = ["DemographicConfig", "DemographicRecommender", "REASONS", "ANY"]

ANY = "*"
"""The value of an unknown segment part."""

REASONS: tuple[str, ...] = (
    "Popular in your region and age group",
    "Popular in your region",
    "Popular with your age group",
    "Popular with shoppers like you",
    "Popular with all shoppers",
)
"""Reason texts, by code: the region's and the age group's categories, the
region's only, the age group's only, neither (a known segment), no segment."""


@dataclass(frozen=True)
class DemographicConfig:
    """``category_weight`` ``a`` of the blend; ``prior_users`` ``m`` of the
    shrinkage; ``price_filter`` switches the spending-tier price filter."""

    category_weight: float = 0.3
    prior_users: float = 20.0
    price_filter: bool = True

    def __post_init__(self) -> None:
        check_numbers(self, "category_weight", low=0, high=1)
        check_numbers(self, "prior_users", low=0)
        if not isinstance(self.price_filter, bool):
            raise ConfigError(f"DemographicConfig.price_filter must be a bool, got {self.price_filter!r}")


class DemographicRecommender(Recommender):
    """Popularity within region x age group x spending tier, blended with
    the configured category preferences (see the module docstring)."""

    name = "demographic"
    reason = "Popular with shoppers like you"

    segment_scores_: np.ndarray  # (segments, products) float64, -inf = filtered
    segment_order_: np.ndarray  # (segments, products) int32, best first, -1 = filtered
    segment_reasons_: np.ndarray  # (segments, categories) int8 codes into REASONS
    segment_users_: np.ndarray  # (segments,) users with history behind each segment
    user_segment_: np.ndarray  # (users,) segment of each fitted user
    product_category_: np.ndarray  # (products,) category code
    categories_: pd.Index

    def __init__(self, config: DemographicConfig | None = None) -> None:
        self.config = config if config is not None else DemographicConfig()

    # -- segments ---------------------------------------------------------------
    def _dims(self, cfg: RecsysConfig) -> tuple[int, int, int]:
        return len(cfg.regions) + 1, len(cfg.age_groups) + 1, len(cfg.spending_tiers) + 1

    def _segment_id(self, region: np.ndarray, age: np.ndarray, tier: np.ndarray) -> np.ndarray:
        _, n_age, n_tier = self._dims(self.dataset_.config)
        return (region * n_age + age) * n_tier + tier

    def segment_codes(self, users: pd.DataFrame) -> np.ndarray:
        """Segment id per row of ``users`` (optional columns ``region``,
        ``age`` or ``age_group``, ``spending_tier``; missing or NaN = ``*``).
        Unknown region or tier names, and ages outside every age band, raise
        ``ValueError`` naming them."""
        cfg = self.dataset_.config if hasattr(self, "dataset_") else None
        if cfg is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(dataset) first")
        n = len(users)

        def codes(column: str, names: Sequence[str]) -> np.ndarray:
            if column not in users.columns:
                return np.zeros(n, dtype=np.int64)
            values = pd.Series(users[column].to_numpy(dtype=object))
            known = values.notna() & (values != ANY)
            idx = pd.Index(names).get_indexer(values[known])
            if (idx < 0).any():
                bad = sorted(set(values[known][idx < 0].astype(str)))
                raise ValueError(f"unknown {column} value(s) {bad}; expected one of {list(names)} or missing")
            out = np.zeros(n, dtype=np.int64)
            out[known.to_numpy()] = idx + 1
            return out

        region = codes("region", cfg.region_names)
        tier = codes("spending_tier", cfg.spending_tier_names)
        if "age_group" in users.columns:
            age = codes("age_group", cfg.age_group_names)
        elif "age" in users.columns:
            ages = pd.to_numeric(pd.Series(users["age"].to_numpy(dtype=object)), errors="coerce")
            nonnumeric = ages.isna() & pd.Series(users["age"].to_numpy(dtype=object)).notna()
            if nonnumeric.any():
                raise ValueError(f"age must be numeric or missing, got {list(users['age'][nonnumeric.to_numpy()])[:3]}")
            groups = cfg.age_groups_of(ages)
            bad = ages.notna() & (groups == "unknown")
            if bad.any():
                raise ValueError(f"age(s) {list(ages[bad])[:3]} fall in no configured age group")
            age = _group_codes(groups, cfg.age_group_names)
        else:
            age = np.zeros(n, dtype=np.int64)
        return self._segment_id(region, age, tier)

    def segment_labels(self, segments: np.ndarray) -> pd.DataFrame:
        """``region, age_group, spending_tier`` (``*`` = any) of segment ids."""
        cfg = self.dataset_.config
        _, n_age, n_tier = self._dims(cfg)
        segments = np.asarray(segments, dtype=np.int64)
        names = [(ANY,) + cfg.region_names, (ANY,) + cfg.age_group_names, (ANY,) + cfg.spending_tier_names]
        parts = [segments // (n_age * n_tier), (segments // n_tier) % n_age, segments % n_tier]
        return pd.DataFrame({col: np.asarray(nm, dtype=object)[p]
                             for col, nm, p in zip(("region", "age_group", "spending_tier"), names, parts, strict=True)})

    # -- fit ----------------------------------------------------------------------
    def _fit(self, dataset: Dataset, interactions: Interactions) -> None:
        cfg_d, cfg = self.config, dataset.config
        matrix = interactions.matrix
        if matrix.nnz == 0:
            raise ValueError(f"cannot fit {type(self).__name__}: the data set has no events")
        n_region, n_age, n_tier = self._dims(cfg)
        n_segments = n_region * n_age * n_tier
        self.user_segment_ = self.segment_codes(dataset.users)
        region = self.user_segment_ // (n_age * n_tier)
        age = (self.user_segment_ // n_tier) % n_age
        tier = self.user_segment_ % n_tier
        # every user counts in the 8 generalisations of their segment (each part kept or *)
        members = [self._segment_id(region * kr, age * ka, tier * kt)
                   for kr in (0, 1) for ka in (0, 1) for kt in (0, 1)]
        cols = np.concatenate(members)
        rows = np.tile(np.arange(dataset.n_users), 8)
        membership = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(dataset.n_users, n_segments))
        membership.data[:] = 1.0  # a user whose part is already * appears once per segment
        mass = np.asarray((membership.T @ matrix).todense())
        active = (np.diff(matrix.indptr) > 0).astype(np.float64)
        self.segment_users_ = np.asarray(membership.T @ active).ravel()
        totals = mass.sum(axis=1, keepdims=True)
        share = np.divide(mass, totals, out=np.zeros_like(mass), where=totals > 0)
        m = float(cfg_d.prior_users)
        n_g = self.segment_users_[:, None]
        denom = n_g + m
        smoothed = np.divide(n_g * share + m * share[0], denom, out=share[[0]].repeat(n_segments, 0), where=denom > 0)
        top = smoothed.max(axis=1, keepdims=True)
        popularity = np.divide(smoothed, top, out=np.zeros_like(smoothed), where=top > 0)

        products = dataset.products
        self.categories_ = pd.Index(sorted(products["category"].unique()), name="category")
        self.product_category_ = self.categories_.get_indexer(products["category"]).astype(np.int64)
        pref, reasons = self._preferences(cfg, n_segments)
        a = float(cfg_d.category_weight)
        scores = (1.0 - a) * popularity + a * pref[:, self.product_category_]
        if cfg_d.price_filter:
            allowed = self._tier_allowed(dataset)  # (tiers + 1, products)
            scores[~allowed[np.arange(n_segments) % n_tier]] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")
        filtered = ~np.isfinite(np.take_along_axis(scores, order, axis=1))
        order[filtered] = -1
        self.segment_scores_ = scores
        self.segment_order_ = order.astype(np.int32)
        self.segment_reasons_ = reasons

    def _preferences(self, cfg: RecsysConfig, n_segments: int) -> tuple[np.ndarray, np.ndarray]:
        """Category preference ``c_g`` (segments x categories) and reason codes."""
        labels = self.segment_labels(np.arange(n_segments))
        cats = list(self.categories_)
        in_region = np.zeros((n_segments, len(cats)), dtype=bool)
        in_age = np.zeros_like(in_region)
        for s, (region, age_group) in enumerate(zip(labels["region"], labels["age_group"], strict=True)):
            if region != ANY:
                in_region[s] = [c in cfg.region(region).categories for c in cats]
            if age_group != ANY:
                in_age[s] = [c in cfg.age_group(age_group).categories for c in cats]
        pref = 0.5 * in_region + 0.5 * in_age
        known = (labels[["region", "age_group", "spending_tier"]] != ANY).any(axis=1).to_numpy()[:, None]
        reasons = np.select(
            [in_region & in_age, in_region, in_age, np.broadcast_to(known, in_region.shape)], [0, 1, 2, 3], 4
        ).astype(np.int8)
        return pref, reasons

    def _tier_allowed(self, dataset: Dataset) -> np.ndarray:
        """``allowed[t, i]``: product ``i`` priced at or below tier ``t``'s
        quantile of its category's prices (row 0, tier ``*``: all)."""
        products = dataset.products
        rows = [np.ones(len(products), dtype=bool)]
        for tier in dataset.config.spending_tiers:
            limit = products.groupby("category")["price"].transform(lambda p, q=tier.max_price_quantile: p.quantile(q))
            rows.append((products["price"] <= limit + 1e-9).to_numpy())
        return np.vstack(rows)

    # -- scoring ------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "segment_scores_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(dataset) first")

    def segments_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """Segment of each user row (``-1``/unknown: the all-shoppers segment 0)."""
        rows = np.asarray(rows, dtype=np.int64)
        known = (rows >= 0) & (rows < len(self.user_segment_))
        return np.where(known, self.user_segment_[np.where(known, rows, 0)], 0)

    def with_user_segments(self, rows: np.ndarray, segments: np.ndarray) -> None:
        """Users' changed demographics (a profile upsert): rows ``rows`` of the fitted data set are in
        ``segments`` from now on -- every method reading a user's segment (the fallback, the Stage 3
        demographic strategy, reasons) uses it at once. Copy-on-write: a new array replaces the old one
        by one assignment, a request in flight keeps the one it read."""
        self._check_fitted()
        rows, segments = np.asarray(rows, dtype=np.int64), np.asarray(segments, dtype=np.int64)
        if len(rows) and ((rows < 0) | (rows >= len(self.user_segment_))).any():
            raise ValueError(f"rows outside the fitted users (0..{len(self.user_segment_) - 1}): {rows[:3]}")
        if len(segments) and ((segments < 0) | (segments >= len(self.segment_scores_))).any():
            raise ValueError(f"segments outside 0..{len(self.segment_scores_) - 1}: {segments[:3]}")
        updated = self.user_segment_.copy()
        updated[rows] = segments
        self.user_segment_ = updated

    def score_users(self, rows: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return self.segment_scores_[self.segments_of_rows(rows)]  # fancy indexing: already a copy

    def score_block(self, rows: np.ndarray) -> tuple[None, np.ndarray]:
        """No dense block: the fusion reads range, candidates and scores off each row's segment
        (the hint: :meth:`segments_of_rows`)."""
        self._check_fitted()
        return None, self.segments_of_rows(rows)

    def scores_at(self, rows: np.ndarray, r: np.ndarray, c: np.ndarray, scores: np.ndarray | None,
                  hint: object = None) -> np.ndarray:
        """``segment_scores_[segment(rows[r]), c]``: a user's scores are their segment's."""
        segments = self.segments_of_rows(rows) if hint is None else np.asarray(hint)
        return take_at(self.segment_scores_, r, c, rowmap=segments)

    def score_range(self, rows: np.ndarray, scores: np.ndarray | None,
                    hint: object = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The base class's row range, computed once per segment (a user's scores are their segment's)."""
        cached = self.__dict__.get("_segment_range")
        if cached is None or cached[0] is not self.segment_scores_:
            cached = (self.segment_scores_, *super().score_range(np.arange(len(self.segment_scores_)),
                                                                 self.segment_scores_))
            self.__dict__["_segment_range"] = cached
        segments = self.segments_of_rows(rows)
        return cached[1][segments], cached[2][segments], cached[3][segments]

    def top_candidates(self, rows: np.ndarray, scores: np.ndarray | None, m: int, floor: np.ndarray,
                       allowed: np.ndarray, hint: object = None) -> tuple[np.ndarray, np.ndarray]:
        """The first ``m`` allowed columns above ``floor`` down each row's segment ranking
        (``segment_order_``: score descending, ties to the lower column, as the base class ranks;
        a compiled walk, :func:`_walk_rankings`, that stops at the ``m``-th or at the filtered tail)."""
        segments = self.segments_of_rows(rows)
        n_cols = self.segment_order_.shape[1]
        m = min(int(m), n_cols)
        cols, ok = np.zeros((len(segments), m), dtype=np.int64), np.zeros((len(segments), m), dtype=bool)
        if len(segments) and m:
            _walk_rankings(self.segment_order_, self.segment_scores_, segments,
                           np.ascontiguousarray(allowed, dtype=np.bool_),
                           np.ascontiguousarray(floor, dtype=np.float64), cols, ok)
        return cols, ok

    def reasons_for(self, rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
        codes = self.segment_reasons_[self.segments_of_rows(rows)][:, self.product_category_]
        return np.asarray(REASONS, dtype=object)[codes]

    def reasons_at(self, rows: np.ndarray, r: np.ndarray, c: np.ndarray, scores: np.ndarray) -> np.ndarray:
        codes = self.segment_reasons_[self.segments_of_rows(rows)[r], self.product_category_[c]]
        return np.asarray(REASONS, dtype=object)[codes]

    def top_n_for_segments(
        self, segments: np.ndarray, banned: sp.csr_matrix | None, n: np.ndarray | int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The first ``n`` (per row) allowed products of each row's segment
        ranking, skipping ``banned`` entries. Returns ``rows, cols, scores,
        position (0-based), reason`` ordered by (row, position)."""
        self._check_fitted()
        segments = np.asarray(segments, dtype=np.int64)
        need = np.broadcast_to(np.asarray(n, dtype=np.int64), segments.shape)
        n_banned = np.diff(banned.indptr) if banned is not None else np.zeros(len(segments), dtype=np.int64)
        width = min(self.segment_order_.shape[1], int((need + n_banned).max(initial=0)))
        orders = self.segment_order_[segments, :width]
        rows, cols, pos = first_allowed(orders, banned, need)
        seg = segments[rows]
        reasons = np.asarray(REASONS, dtype=object)[self.segment_reasons_[seg, self.product_category_[cols]]]
        return rows, cols, self.segment_scores_[seg, cols], pos, reasons

    def recommend(self, user_ids: Sequence[str] | str, n: int = 10, exclude_purchased: bool = True) -> pd.DataFrame:
        """Top-``n`` from each user's segment ranking (same frame as the dense base path)."""
        self._check_fitted()
        ids, n, rows = self._request(user_ids, n)
        banned = take_rows(self.interactions_.purchased, rows) if exclude_purchased else None
        r, c, v, pos, reasons = self.top_n_for_segments(self.segments_of_rows(rows), banned, n)
        return entries_frame(ids, self.interactions_.product_ids, r, c, v, pos + 1, reasons)

    def recommend_for_profile(
        self, region: str | None = None, age: float | None = None, spending_tier: str | None = None, n: int = 10
    ) -> pd.DataFrame:
        """Top-``n`` for a shopper known only by (some) demographics, e.g. a
        new visitor: ``product_id, score, rank, reason``."""
        n = check_n(n)
        self._check_fitted()
        n = check_n(n, limit=len(self.interactions_.product_ids))
        profile = pd.DataFrame({"region": [region], "age": [age], "spending_tier": [spending_tier]})
        segment = self.segment_codes(profile)
        r, c, v, pos, reasons = self.top_n_for_segments(segment, None, n)
        return entries_frame(["(profile)"], self.interactions_.product_ids, r, c, v, pos + 1, reasons).drop(
            columns="user_id"
        )

    def segment_table(self) -> pd.DataFrame:
        """Every full segment (no ``*`` part): its users with history and the
        categories of its top-10 products."""
        self._check_fitted()
        labels = self.segment_labels(np.arange(len(self.segment_scores_)))
        full = (labels != ANY).all(axis=1).to_numpy()
        frame = labels[full].reset_index(drop=True)
        frame["users_with_history"] = self.segment_users_[full].astype(np.int64)
        top = self.segment_order_[full, :10]
        frame["top10_categories"] = [
            "|".join(pd.Series(self.categories_[self.product_category_[t[t >= 0]]]).value_counts().index[:3])
            for t in top
        ]
        return frame


@numba.njit(cache=True, nogil=True)
def _walk_rankings(order: np.ndarray, scores: np.ndarray, segments: np.ndarray, allowed: np.ndarray,
                   floor: np.ndarray, cols: np.ndarray, ok: np.ndarray) -> None:
    """Per row, down its segment's ranking ``order[segment]`` (-1: the filtered tail), the first
    ``cols.shape[1]`` columns that are ``allowed`` and score above ``floor``."""
    m = cols.shape[1]
    for r in range(len(segments)):
        seg, found = segments[r], 0
        for pos in range(order.shape[1]):
            c = order[seg, pos]
            if c < 0:
                break
            if allowed[r, c] and scores[seg, c] > floor[r]:
                cols[r, found] = c
                ok[r, found] = True
                found += 1
                if found == m:
                    break


def _group_codes(groups: pd.Series, names: Sequence[str]) -> np.ndarray:
    """1-based age-group codes (0 for 'unknown')."""
    idx = pd.Index(names).get_indexer(groups.to_numpy(dtype=object))
    return np.where(idx >= 0, idx + 1, 0).astype(np.int64)
