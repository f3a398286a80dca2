"""Rows the store accepts, checked before they reach a transaction.

Each checker takes a list of dicts and returns the tuples the writer
inserts, or raises ``ValueError`` naming the row index and the field: a bad
row never enters a batch that other requests' rows share.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from recsys.config import DEFAULT_CONFIG, EVENT_TYPES, RecsysConfig
from recsys.data.ids import invalid_id_mask, is_valid_id
from recsys.store.schema import PRODUCT_FIELDS, PROFILE_FIELDS

__all__ = ["event_rows", "naive_utc_datetime", "product_rows", "profile_rows"]


def naive_utc_datetime(value: Any, where: str) -> datetime:
    """An ISO 8601 string or a datetime (pandas Timestamps included) as a naive UTC datetime."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{where}: {value!r} is not an ISO 8601 time") from None
    if not isinstance(value, datetime):
        raise ValueError(f"{where}: expected an ISO 8601 time, got {type(value).__name__}")
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _ids(rows: list[Mapping[str, Any]], field: str, what: str) -> list[str]:
    values = []
    for i, row in enumerate(rows):
        value = row.get(field)
        if not isinstance(value, str):
            raise ValueError(f"{what}[{i}].{field}: expected an id string, got {value!r}")
        values.append(value)
    if len(values) <= 64:  # a request's few ids: no pandas round trip
        bad = [i for i, v in enumerate(values) if not is_valid_id(v)]
    else:
        import pandas as pd

        bad = np.flatnonzero(invalid_id_mask(pd.Series(values, dtype=object))).tolist()
    if bad:
        i = bad[0]
        raise ValueError(f"{what}[{i}].{field}: {values[i]!r} is not an id (1..128 characters, no whitespace)")
    return values


def _number(value: Any, where: str, *, integer: bool = False, positive: bool = False) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, got {value!r}")
    if integer and value != int(value):
        raise ValueError(f"{where}: expected a whole number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{where}: must be > 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{where}: must be >= 0, got {value!r}")
    return int(value) if integer else float(value)


def event_rows(records: Iterable[Mapping[str, Any]]) -> list[tuple]:
    """``(user_id, product_id, event_type, ts, rating, quantity, value, session_id)`` per record.

    Required: ``user_id``, ``product_id``, ``event_type`` (one of the event
    types), ``timestamp``; a review needs ``rating`` in 1..5, other events
    none; ``quantity``/``value`` >= 0 and ``session_id`` are optional."""
    records = list(records)
    users, products = _ids(records, "user_id", "events"), _ids(records, "product_id", "events")
    rows = []
    for i, (record, user, product) in enumerate(zip(records, users, products, strict=True)):
        kind = record.get("event_type")
        if kind not in EVENT_TYPES:
            raise ValueError(f"events[{i}].event_type: {kind!r} is not one of {list(EVENT_TYPES)}")
        ts = naive_utc_datetime(record.get("timestamp"), f"events[{i}].timestamp")
        rating = _number(record.get("rating"), f"events[{i}].rating")
        if (kind == "review") != (rating is not None) or (rating is not None and not 1 <= rating <= 5):
            raise ValueError(f"events[{i}].rating: a review needs a rating in 1..5, other events none "
                             f"(got {kind} with {rating!r})")
        quantity = _number(record.get("quantity"), f"events[{i}].quantity", integer=True)
        value = _number(record.get("value"), f"events[{i}].value")
        session = record.get("session_id")
        if session is not None and not isinstance(session, str):
            raise ValueError(f"events[{i}].session_id: expected a string, got {session!r}")
        rows.append((user, product, kind, ts, rating, quantity, value, session))
    return rows


def product_rows(records: Iterable[Mapping[str, Any]]) -> list[tuple]:
    """``(product_id, name, category, description, price, cost, stock)``; a field left out is None
    (the upsert keeps the value it had). ``price``/``cost`` > 0, ``stock`` a whole number >= 0."""
    records = list(records)
    ids = _ids(records, "product_id", "products")
    rows = []
    for i, (record, pid) in enumerate(zip(records, ids, strict=True)):
        unknown = set(record) - {"product_id", *PRODUCT_FIELDS}
        if unknown:
            raise ValueError(f"products[{i}]: unknown field(s) {sorted(unknown)}; expected {list(PRODUCT_FIELDS)}")
        for name in ("name", "category", "description"):
            value = record.get(name)
            if value is not None and (not isinstance(value, str) or (name != "description" and not value.strip())):
                raise ValueError(f"products[{i}].{name}: expected a non-empty string, got {value!r}")
        price = _number(record.get("price"), f"products[{i}].price", positive=True)
        cost = _number(record.get("cost"), f"products[{i}].cost", positive=True)
        stock = _number(record.get("stock"), f"products[{i}].stock", integer=True)
        rows.append((pid, record.get("name"), record.get("category"), record.get("description"), price, cost, stock))
    return rows


def profile_rows(records: Iterable[Mapping[str, Any]], config: RecsysConfig = DEFAULT_CONFIG) -> list[tuple]:
    """``(user_id, region, age_group, spending_tier)``; each value one of the configured names (or left out)."""
    records = list(records)
    ids = _ids(records, "user_id", "profiles")
    allowed = {"region": config.region_names, "age_group": config.age_group_names,
               "spending_tier": config.spending_tier_names}
    rows = []
    for i, (record, uid) in enumerate(zip(records, ids, strict=True)):
        unknown = set(record) - {"user_id", *PROFILE_FIELDS}
        if unknown:
            raise ValueError(f"profiles[{i}]: unknown field(s) {sorted(unknown)}; expected {list(PROFILE_FIELDS)}")
        for name in PROFILE_FIELDS:
            value = record.get(name)
            if value is not None and value not in allowed[name]:
                raise ValueError(f"profiles[{i}].{name}: {value!r} is not one of {list(allowed[name])}")
        rows.append((uid, record.get("region"), record.get("age_group"), record.get("spending_tier")))
    return rows
