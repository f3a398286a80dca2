"""The service's clock (its time format is :func:`recsys.serialization.iso_utc`)."""

from __future__ import annotations

import pandas as pd

__all__ = ["utc_now"]


def utc_now() -> pd.Timestamp:
    """The service's default clock: now, in UTC."""
    return pd.Timestamp.now(tz="UTC")
