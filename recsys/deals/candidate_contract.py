"""The candidate contract: the columns of a candidate frame and their one validation routine.

A candidate frame has one row per product for one user: the product's own
columns (:data:`PRODUCT_COLUMNS`) and the user's (:data:`USER_COLUMNS`).
:func:`validated_arrays` checks a frame (or, for a
:class:`~recsys.deals.candidate_block.CandidateBlock`, its product table)
and returns its columns as arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["CANDIDATE_COLUMNS", "PRODUCT_COLUMNS", "USER_COLUMNS", "category_price_quantile", "check_values",
           "validate_candidates", "validated_arrays"]

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


def check_values(arrays: Mapping[str, np.ndarray]) -> None:
    """The contract's value rules on whichever of its columns ``arrays`` holds."""
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


def category_price_quantile(category: np.ndarray, price: np.ndarray) -> np.ndarray:
    """Price percentile within each category, ``rank(max) / n_category``."""
    if not len(price):
        return np.zeros(0)
    return pd.Series(price).groupby(pd.Series(category)).rank(pct=True, method="max").to_numpy(dtype=float)


def validate_candidates(candidates: pd.DataFrame) -> pd.DataFrame:
    """Check ``candidates`` against the contract; return a new frame (fresh
    RangeIndex) with canonical dtypes and ``category_price_quantile`` filled
    in. Raises ``ValueError`` naming the column, the problem and example
    values. Extra columns are kept."""
    return pd.DataFrame(validated_arrays(candidates))


def validated_arrays(candidates: pd.DataFrame, columns: Mapping[str, str] = CANDIDATE_COLUMNS,
                     owner: str = "candidates") -> dict[str, np.ndarray]:
    """The one validation routine of the contract: the ``columns`` of a
    valid frame as arrays (those columns, ``category_price_quantile``, then
    any extra columns); ``ValueError`` naming ``owner``, the column, the
    problem and example values otherwise."""
    if not isinstance(candidates, pd.DataFrame):
        raise ValueError(f"{owner} must be a pandas DataFrame, got {type(candidates).__name__}")
    present = set(candidates.columns)
    missing = [c for c in columns if c not in present]
    if missing:
        raise ValueError(f"{owner} lack column(s) {missing}; the contract needs {list(columns)}")
    out = _column_arrays(candidates, columns)
    if "category_price_quantile" in present:
        out["category_price_quantile"] = candidates["category_price_quantile"].to_numpy(dtype=np.float64, na_value=np.nan)
    check_values(out)
    _check_ids(out["product_id"])
    out["stock"] = out["stock"].astype(np.int64)
    if "category_price_quantile" not in out:
        out["category_price_quantile"] = category_price_quantile(out["category"], out["price"])
    for column in candidates.columns:
        if column not in out:
            out[column] = candidates[column].to_numpy()
    return out
