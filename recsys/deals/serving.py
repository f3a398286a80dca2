"""The per-request deals path: one user's candidate block and deals.

:class:`UserDeals` answers ``deals for user u`` from what the engine has
fitted: the user's Stage 2 affinities (none without history), the
products' demand scores, and the content similarity of the catalogue to the
products the user views most (:class:`ContentSimilarity`). It builds a
one-user :class:`~recsys.deals.candidates.CandidateBlock` and runs the
:class:`~recsys.deals.generator.DealGenerator`. The per-user rate limit is the
caller's: the :class:`~recsys.deals.rate_limit.RateLimiter` passed to
:meth:`UserDeals.answer_many` (the service passes its in-process or Redis one).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys.deals.candidates import CandidateBuilder
from recsys.deals.generator import DealGenerator, DealResult
from recsys.deals.rate_limit import RateLimiter, RateLimitExceeded
from recsys.models.content import ContentRecommender
from recsys.serialization import iso_utc

__all__ = ["ContentSimilarity", "UserDeals"]


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

    def answer_many(self, user_ids: Sequence[str], affinities: Sequence[np.ndarray | None], demand: np.ndarray,
                    as_of: pd.Timestamp, num_deals: int | None, season: str,
                    rate_limiter: RateLimiter | None = None) -> list[dict[str, Any] | RateLimitExceeded]:
        """``{"deals": [...], "season": ..., "note": ...}`` for each of ``user_ids``
        (one candidate block), in their order; a user past the per-user rate limit
        gets its :class:`~recsys.deals.rate_limit.RateLimitExceeded` instead.
        ``rate_limiter``: the caller's limiter (in-process, or shared by every
        service worker), counting one call per known user; None: no limit here
        (the generator's own limiter, if it has one, still applies).

        ``affinities[i]``: the user's Stage 2 scores over the catalogue, or None
        for a user without history (the contract's "no affinity"); an unknown
        user (no profile) gets no deals and a note saying why. ``deal_expiry``
        is ISO 8601 UTC with ``Z``, as the answers' ``timestamp`` (the design's format)."""
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
            block = self.builder.build_block(ids, scores, demand, similarity)
            users = [{"user_id": u, **self.user_records[u]} for u in ids]
            for i, result in zip(known, self.generator.generate_each(users, block, as_of, num_deals, season),
                                 strict=True):
                out[i] = result if isinstance(result, RateLimitExceeded) else self._answer(result)
        return out  # type: ignore[return-value]

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
