"""The one timestamp rule of the data layer.

Every timestamp is stored as a timezone-naive ``datetime64[ns]`` in UTC: a
timezone-aware value or column is converted to UTC and its zone dropped
(``2024-06-01 12:00+02:00`` -> ``2024-06-01 10:00``); a naive one is taken as
UTC already and kept. The ``Dataset``, ``generate(as_of=...)`` and the
Online Retail and MovieLens loaders all go through these functions.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from recsys.data.errors import DataValidationError

__all__ = ["as_timestamp", "naive_utc", "naive_utc_ns"]


def naive_utc(values: pd.Series) -> pd.Series:
    """A datetime column as naive UTC: tz-aware -> converted to UTC, zone dropped; naive unchanged."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values


def naive_utc_ns(values: pd.Series, frame: str, column: str) -> pd.Series:
    """A column parsed as datetimes (``pd.to_datetime``) and stored as naive UTC
    ``datetime64[ns]`` (:func:`naive_utc`); ``DataValidationError`` naming
    ``frame.column`` when it does not parse or is outside the ns range. A column
    already naive ``datetime64[ns]`` is returned as it is (no copy)."""
    if values.dtype == np.dtype("datetime64[ns]"):
        return values
    try:
        return naive_utc(pd.to_datetime(values)).astype("datetime64[ns]")
    except (OverflowError, pd.errors.OutOfBoundsDatetime) as error:
        raise DataValidationError(frame, column, f"timestamp outside the datetime64[ns] range "
                                                 f"1677-09-21..2262-04-11 ({error})") from None
    except (ValueError, TypeError) as error:
        raise DataValidationError(frame, column, f"not parseable as datetimes ({error})") from None


def as_timestamp(value: Any, name: str = "as_of") -> pd.Timestamp:
    """``value`` (a ``Timestamp``, ``datetime``, ``date``, ``np.datetime64`` or
    ISO 8601 string) as a naive UTC ``pd.Timestamp``; ``DataValidationError``
    naming ``name`` for anything else, ``NaT`` and unparseable strings included."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (pd.Timestamp, dt.date, np.datetime64, str)):
        raise DataValidationError(name, None, f"expected a timestamp (or an ISO 8601 string), got "
                                              f"{type(value).__name__} {value!r}")
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as error:
        raise DataValidationError(name, None, f"not a timestamp: {value!r} ({error})") from None
    if stamp is pd.NaT or pd.isna(stamp):
        raise DataValidationError(name, None, f"missing timestamp (NaT): {value!r}")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp
