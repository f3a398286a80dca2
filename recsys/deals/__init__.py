"""Dynamic personalised deals.

Modules: ``candidates`` (the candidate-frame contract, the four deal types,
:class:`CandidateBuilder`), ``pricing`` (the design's formula, price
sensitivity, extra factors), ``guardrails`` (bounds, margin floor,
eligibility), ``rate_limit``, ``generator`` (:class:`DealGenerator`),
``audit`` (independent re-check of the rules), ``response`` (simulated
customer response and policy comparison), ``exploration`` (the logging
policy: exploration, holdout, propensities), ``decision_log`` (logged
decisions and their outcomes), ``experiment`` (A/B experiments on deal
policies), ``study`` (notebook 07 helpers; imports the Stage 2 models, so not
imported here).

``DealGenerator(config).generate(user, candidates, as_of)`` is the per-request
entry point and ``generate_many(users, block, as_of)`` the batch one.
"""

from recsys.deals.audit import all_passed, audit_deals
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
    "all_passed",
    "apply_guardrails",
    "audit_deals",
    "build_candidates",
    "deal_type_scores",
    "eligibility",
    "guard_arrays",
    "expiry_days",
    "seed_discount",
    "validate_candidates",
]
