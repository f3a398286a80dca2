"""Adapters to engine contracts that the ``engine`` branch delivers.

DELETE THIS MODULE after that branch is merged (and call the engine
directly in :mod:`recsys.service.app`): the engine then takes ``now=`` (its
``timestamp`` and ``deal_expiry`` come from the clock) and ``full()`` past the
deal rate limit returns ``"deals": []`` with ``"deals_retry_after_seconds"``
instead of raising. Each function below is a no-op pass-through when the
engine already has the contract (detected once, from its signature).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.deals.rate_limit import RateLimitExceeded
from recsys.engine import RecommendationEngine
from recsys.service.clock import iso

__all__ = ["ENGINE_HAS_NOW", "engine_clock", "full", "load_engine", "restamp"]

ENGINE_HAS_NOW = "now" in inspect.signature(RecommendationEngine.load).parameters


def engine_clock(now: Callable[[], pd.Timestamp]) -> dict[str, Any]:
    """Keyword arguments giving a new ``RecommendationEngine(...)`` the clock ``now``
    (none for the old engine, whose answers :func:`restamp` stamps instead).
    After the merge: write ``RecommendationEngine(now=now)``."""
    return {"now": now} if ENGINE_HAS_NOW else {}


def load_engine(path: str | Path, now: Callable[[], pd.Timestamp]) -> RecommendationEngine:
    """``RecommendationEngine.load(path, now=now)`` where supported."""
    if ENGINE_HAS_NOW:
        return RecommendationEngine.load(path, now=now)  # type: ignore[call-arg]
    return RecommendationEngine.load(path)


def restamp(response: dict[str, Any], engine: RecommendationEngine, now: pd.Timestamp) -> dict[str, Any]:
    """Old engine only: ``timestamp`` := now, and each ``deal_expiry`` moved
    from the data's ``as_of`` to now (same validity), at any depth."""
    if ENGINE_HAS_NOW:
        return response
    as_of = pd.Timestamp(engine.dataset_.as_of)
    stamp = iso(now)

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if key == "timestamp" and isinstance(item, str):
                    out[key] = stamp
                elif key == "deal_expiry" and isinstance(item, str):
                    out[key] = iso(pd.Timestamp(now) + (pd.Timestamp(item) - as_of))
                else:
                    out[key] = walk(item)
            return out
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(response)


def full(engine: RecommendationEngine, user_id: str, num_recommendations: int, include_deals: bool,
         requesting_user: str | None) -> dict[str, Any]:
    """``engine.full``; past the deal rate limit (old engine: it raises) the
    recommendations with ``deals: []`` and ``deals_retry_after_seconds``."""
    try:
        return engine.full(user_id, num_recommendations, include_deals=include_deals, requesting_user=requesting_user)
    except RateLimitExceeded as err:
        out = engine.full(user_id, num_recommendations, include_deals=False, requesting_user=requesting_user)
        out["deals"] = []
        out["deals_retry_after_seconds"] = float(err.retry_after)
        return out
