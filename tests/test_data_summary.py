"""Descriptive summaries of a Dataset, checked against hand counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.config import EVENT_TYPES
from recsys.data import Dataset, summary

AS_OF = pd.Timestamp("2024-08-31")


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    users = pd.DataFrame({"user_id": ["u0", "u1", "u2"], "age": [20.0, 30.0, 60.0], "region": ["EU", "EU", "NA"],
                          "spending_tier": ["budget", "mid", "mid"], "price_sensitivity": [0.8, 0.5, 0.4]})
    products = pd.DataFrame({"product_id": ["p0", "p1"], "name": ["a", "b"], "category": ["Travel", "Books"],
                             "description": ["x", "y"], "tags": ["t", "t"], "price": [100.0, 10.0],
                             "cost": [60.0, 5.0], "stock": [0, 4], "peak_season": ["summer", "none"]})
    rows = [  # user, product, type, time, session
        ("u0", "p0", "view", "2024-07-01 10:00", "s0"), ("u0", "p0", "cart", "2024-07-01 10:01", "s0"),
        ("u0", "p0", "purchase", "2024-07-01 10:05", "s0"), ("u0", "p1", "view", "2024-07-01 10:06", "s0"),
        ("u0", "p1", "cart", "2024-07-01 10:07", "s0"),  # abandoned
        ("u1", "p1", "view", "2024-08-01 09:00", "s1"), ("u1", "p1", "favorite", "2024-08-01 09:01", "s1"),
        ("u0", "p0", "review", "2024-07-05 12:00", "s2"),
    ]
    events = pd.DataFrame(rows, columns=["user_id", "product_id", "event_type", "timestamp", "session_id"])
    events["timestamp"] = pd.to_datetime(events["timestamp"])
    events["quantity"] = np.where(events["event_type"].isin(["cart", "purchase"]), 1, 0)
    events["value"] = np.where(events["event_type"] == "purchase", 100.0, np.nan)
    events["rating"] = np.where(events["event_type"] == "review", 4.0, np.nan)
    return Dataset(users, products, events, AS_OF)


def test_funnel_and_rates(tiny: Dataset) -> None:
    funnel = summary.event_funnel(tiny)
    assert funnel["event_type"].tolist() == list(EVENT_TYPES)
    assert funnel["events"].tolist() == [3, 1, 2, 1, 1]
    assert funnel["users"].tolist() == [2, 1, 1, 1, 1]
    rates = summary.funnel_rates(tiny)
    assert rates["cart_abandonment"] == pytest.approx(0.5)
    assert rates["view_to_cart"] == pytest.approx(2 / 3)
    assert rates["events_per_user"] == pytest.approx(8 / 3)
    assert rates["users_without_events"] == pytest.approx(1 / 3)
    assert rates["sessions"] == 3 and rates["mean_rating"] == 4.0


def test_sizes_users_prices(tiny: Dataset) -> None:
    assert summary.frame_sizes(tiny).set_index("frame")["rows"].to_dict() == {"users": 3, "products": 2, "events": 8}
    by_group = summary.users_by(tiny, "age_group").set_index("age_group")["users"].to_dict()
    assert by_group == {"adult": 1, "senior": 1, "young": 1}
    with pytest.raises(ValueError, match="unknown column 'income'"):
        summary.users_by(tiny, "income")
    prices = summary.price_summary(tiny).set_index("category")
    assert prices.loc["Travel", "mean_margin"] == pytest.approx(0.4) and prices.loc["Travel", "sold_out"] == 1.0


def test_time_and_region_tables(tiny: Dataset) -> None:
    monthly = summary.events_over_time(tiny, freq="M", by="region", per_user=False)
    assert monthly.loc[pd.Timestamp("2024-07-01"), "EU"] == 6 and monthly.loc[pd.Timestamp("2024-08-01"), "EU"] == 2
    per_user = summary.events_over_time(tiny, freq="M", by="region")
    assert per_user.loc[pd.Timestamp("2024-07-01"), "EU"] == 3.0
    share = summary.category_region_share(tiny)
    assert share["EU"].sum() == pytest.approx(1.0) and share.loc["Travel", "EU"] == pytest.approx(4 / 8)
    boosted = summary.boosted_category_share(tiny)
    # EU boosts Travel and Fashion in summer: July has 4 Travel events out of 6.
    assert boosted.loc[pd.Timestamp("2024-07-01"), ("EU", "summer: Travel, Fashion")] == pytest.approx(4 / 6)
    assert boosted.loc[pd.Timestamp("2024-08-01"), ("EU", "winter: Books, Home & Garden")] == pytest.approx(1.0)
