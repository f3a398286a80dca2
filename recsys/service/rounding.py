"""Numbers in answers at a stated precision, rounded at the response boundary only.

Money (:data:`MONEY_FIELDS`: ``price``, ``original_price``, ``deal_price``, ...) is
rounded to cents, half up on the decimal text of the float (``17.824499999999997``
-> ``17.82``, ``17.825`` -> ``17.83``); every other fractional number (``score``,
``discount_percentage``, demand and behaviour scores, ...) to
:data:`SCORE_DECIMALS` decimals. The engine keeps full precision internally: only
the JSON an HTTP answer carries is rounded (:class:`~recsys.service.deps.JSONAnswer`).
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

__all__ = ["MONEY_FIELDS", "SCORE_DECIMALS", "round_answer", "round_money"]

MONEY_FIELDS = frozenset({"price", "original_price", "deal_price", "revenue", "savings", "avg_price",
                          "total_revenue", "avg_order_value", "total_spent"})
SCORE_DECIMALS = 4
_CENT = Decimal("0.01")


def round_money(value: float) -> float:
    """``value`` to cents, half up on its shortest decimal text (``repr``)."""
    if not math.isfinite(value):
        return value
    return float(Decimal(repr(value)).quantize(_CENT, rounding=ROUND_HALF_UP))


def round_answer(value: Any, key: str | None = None) -> Any:
    """A copy of a JSON-like answer with money fields to cents and other floats to 4 decimals."""
    if isinstance(value, float):
        return round_money(value) if key in MONEY_FIELDS else round(value, SCORE_DECIMALS)
    if isinstance(value, dict):
        return {k: round_answer(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [round_answer(v, key) for v in value]
    return value
