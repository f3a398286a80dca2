"""Classic RFM scores and segments, and segmentation agreement, on a hand-made data set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.data import Dataset
from recsys.research.rfm import RFM_SEGMENTS, rfm_profile, rfm_scores, rfm_segment, segment_agreement, segment_crosstab

AS_OF = pd.Timestamp("2024-03-31")


def tiny() -> Dataset:
    """Ten buyers: user_i buys i times (one invoice each), last on day 30 - 3i, each line worth 10 * i."""
    users = pd.DataFrame({"user_id": [f"user_{i}" for i in range(11)], "age": np.nan, "region": "EU",
                          "spending_tier": "mid", "price_sensitivity": np.nan})
    products = pd.DataFrame({"product_id": ["p1"], "name": ["P"], "category": ["Home Decor"], "description": ["p"],
                             "tags": [""], "price": [1.0], "cost": [np.nan], "stock": [10], "peak_season": ["none"]})
    rows = []
    for i in range(1, 11):
        last = AS_OF - pd.Timedelta(days=30 - 3 * i)
        for j in range(i):
            rows.append({"user_id": f"user_{i}", "product_id": "p1", "event_type": "purchase",
                         "timestamp": last - pd.Timedelta(days=j), "session_id": f"inv_{i}_{j}", "quantity": 1,
                         "value": 10.0 * i, "rating": np.nan})
    events = pd.DataFrame(rows)
    return Dataset(users, products, events, AS_OF)


def test_rfm_values_and_scores():
    rfm = rfm_scores(tiny())
    assert rfm.attrs["users_without_purchase"] == 1  # user_0 never bought
    assert list(rfm.index) == [f"user_{i}" for i in range(1, 11)]
    assert rfm.loc["user_4", "recency_days"] == pytest.approx(18.0)
    assert rfm.loc["user_4", "frequency"] == 4 and rfm.loc["user_4", "monetary"] == pytest.approx(160.0)
    # ten users, quintiles of two: user_9 and user_10 are the most recent, most frequent, biggest spenders
    assert rfm["R"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert rfm["F"].tolist() == rfm["R"].tolist() == rfm["M"].tolist()
    assert rfm.loc["user_10", "rfm"] == "555" and rfm.loc["user_10", "segment"] == "Champions"
    assert rfm.loc["user_1", "segment"] == "Hibernating"
    assert rfm.loc["user_5", "segment"] == "Need attention"


def test_ties_share_a_score():
    rfm = rfm_scores(tiny(), as_of=AS_OF)
    ds = tiny()
    ds.events["value"] = 5.0  # all equal spend per line -> monetary ties only within equal frequency
    same = rfm_scores(ds)
    assert same["M"].tolist() == rfm["F"].tolist()


def test_segment_grid_is_a_partition():
    cells = [(r, f) for name, rs, fs in RFM_SEGMENTS for r in rs for f in fs]
    assert sorted(cells) == [(r, f) for r in range(1, 6) for f in range(1, 6)]
    assert rfm_segment(5, 1) == "New customers"
    with pytest.raises(ValueError, match="not on the 5 x 5 grid"):
        rfm_segment(6, 1)


def test_bad_input():
    with pytest.raises(ValueError, match="n_bins"):
        rfm_scores(tiny(), n_bins=1)
    with pytest.raises(ValueError, match="Dataset"):
        rfm_scores(pd.DataFrame())
    with pytest.raises(ValueError, match="no purchases"):
        rfm_scores(tiny(), as_of=AS_OF - pd.Timedelta(days=400))


def test_agreement_crosstab_profile():
    rfm = rfm_scores(tiny())
    same = rfm["segment"].rename("copy")
    assert segment_agreement(rfm["segment"], same) == {"ari": 1.0, "nmi": 1.0, "n_users": 10}
    halves = pd.Series([0] * 5 + [1] * 5, index=rfm.index, name="half")
    table = segment_crosstab(halves, rfm["segment"])
    assert table.to_numpy().sum() == 10 and table.loc[1, "Champions"] == 2
    profile = rfm_profile(halves, rfm)
    assert profile["users"].tolist() == [5, 5]
    assert profile.loc[1, "R"] > profile.loc[0, "R"]
    with pytest.raises(ValueError, match="share no users"):
        segment_agreement(halves, pd.Series([1], index=["nobody"]))
