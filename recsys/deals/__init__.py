"""Dynamic personalised deals: candidates and deal types, the pricing formula,
guardrails, rate limiting, and a simulated customer response.

``DealGenerator(config).generate(user, candidates, as_of)`` is the entry
point; :class:`CandidateBuilder` assembles the candidate frame from a
``Dataset`` and per-product Stage 2 arrays.
"""

from recsys.deals.candidates import (
    CANDIDATE_COLUMNS,
    DEAL_TYPES,
    CandidateBlock,
    CandidateBuilder,
    DealRules,
    build_candidates,
    deal_type_scores,
    validate_candidates,
)
from recsys.deals.generator import DEAL_COLUMNS, SEED_DEAL_KEYS, SUMMARY_COLUMNS, DealBatch, DealGenerator, DealResult
from recsys.deals.guardrails import EXCLUSION_REASONS, apply_guardrails, eligibility, guard_arrays
from recsys.deals.pricing import PRICING_COLUMNS, DealPricer, PriceFactor, UserProfile, expiry_days, seed_discount
from recsys.deals.rate_limit import RateLimiter, RateLimitExceeded

__all__ = [
    "CANDIDATE_COLUMNS",
    "DEAL_COLUMNS",
    "DEAL_TYPES",
    "EXCLUSION_REASONS",
    "PRICING_COLUMNS",
    "SEED_DEAL_KEYS",
    "SUMMARY_COLUMNS",
    "CandidateBlock",
    "CandidateBuilder",
    "DealBatch",
    "DealGenerator",
    "DealPricer",
    "DealResult",
    "DealRules",
    "PriceFactor",
    "RateLimitExceeded",
    "RateLimiter",
    "UserProfile",
    "apply_guardrails",
    "build_candidates",
    "deal_type_scores",
    "eligibility",
    "guard_arrays",
    "expiry_days",
    "seed_discount",
    "validate_candidates",
]
