"""The per-request deals path: one user's candidate block and deals.

:class:`UserDeals` answers ``deals for user u`` from what the engine has
fitted: the user's Stage 2 affinities (none without history), the
products' demand scores, and the content similarity of the catalogue to the
products the user views most (:class:`ContentSimilarity`). It builds a
one-user :class:`~recsys.deals.candidates.CandidateBlock` and runs the
:class:`~recsys.deals.generator.DealGenerator`. The per-user rate limit is the
caller's: the :class:`~recsys.deals.rate_limit.RateLimiter` passed to
:meth:`UserDeals.answer_many` (the service passes its in-process or Redis one).

With a :class:`~recsys.deals.exploration.LoggingPolicy` (``policy``), the
deals are priced by it (exploration, holdout) and carry ``policy,
policy_version, variant, arm, propensity``; a held-out user gets no deals and
a note saying so. With a ``sink``
(:class:`~recsys.deals.decision_log.DecisionSink`) every decision, the
held-out ones included, is logged with its context (region, age group,
segment, demand score, season).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys.deals.candidates import CandidateBuilder
from recsys.deals.decision_log import DecisionSink, decisions_frame
from recsys.deals.exploration import LoggingPolicy, period_of
from recsys.deals.generator import SEED_DEAL_KEYS, DealGenerator, DealResult
from recsys.deals.new_products import LiveProducts, extended_block, mark_new, new_similarity
from recsys.deals.rate_limit import RateLimiter, RateLimitExceeded
from recsys.models.content import ContentRecommender
from recsys.serialization import iso_utc

__all__ = ["ContentSimilarity", "UserDeals"]

_POLICY_INPUTS = list(dict.fromkeys(
    SEED_DEAL_KEYS + ["deal_types", "margin_clamped", "user_id", "rank", "expiry_days", "cost", "margin_floor",
                      "demand_score", "season"]))
"""The deal columns the answer, the logging policy and the decision log read."""


class ContentSimilarity:
    """The deal builder's ``item_similarity`` (it reads ``shape`` and
    ``[rows]``) as content cosine rows computed on demand, so no products x
    products matrix is ever stored."""

    def __init__(self, content: ContentRecommender) -> None:
        self.content = content
        n = content.item_vectors_.shape[0]
        self.shape = (n, n)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        x = self.content.item_vectors_  # CSR, unit rows: cosine = dot product
        seeds = x[np.atleast_1d(np.asarray(rows))].toarray()
        return np.asarray(x @ seeds.T).T  # one sparse x dense product, (len(rows), products)


@dataclass
class UserDeals:
    """One user's deals from fitted parts (see the module docstring).

    ``user_records``: each known user's ``age, region, age_group,
    spending_tier, price_sensitivity``; ``similar_seed_items``: how many of
    the user's most-viewed products define "similar to viewed"."""

    builder: CandidateBuilder
    similarity: ContentSimilarity
    generator: DealGenerator
    user_records: Mapping[str, Mapping[str, Any]]
    similar_seed_items: int
    policy: LoggingPolicy | None = None
    sink: DecisionSink | None = None
    variant: str = ""

    def answer_many(self, user_ids: Sequence[str], affinities: Sequence[np.ndarray | None], demand: np.ndarray,
                    as_of: pd.Timestamp, num_deals: int | None, season: str,
                    rate_limiter: RateLimiter | None = None, segments: Mapping[str, Any] | None = None,
                    new_products: LiveProducts | None = None) -> list[dict[str, Any] | RateLimitExceeded]:
        """``{"deals": [...], "season": ..., "note": ...}`` for each of ``user_ids``
        (one candidate block), in their order; a user past the per-user rate limit
        gets its :class:`~recsys.deals.rate_limit.RateLimitExceeded` instead.
        ``rate_limiter``: the caller's limiter (in-process, or shared by every
        service worker), counting one call per known user; None: no limit here
        (the generator's own limiter, if it has one, still applies).

        ``affinities[i]``: the user's Stage 2 scores over the catalogue, or None
        for a user without history (the contract's "no affinity"); an unknown
        user (no profile) gets no deals and a note saying why. ``deal_expiry``
        is ISO 8601 UTC with ``Z``, as the answers' ``timestamp`` (the design's format).
        ``new_products``: products not yet trained on, extra candidates (:mod:`recsys.deals.new_products`)."""
        out: list[dict[str, Any] | RateLimitExceeded | None] = [None] * len(user_ids)
        known = []
        for i, user_id in enumerate(user_ids):
            if user_id in self.user_records:
                known.append(i)
            else:
                out[i] = {"deals": [], "season": season,
                          "note": f"unknown user {user_id!r}: deals need a known profile (region, age, tier)"}
        if known and rate_limiter is not None:
            refusals = rate_limiter.acquire_many([user_ids[i] for i in known])
            for i, refused in zip(known, refusals, strict=True):
                out[i] = refused
            known = [i for i, refused in zip(known, refusals, strict=True) if refused is None]
        if known:
            ids = [user_ids[i] for i in known]
            scores = np.full((len(ids), len(demand)), np.nan)
            for j, i in enumerate(known):
                if affinities[i] is not None:
                    scores[j] = affinities[i]
            similarity = self.builder.similarity_to_viewed(ids, self.similarity, self.similar_seed_items)
            if new_products is not None and len(new_products.product_id):
                seeds = self.builder.viewed_seeds(ids, self.similar_seed_items)
                live = new_similarity(self.similarity.content, seeds, new_products.vectors)
                block = extended_block(self.builder, ids, scores, demand, similarity, new_products, live)
            else:
                block = self.builder.build_block(ids, scores, demand, similarity)
            users = [{"user_id": u, **self.user_records[u]} for u in ids]
            results = self.generator.generate_each(users, block, as_of, num_deals, season)
            if new_products is not None and len(new_products.product_id):
                results = [r if isinstance(r, RateLimitExceeded) else
                           mark_new(r, new_products.product_id, self.generator.rules) for r in results]
            if self.policy is not None:
                results = self._apply_policy(results, as_of, segments or {})
            for i, result in zip(known, results, strict=True):
                out[i] = result if isinstance(result, RateLimitExceeded) else self._answer(result)
        return out  # type: ignore[return-value]

    def _apply_policy(self, results: list[DealResult | RateLimitExceeded], as_of: pd.Timestamp,
                      segments: Mapping[str, Any]) -> list[DealResult | RateLimitExceeded]:
        """Price the results by the logging policy (one pass over all their deals),
        log every decision, and keep only the offered deals (none for a held-out
        user) in the results."""
        assert self.policy is not None
        period = period_of(as_of, self.policy.config.period_days)
        done = [r for r in results if not isinstance(r, RateLimitExceeded)]
        if not done:
            return results
        columns = [r.deal_columns() for r in done]
        merged = {k: np.concatenate([np.asarray(c[k]) for c in columns]) for k in _POLICY_INPUTS}
        applied = self.policy.apply(merged, period)
        applied["variant"] = np.full(len(applied["arm"]), self.variant, dtype=object)
        offered = applied["arm"] != "holdout"
        cuts = np.cumsum([r.n_deals for r in done])[:-1]
        pieces = {k: np.split(v, cuts) for k, v in applied.items()}
        kept = np.split(offered, cuts)
        renewed = {}
        for j, result in enumerate(done):
            keep = kept[j]
            held_out = bool(len(keep)) and not keep.any()
            note = ("holdout: no deals for this user in this period (deal evaluation, "
                    f"{self.policy.name} {self.policy.version})") if held_out else result.shortfall_reason
            renewed[id(result)] = DealResult(result.user_id, result.as_of, result.season,
                                             {k: v[j][keep] for k, v in pieces.items()}, result.n_candidates,
                                             result.n_eligible, result.n_requested, result.excluded, note)
        if self.sink is not None and len(offered):
            context = {u: {"region": r.get("region"), "age_group": r.get("age_group"),
                           "segment": f"segment_{segments[u]}" if u in segments else "unknown"}
                       for u in set(applied["user_id"].tolist()) for r in [self.user_records[u]]}
            self.sink.write(decisions_frame(applied, context, as_of, period, self.variant))
        return [r if isinstance(r, RateLimitExceeded) else renewed[id(r)] for r in results]

    @staticmethod
    def _answer(result: DealResult) -> dict[str, Any]:
        """A user's deal result as plain JSON values (``deal_expiry`` ISO 8601 UTC, non-finite floats None)."""
        deals = result.to_records()  # plain Python values already: only non-finite floats and expiries to fix
        expiry = {stamp: iso_utc(stamp) for stamp in {deal["deal_expiry"] for deal in deals}}
        for deal in deals:
            deal["deal_expiry"] = expiry[deal["deal_expiry"]]
            for key, value in deal.items():
                if isinstance(value, float) and not math.isfinite(value):
                    deal[key] = None
        return {"deals": deals, "season": result.season, "note": result.shortfall_reason}
