"""The service's clock and its time format."""

from __future__ import annotations

import pandas as pd

__all__ = ["iso", "utc_now"]


def utc_now() -> pd.Timestamp:
    """The service's default clock: now, in UTC."""
    return pd.Timestamp.now(tz="UTC")


def iso(ts: pd.Timestamp) -> str:
    """``2024-01-15T10:30:00Z`` (naive timestamps are UTC), the design's format."""
    ts = pd.Timestamp(ts)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")
