"""Classic RFM segmentation, the marketing baseline for behavioural segments.

For every user with at least one purchase up to ``as_of`` (Hughes 1994; the
analysis Chen et al. 2012 ran on the UCI Online Retail data):

- recency ``R_raw`` = days from the last purchase to ``as_of``;
- frequency ``F_raw`` = number of distinct purchase sessions (invoices);
- monetary ``M_raw`` = total purchase value.

Scores 1..``n_bins`` (quintiles by default) from the percentile rank
``p = rank / n`` (average ranks for ties, so tied users share a score and
score groups can differ in size): ``score = ceil(n_bins * p)``; recency is
reversed (the most recent fifth scores 5).

Named segments come from the widely used R x F grid (monetary is reported
beside it, as in most RFM practice):

================= ========== ==========
segment           R score    F score
================= ========== ==========
Champions         5          4-5
Loyal customers   3-4        4-5
Potential loyal.  4-5        2-3
New customers     5          1
Promising         4          1
Need attention    3          3
About to sleep    3          1-2
At risk           1-2        3-4
Can't lose them   1-2        5
Hibernating       1-2        1-2
================= ========== ==========

The grid assumes five bins. :func:`segment_agreement` measures how far two
segmentations of the same users agree (adjusted Rand index, NMI).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from recsys.data.dataset import Dataset

__all__ = ["RFM_SEGMENTS", "rfm_profile", "rfm_scores", "rfm_segment", "segment_agreement", "segment_crosstab"]

RFM_SEGMENTS: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = (
    ("Champions", (5,), (4, 5)),
    ("Loyal customers", (3, 4), (4, 5)),
    ("Potential loyalists", (4, 5), (2, 3)),
    ("New customers", (5,), (1,)),
    ("Promising", (4,), (1,)),
    ("Need attention", (3,), (3,)),
    ("About to sleep", (3,), (1, 2)),
    ("At risk", (1, 2), (3, 4)),
    ("Can't lose them", (1, 2), (5,)),
    ("Hibernating", (1, 2), (1, 2)),
)
"""``(segment, R scores, F scores)``: a partition of the 5 x 5 grid."""


def _scores(values: pd.Series, n_bins: int, reverse: bool = False) -> pd.Series:
    pct = (-values if reverse else values).rank(method="average", pct=True)
    return np.ceil(n_bins * pct).clip(1, n_bins).astype("int64")


def rfm_segment(r_score: int, f_score: int) -> str:
    """The named segment of an (R, F) score pair on the 5 x 5 grid."""
    for name, rs, fs in RFM_SEGMENTS:
        if r_score in rs and f_score in fs:
            return name
    raise ValueError(f"(R, F) = ({r_score!r}, {f_score!r}) is not on the 5 x 5 grid")


def rfm_scores(dataset: Dataset, as_of: pd.Timestamp | None = None, n_bins: int = 5) -> pd.DataFrame:
    """RFM values, scores and segment per purchasing user (module docstring).

    Columns ``recency_days, frequency, monetary, R, F, M, rfm`` (e.g.
    ``"545"``) and ``segment`` (only for ``n_bins == 5``), indexed by
    ``user_id`` in the data set's user order. Users without a purchase up to
    ``as_of`` are left out; their number is in ``attrs['users_without_purchase']``.
    """
    if not isinstance(dataset, Dataset):
        raise ValueError(f"rfm_scores expects a recsys Dataset, got {type(dataset).__name__}")
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2:
        raise ValueError(f"n_bins must be an int >= 2, got {n_bins!r}")
    as_of = dataset.as_of if as_of is None else pd.Timestamp(as_of)
    events = dataset.events
    bought = events[events["event_type"].eq("purchase") & (events["timestamp"] <= as_of)]
    if bought.empty:
        raise ValueError(f"no purchases up to {as_of}: nothing to score")
    grouped = bought.groupby("user_id")
    order = [u for u in dataset.users["user_id"] if u in grouped.groups]
    frame = pd.DataFrame({
        "recency_days": (as_of - grouped["timestamp"].max()).dt.total_seconds() / 86400.0,
        "frequency": grouped["session_id"].nunique(),
        "monetary": grouped["value"].sum(),
    }).reindex(order)
    frame.index.name = "user_id"
    frame["R"] = _scores(frame["recency_days"], n_bins, reverse=True)
    frame["F"] = _scores(frame["frequency"].astype(float), n_bins)
    frame["M"] = _scores(frame["monetary"], n_bins)
    frame["rfm"] = frame["R"].astype(str) + frame["F"].astype(str) + frame["M"].astype(str)
    if n_bins == 5:
        frame["segment"] = [rfm_segment(r, f) for r, f in zip(frame["R"], frame["F"], strict=True)]
    frame.attrs["users_without_purchase"] = int(dataset.n_users - len(frame))
    return frame


def _aligned(a: pd.Series, b: pd.Series) -> tuple[pd.Series, pd.Series]:
    common = a.index.intersection(b.index)
    if len(common) == 0:
        raise ValueError("the two segmentations share no users")
    return a.loc[common], b.loc[common]


def segment_agreement(a: pd.Series, b: pd.Series) -> dict[str, float]:
    """Adjusted Rand index and NMI (arithmetic) of two labelings over their
    common users (index = user id); ``n_users``: how many were compared."""
    a, b = _aligned(a, b)
    return {
        "ari": float(adjusted_rand_score(a.to_numpy(), b.to_numpy())),
        "nmi": float(normalized_mutual_info_score(a.to_numpy(), b.to_numpy())),
        "n_users": int(len(a)),
    }


def segment_crosstab(a: pd.Series, b: pd.Series) -> pd.DataFrame:
    """Users per (label of ``a``, label of ``b``) over their common users."""
    a, b = _aligned(a, b)
    return pd.crosstab(a.rename(a.name or "a"), b.rename(b.name or "b"))


def rfm_profile(labels: pd.Series, rfm: pd.DataFrame) -> pd.DataFrame:
    """Per label: users, mean R/F/M scores, and median recency, frequency and
    spend of its purchasing users (labels index = user id)."""
    labels, _ = _aligned(labels, rfm["R"])
    part = rfm.loc[labels.index].assign(label=labels.to_numpy())
    out = part.groupby("label", sort=True).agg(
        users=("R", "size"), R=("R", "mean"), F=("F", "mean"), M=("M", "mean"),
        median_recency_days=("recency_days", "median"), median_frequency=("frequency", "median"),
        median_monetary=("monetary", "median"),
    )
    out.index.name = labels.name or "label"
    return out.reset_index()
