"""Deal generation: deal types -> pricing -> guardrails -> selection.

``DealGenerator(config).generate(user, candidates, as_of, num_deals=None)``
reads only the candidate-frame contract of :mod:`recsys.deals.candidates` and
a user mapping (``user_id, region, age`` or ``age_group``, ``spending_tier,
price_sensitivity``). ``generate_many(users, block, as_of)`` does the same
for many users at once on a :class:`~recsys.deals.candidates.CandidateBlock`
(one code path: ``generate`` is ``generate_many`` on a one-user block).
Steps:

1. the season is ``config.seasons.season_of(as_of.month)`` (or given);
2. the four deal types fire per product and give the ranking ``score``;
3. the formula prices every product (:class:`~recsys.deals.pricing.DealPricer`)
   and the guardrails bound it (:mod:`recsys.deals.guardrails`);
4. eligible products (in stock, known cost, not bought, within the spending
   tier, some type fired, margin feasible) are ranked by ``score``, ties by
   ``product_id``; with ``DealRules.cover_types`` the best product of each
   type that fires is taken first, then the rest by score;
5. how many: ``num_deals`` if given (1..max_deals), else the number of
   eligible products with ``score >= DealRules.min_score`` clipped to
   ``[min_deals, max_deals]``; fewer only when fewer are eligible, and then
   ``shortfall_reason`` says why;
6. ``deal_expiry = as_of + expiry_days(demand_score)`` (1..7 days, shorter
   for higher demand; :func:`~recsys.deals.pricing.expiry_days`).

The result is a deterministic function of the inputs (the row order of the
candidate frame does not matter). ``generate`` is rate limited per user;
``generate_many`` is the offline batch path and is not.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import DEFAULT_CONFIG, SEASONS, ConfigError, RecsysConfig
from recsys.deals.candidate_block import CandidateBlock
from recsys.deals.deal_types import DEAL_TYPES, DealRules, type_arrays, type_labels
from recsys.deals.guardrails import EXCLUSION_REASONS, eligibility, guard_arrays
from recsys.deals.pricing import PRICING_COLUMNS, DealPricer, PriceFactor, UserProfile, expiry_days
from recsys.deals.rate_limit import RateLimiter, RateLimitExceeded
from recsys.validation import InvalidRequest

__all__ = ["DEAL_COLUMNS", "POLICY_KEYS", "SEED_DEAL_KEYS", "SUMMARY_COLUMNS", "DealBatch", "DealGenerator", "DealResult"]

SEED_DEAL_KEYS = [
    "product_id",
    "name",
    "category",
    "original_price",
    "deal_price",
    "discount_percentage",
    "deal_reason",
    "deal_expiry",
    "is_regional_deal",
    "score",
]
"""The keys every deal of the seed carries."""

DEAL_COLUMNS = (
    ["user_id", "rank"]
    + SEED_DEAL_KEYS
    + ["deal_types", *DEAL_TYPES, "margin_clamped", "cap_bound", "floor_bound", "expiry_days", "cost",
       "margin_floor", "stock", "demand_score", "affinity", "affinity_pct", "season"]
    + PRICING_COLUMNS
)
"""Columns of the deals frame: ``rank`` 1..n per user, the design's keys, the
fired ``deal_types`` ('|'-joined, and one bool column per type), the
guardrail flags and the pricing terms (for audit and study).
``is_regional_deal`` is True when the ``regional_seasonal`` type fired."""

POLICY_KEYS = ["policy", "policy_version", "variant", "arm", "propensity"]
"""Keys a :class:`~recsys.deals.exploration.LoggingPolicy` adds to each deal
(:meth:`DealResult.to_records` passes them on when present)."""

SUMMARY_COLUMNS = (
    ["user_id", "n_deals", "n_requested", "n_candidates", "n_eligible", "shortfall_reason"]
    + [f"excluded_{r}" for r in EXCLUSION_REASONS]
)
"""Columns of the per-user summary of a :class:`DealBatch`."""


@dataclass
class DealResult:
    """One user's deals and how they came about.

    ``deals``: the :data:`DEAL_COLUMNS` frame; it may be given as a mapping
    of column arrays, turned into the frame on first access (the per-request
    path only needs :meth:`to_records`). ``excluded`` counts candidates per
    exclusion reason (:data:`~recsys.deals.guardrails.EXCLUSION_REASONS`);
    ``shortfall_reason`` is None unless fewer deals than asked for (or than
    ``min_deals``) were possible.
    """

    user_id: str
    as_of: pd.Timestamp
    season: str
    columns: InitVar[pd.DataFrame | Mapping[str, np.ndarray]]
    n_candidates: int
    n_eligible: int
    n_requested: int
    excluded: dict[str, int] = field(default_factory=dict)
    shortfall_reason: str | None = None

    def __post_init__(self, columns: pd.DataFrame | Mapping[str, np.ndarray]) -> None:
        self._deals = columns

    @property
    def deals(self) -> pd.DataFrame:
        if not isinstance(self._deals, pd.DataFrame):
            self._deals = pd.DataFrame(self._deals)
        return self._deals

    def deal_columns(self) -> pd.DataFrame | Mapping[str, np.ndarray]:
        """The deal columns as held (a mapping of arrays is not turned into a frame)."""
        return self._deals

    @property
    def n_deals(self) -> int:
        return len(self._deals["product_id"])

    def to_records(self) -> list[dict[str, Any]]:
        """The deals as JSON-ready dicts (plain Python values): the design's
        keys plus ``deal_types`` (a list) and ``margin_clamped``, and the
        :data:`POLICY_KEYS` when a logging policy set them."""
        keys = SEED_DEAL_KEYS + ["deal_types", "margin_clamped"]
        keys += [k for k in POLICY_KEYS if k in self._deals]  # set when a logging policy priced the deals
        values = [np.asarray(self._deals[k]).tolist() for k in keys]
        records = [dict(zip(keys, row, strict=True)) for row in zip(*values, strict=True)]
        for row in records:
            row["deal_types"] = row["deal_types"].split("|")
        return records


@dataclass
class DealBatch:
    """Deals of many users: ``deals`` (:data:`DEAL_COLUMNS`, users in input
    order, ``rank`` within user) and ``summary`` (:data:`SUMMARY_COLUMNS`,
    one row per user)."""

    as_of: pd.Timestamp
    season: str
    deals: pd.DataFrame
    summary: pd.DataFrame

    def result(self, user_id: str) -> DealResult:
        """The :class:`DealResult` of one user of the batch."""
        rows = self.summary.index[self.summary["user_id"].to_numpy() == user_id]
        if not len(rows):
            raise ValueError(f"user_id {user_id!r} is not in this batch")
        s = self.summary.loc[rows[0]]
        deals = self.deals[self.deals["user_id"].to_numpy() == user_id].reset_index(drop=True)
        return DealResult(
            user_id, self.as_of, self.season, deals, int(s["n_candidates"]), int(s["n_eligible"]),
            int(s["n_requested"]), {r: int(s[f"excluded_{r}"]) for r in EXCLUSION_REASONS},
            s["shortfall_reason"] if isinstance(s["shortfall_reason"], str) else None,
        )

    @staticmethod
    def concat(batches: Sequence[DealBatch]) -> DealBatch:
        """One batch from several with the same ``as_of`` and season."""
        if not batches:
            raise ValueError("concat needs at least one DealBatch")
        keys = {(b.as_of, b.season) for b in batches}
        if len(keys) > 1:
            raise ValueError(f"cannot concat batches of different as_of/season: {sorted(map(str, keys))}")
        return DealBatch(batches[0].as_of, batches[0].season,
                         pd.concat([b.deals for b in batches], ignore_index=True),
                         pd.concat([b.summary for b in batches], ignore_index=True))


class DealGenerator:
    """Personalised deals (see the module docstring).

    Parameters
    ----------
    config: domain configuration; ``config.deals`` holds bounds and guardrails.
    rules: deal-type thresholds and ranking (:class:`DealRules`).
    extra_factors: extra multiplicative pricing factors ``f(candidates, user)``.
    use_price_sensitivity: override of ``config.deals.use_price_sensitivity``.
    sensitivity_strength: see :class:`~recsys.deals.pricing.DealPricer`.
    rate_limiter: True (default) = ``RateLimiter.from_config(config.deals)``;
        False = no limit; or a :class:`RateLimiter` (e.g. shared, or with a
        test clock). Applies to :meth:`generate`.
    """

    #: users per block in :meth:`generate_many` (bounds memory: about 25 arrays of chunk x products)
    chunk_size: int = 512

    def __init__(
        self,
        config: RecsysConfig = DEFAULT_CONFIG,
        *,
        rules: DealRules | None = None,
        extra_factors: Sequence[PriceFactor] = (),
        use_price_sensitivity: bool | None = None,
        sensitivity_strength: float = 1.0,
        rate_limiter: RateLimiter | bool = True,
    ) -> None:
        self.config = config
        self.rules = rules if rules is not None else DealRules()
        if not isinstance(self.rules, DealRules):
            raise ConfigError(f"rules must be a DealRules, got {type(self.rules).__name__}")
        self.pricer = DealPricer(config, extra_factors, use_price_sensitivity, sensitivity_strength)
        if rate_limiter is True:
            self.rate_limiter: RateLimiter | None = RateLimiter.from_config(config.deals)
        elif rate_limiter is False or rate_limiter is None:
            self.rate_limiter = None
        elif isinstance(rate_limiter, RateLimiter):
            self.rate_limiter = rate_limiter
        else:
            raise ConfigError(f"rate_limiter must be a RateLimiter or a bool, got {rate_limiter!r}")

    # -- arguments ------------------------------------------------------------------
    def check_num_deals(self, num_deals: Any) -> int | None:
        """``num_deals`` validated: an int in ``1..max_deals``, or None (up to ``max_deals``)."""
        max_deals = self.config.deals.max_deals
        if num_deals is None:
            return None
        if isinstance(num_deals, bool) or not isinstance(num_deals, numbers.Integral) or not 1 <= num_deals <= max_deals:
            raise InvalidRequest(
                f"num_deals must be an int in 1..{max_deals} (DealConfig.max_deals) or None, got {num_deals!r}")
        return int(num_deals)

    def _when(self, as_of: Any, season: str | None) -> tuple[pd.Timestamp, str]:
        try:
            as_of = pd.Timestamp(as_of)
        except (TypeError, ValueError) as error:
            raise ValueError(f"as_of must be a timestamp, got {as_of!r}") from error
        if pd.isna(as_of):
            raise ValueError("as_of must be a timestamp, got NaT/None")
        season = season if season is not None else self.config.seasons.season_of(as_of.month)
        if season not in SEASONS:
            raise ValueError(f"season must be one of {list(SEASONS)}, got {season!r}")
        return as_of, season

    # -- entry points -----------------------------------------------------------------
    def generate(
        self,
        user: Mapping[str, Any] | pd.Series,
        candidates: pd.DataFrame | CandidateBlock,
        as_of: Any,
        num_deals: int | None = None,
        season: str | None = None,
    ) -> DealResult:
        """Deals for ``user`` from its candidate frame (or a one-user
        :class:`CandidateBlock` of that user, e.g. from
        ``CandidateBuilder.build_block``), valid from ``as_of``.
        Raises :class:`~recsys.deals.rate_limit.RateLimitExceeded` past the
        per-user rate limit."""
        profile = UserProfile.from_mapping(user, self.config)
        self.check_num_deals(num_deals)  # argument errors before candidate errors
        as_of, season = self._when(as_of, season)
        if isinstance(candidates, CandidateBlock):
            if candidates.user_ids.tolist() != [profile.user_id]:
                raise ValueError(f"the candidate block must hold exactly user {profile.user_id!r}, "
                                 f"got users {candidates.user_ids[:3].tolist()} ({candidates.n_users} in all)")
            block = candidates
        else:
            block = CandidateBlock.from_frame(candidates, profile.user_id)
        (result,) = self.generate_each([user], block, as_of, num_deals, season)
        if isinstance(result, RateLimitExceeded):
            raise result.renewed()
        return result

    def generate_each(
        self,
        users: Sequence[Mapping[str, Any]],
        block: CandidateBlock,
        as_of: Any,
        num_deals: int | None = None,
        season: str | None = None,
    ) -> list[DealResult | RateLimitExceeded]:
        """:meth:`generate` for several users at once (the service's batched
        requests): ``users[i]`` is the user of ``block`` row ``i``. Each user
        counts one call against the rate limit; a user past it gets the
        :class:`~recsys.deals.rate_limit.RateLimitExceeded` in place of a
        result, and the others their :class:`DealResult`, the same as one
        ``generate`` call each would give."""
        profiles = [UserProfile.from_mapping(u, self.config) for u in users]
        if [p.user_id for p in profiles] != list(block.user_ids):
            raise ValueError("users must be the users of the block, in its order")
        n_requested = self.check_num_deals(num_deals)
        as_of, season = self._when(as_of, season)
        out: list[DealResult | RateLimitExceeded | None] = [None] * len(profiles)
        if self.rate_limiter is not None:
            out = list(self.rate_limiter.acquire_many([p.user_id for p in profiles]))
        allowed = [i for i, refused in enumerate(out) if refused is None]
        if allowed:
            sub = block if len(allowed) == len(profiles) else block.take(np.asarray(allowed))
            deals, stats = self._run([profiles[i] for i in allowed], [users[i] for i in allowed], sub, as_of, season,
                                     n_requested, as_frame=False)
            ends = np.cumsum(stats["n_deals"])
            for j, i in enumerate(allowed):
                start, end = (ends[j - 1] if j else 0), ends[j]
                out[i] = DealResult(
                    profiles[i].user_id, as_of, season, {k: v[start:end] for k, v in deals.items()}, sub.n_products,
                    int(stats["n_eligible"][j]), int(stats["n_requested"][j]),
                    {r: int(stats["excluded"][r][j]) for r in EXCLUSION_REASONS}, stats["shortfall_reason"][j],
                )
        return out  # type: ignore[return-value]

    def generate_many(
        self,
        users: pd.DataFrame,
        block: CandidateBlock,
        as_of: Any,
        num_deals: int | None = None,
        season: str | None = None,
    ) -> DealBatch:
        """Deals for every row of ``users`` (aligned with ``block.user_ids``)."""
        if not isinstance(block, CandidateBlock):
            raise ValueError(f"block must be a CandidateBlock, got {type(block).__name__}")
        if not isinstance(users, pd.DataFrame):
            raise ValueError(f"users must be a DataFrame, got {type(users).__name__}")
        records = users.to_dict("records")
        profiles = [UserProfile.from_mapping(u, self.config) for u in records]
        ids = [p.user_id for p in profiles]
        if ids != list(block.user_ids):
            raise ValueError("users.user_id must equal block.user_ids, in order")
        n_requested = self.check_num_deals(num_deals)
        as_of, season = self._when(as_of, season)
        frames, summaries = [], []
        for start in range(0, max(len(profiles), 1), self.chunk_size):  # users are independent: chunks bound memory
            chunk = slice(start, start + self.chunk_size)
            rows = np.arange(len(profiles))[chunk]
            deals, stats = self._run(profiles[chunk], records[chunk], block.take(rows), as_of, season, n_requested)
            frames.append(deals)
            summaries.append(pd.DataFrame({
                "user_id": np.asarray(block.user_ids[rows], dtype=object),
                "n_deals": stats["n_deals"],
                "n_requested": stats["n_requested"],
                "n_candidates": np.full(len(rows), block.n_products, dtype=np.int64),
                "n_eligible": stats["n_eligible"],
                "shortfall_reason": np.array(stats["shortfall_reason"], dtype=object),
                **{f"excluded_{r}": stats["excluded"][r] for r in EXCLUSION_REASONS},
            }))
        return DealBatch(as_of, season, pd.concat(frames, ignore_index=True),
                         pd.concat(summaries, ignore_index=True))

    # -- the pipeline -------------------------------------------------------------------
    def _run(self, profiles: list[UserProfile], users: list[Any], block: CandidateBlock, as_of: pd.Timestamp,
             season: str, n_requested: int | None,
             as_frame: bool = True) -> tuple[pd.DataFrame | dict[str, np.ndarray], dict[str, Any]]:
        """Steps 2-6 for the block's users: the deals (a frame, or its
        columns with ``as_frame=False``) and per-user statistics."""
        cfg, rules, products = self.config.deals, self.rules, block.arrays
        seasonal = self.pricer.seasonal_mask(products["category"], profiles, season, block.category_codes())
        types = type_arrays(block, seasonal, rules, all_strengths=False)  # the deals read no other strength
        extra = self.pricer.extra(block.frame, users, block.n_products)
        priced = self.pricer.terms(products["demand_score"], seasonal, profiles, extra)
        guard = guard_arrays(products["price"][None, :], products["cost"][None, :],
                             priced["raw_discount"], cfg)
        tier_q = np.array([self.config.spending_tier(p.spending_tier).max_price_quantile if rules.apply_spending_tier
                           else 1.0 for p in profiles])
        eligible, excluded = eligibility(
            products["stock"], products["cost"], block.purchased, products["category_price_quantile"], tier_q,
            types["any_type"], guard["margin_infeasible"],
            rules.exclude_purchased,
        )
        n_eligible = eligible.sum(axis=1)
        if n_requested is None:
            strong = (eligible & (types["score"] >= rules.min_score)).sum(axis=1)
            target = np.clip(strong, cfg.min_deals, cfg.max_deals)
        else:
            target = np.full(len(profiles), n_requested)
        rows, cols = self._select(block, types, eligible, np.minimum(target, n_eligible))
        deals = self._deal_columns(block, rows, cols, types, priced, guard, as_of, season)
        if as_frame:
            deals = pd.DataFrame(deals)
        stats = {
            "n_deals": np.bincount(rows, minlength=len(profiles)).astype(np.int64),
            "n_requested": target.astype(np.int64),
            "n_eligible": n_eligible.astype(np.int64),
            "excluded": {r: excluded[r].astype(np.int64) for r in EXCLUSION_REASONS},
            "shortfall_reason": [
                self._shortfall(int(e), int(t), {r: int(excluded[r][i]) for r in EXCLUSION_REASONS}, block.n_products)
                if e < t else None for i, (e, t) in enumerate(zip(n_eligible, target, strict=True))
            ],
        }
        return deals, stats

    def _select(self, block: CandidateBlock, types: dict[str, np.ndarray], eligible: np.ndarray,
                n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(user row, product column) of every deal, users in order, best first
        within a user (module docstring, step 4). Only a head of each user's
        ranking is sorted: the ``k + 4`` best scores (every tie included) and
        the best product of each type, which is all that step 4 reads."""
        id_rank = block.id_rank()
        score = types["score"]
        rows_out, cols_out = [], []
        for u in range(block.n_users):
            k = int(n[u])
            if k <= 0:
                continue
            idx = np.flatnonzero(eligible[u])
            s = score[u, idx]
            m = min(k + len(DEAL_TYPES), len(idx))
            head = s >= -np.partition(-s, m - 1)[m - 1] if m < len(idx) else np.ones(len(idx), dtype=bool)
            if self.rules.cover_types:
                for t in DEAL_TYPES:  # the best product of each type that fires (ties by product id)
                    hit = types[t][u, idx]
                    if hit.any():
                        best = np.flatnonzero(hit & (s == s[hit].max()))
                        head[best[np.argmin(id_rank[idx[best]])]] = True
            sub = idx[head]
            ranked = sub[np.lexsort((id_rank[sub], -score[u, sub]))]  # by score desc, then product id
            if self.rules.cover_types:
                hits = np.stack([types[t][u, ranked] for t in DEAL_TYPES])  # types x ranked
                firsts = np.unique(hits.argmax(axis=1)[hits.any(axis=1)])[:k]  # best of each type that fires
                take = np.zeros(len(ranked), dtype=bool)
                take[firsts] = True
                take[np.flatnonzero(~take)[: k - len(firsts)]] = True  # then the rest by score
                chosen = ranked[take]
            else:
                chosen = ranked[:k]
            rows_out.append(np.full(len(chosen), u, dtype=np.int64))
            cols_out.append(np.asarray(chosen, dtype=np.int64))
        if not rows_out:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(rows_out), np.concatenate(cols_out)

    @staticmethod
    def _shortfall(n_eligible: int, target: int, excluded: dict[str, int], n_candidates: int) -> str:
        reasons = ", ".join(f"{k}={v}" for k, v in excluded.items() if v)
        return (f"only {n_eligible} of {n_candidates} candidate products are eligible for a deal, "
                f"{target} wanted; excluded: {reasons or 'none'}")

    def _deal_columns(self, block: CandidateBlock, rows: np.ndarray, cols: np.ndarray, types: dict[str, np.ndarray],
                      priced: dict[str, np.ndarray], guard: dict[str, np.ndarray], as_of: pd.Timestamp,
                      season: str) -> dict[str, np.ndarray]:
        """The :data:`DEAL_COLUMNS` of the chosen (user row, product column) pairs."""
        products, shape = block.arrays, types["score"].shape
        demand = products["demand_score"][cols]
        days = expiry_days(demand, self.config.deals)
        stamp = {int(d): (as_of + pd.Timedelta(days=int(d))).isoformat() for d in np.unique(days)}
        fired = np.column_stack([types[t][rows, cols] for t in DEAL_TYPES]).astype(bool)
        deal_types, reasons = type_labels(fired, self.rules)
        starts = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
        rank = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)])) + 1 if len(rows) else rows

        def product(column: str, dtype: Any) -> np.ndarray:
            return np.asarray(products[column], dtype=dtype)[cols]

        return {
            "user_id": np.asarray(block.user_ids, dtype=object)[rows],
            "rank": np.asarray(rank, dtype=np.int64),
            "product_id": product("product_id", object),
            "name": product("name", object),
            "category": product("category", object),
            "original_price": product("price", float),
            "deal_price": guard["deal_price"][rows, cols],
            "discount_percentage": 100.0 * guard["discount"][rows, cols],
            "deal_reason": np.asarray(reasons, dtype=object),
            "deal_expiry": np.array([stamp[int(d)] for d in days], dtype=object),
            "is_regional_deal": fired[:, DEAL_TYPES.index("regional_seasonal")],
            "score": types["score"][rows, cols],
            "deal_types": np.asarray(deal_types, dtype=object),
            **{t: fired[:, k] for k, t in enumerate(DEAL_TYPES)},
            "margin_clamped": guard["margin_clamped"][rows, cols],
            "cap_bound": guard["cap_bound"][rows, cols],
            "floor_bound": guard["floor_bound"][rows, cols],
            "expiry_days": days,
            "cost": product("cost", float),
            "margin_floor": guard["margin_floor"][rows, cols],
            "stock": product("stock", np.int64),
            "demand_score": demand,
            "affinity": block.affinity[rows, cols],
            "affinity_pct": types["affinity_pct"][rows, cols],
            "season": np.full(len(rows), season, dtype=object),
            **{c: np.broadcast_to(priced[c], shape)[rows, cols] for c in PRICING_COLUMNS},
        }
