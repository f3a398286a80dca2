"""Descriptive summaries of a ``Dataset``: sizes, the event funnel, who the
users are, activity over time, category mix by region and prices.

Plain functions, ``Dataset`` in and ``DataFrame`` (or a dict of floats) out,
used by the data-generation notebook and anyone describing a data set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.config import EVENT_TYPES
from recsys.data.dataset import Dataset

__all__ = [
    "category_region_share",
    "event_funnel",
    "events_over_time",
    "frame_sizes",
    "funnel_rates",
    "boosted_category_share",
    "price_summary",
    "users_by",
]


def frame_sizes(dataset: Dataset) -> pd.DataFrame:
    """Rows and columns of each frame (``personas`` included if present)."""
    frames = {"users": dataset.users, "products": dataset.products, "events": dataset.events}
    if dataset.personas is not None:
        frames["personas (hidden)"] = dataset.personas
    return pd.DataFrame([{"frame": name, "rows": len(df), "columns": df.shape[1]} for name, df in frames.items()])


def event_funnel(dataset: Dataset) -> pd.DataFrame:
    """Per event type (funnel order): ``events``, distinct ``users``, and
    ``per_view`` = events of the type / view events."""
    ev = dataset.events
    counts = ev["event_type"].value_counts().reindex(EVENT_TYPES, fill_value=0)
    users = ev.groupby("event_type")["user_id"].nunique().reindex(EVENT_TYPES, fill_value=0)
    views = max(int(counts["view"]), 1)
    return pd.DataFrame({"event_type": list(EVENT_TYPES), "events": counts.to_numpy(),
                         "users": users.to_numpy(), "per_view": counts.to_numpy() / views})


def funnel_rates(dataset: Dataset) -> dict[str, float]:
    """Headline behaviour figures.

    ``cart_abandonment`` = share of (session, user, product) carts with no
    purchase of that product in the same session; ``view_to_cart`` = carts /
    views; ``cart_to_purchase`` = purchases / carts; ``review_rate`` = reviews
    / purchases; ``users_without_events`` = share of users with no event.
    """
    ev = dataset.events
    counts = ev["event_type"].value_counts().reindex(EVENT_TYPES, fill_value=0)
    key = ["session_id", "user_id", "product_id"]
    carts = ev.loc[ev["event_type"] == "cart", key].drop_duplicates()
    bought = ev.loc[ev["event_type"] == "purchase", key].drop_duplicates().assign(bought=True)
    converted = carts.merge(bought, on=key, how="left")["bought"].fillna(False).astype(bool)
    sessions = ev["session_id"].nunique()
    reviews = ev.loc[ev["event_type"] == "review", "rating"]

    def ratio(a: float, b: float) -> float:
        return float(a) / float(b) if b else float("nan")

    return {
        "users": float(dataset.n_users),
        "products": float(dataset.n_products),
        "events": float(len(ev)),
        "sessions": float(sessions),
        "events_per_user": ratio(len(ev), dataset.n_users),
        "views_per_session": ratio(counts["view"], sessions),
        "view_to_cart": ratio(counts["cart"], counts["view"]),
        "cart_to_purchase": ratio(counts["purchase"], counts["cart"]),
        "cart_abandonment": 1.0 - float(converted.mean()) if len(converted) else float("nan"),
        "review_rate": ratio(counts["review"], counts["purchase"]),
        "mean_rating": float(reviews.mean()) if len(reviews) else float("nan"),
        "users_without_events": 1.0 - ratio(ev["user_id"].nunique(), dataset.n_users),
    }


def users_by(dataset: Dataset, column: str) -> pd.DataFrame:
    """Users per value of ``column`` (any users column or ``age_group``), with shares."""
    users = dataset.user_features()
    if column not in users.columns:
        raise ValueError(f"users_by: unknown column {column!r}; expected one of {list(users.columns)}")
    counts = users[column].value_counts(sort=False).sort_index()
    return pd.DataFrame({column: counts.index.to_numpy(), "users": counts.to_numpy(),
                         "share": counts.to_numpy() / max(len(users), 1)})


def events_over_time(dataset: Dataset, freq: str = "W", by: str = "region", per_user: bool = True) -> pd.DataFrame:
    """Events per period (rows, pandas offset alias ``freq``) and value of the
    users column ``by`` (columns). With ``per_user``, counts are divided by
    the number of users of that group, so groups of different size compare.
    Periods are labelled by their start; the first and last may be partial."""
    users = dataset.user_features().set_index("user_id")[by]
    ev = dataset.events[["user_id", "timestamp"]].assign(group=lambda e: e["user_id"].map(users).to_numpy())
    period = ev["timestamp"].dt.to_period(freq).dt.start_time
    table = pd.crosstab(period, ev["group"]).rename_axis(index="period", columns=by)
    if per_user:
        table = table / users.value_counts().reindex(table.columns).to_numpy()
    return table


def boosted_category_share(dataset: Dataset, freq: str = "M") -> pd.DataFrame:
    """Seasonality by region x category x season, as it shows in the data:
    per period (rows) and (region, season) pair with regional seasonal boosts
    in the configuration (columns), the share of that region's events that
    fall in the categories the region boosts in that season. A share rises
    in its season if the data follow the seasonal table."""
    cfg = dataset.config
    ev = dataset.events
    region = ev["user_id"].map(dataset.users.set_index("user_id")["region"]).to_numpy()
    category = ev["product_id"].map(dataset.products.set_index("product_id")["category"]).to_numpy()
    period = ev["timestamp"].dt.to_period(freq).dt.start_time.to_numpy()
    columns = {}
    for reg in cfg.regions:
        mine = region == reg.name
        for season, boosted in reg.seasonal_boosts.items():
            if not boosted:
                continue
            hit = pd.Series(np.isin(category[mine], list(boosted)), index=period[mine])
            columns[(reg.name, f"{season}: {', '.join(boosted)}")] = hit.groupby(level=0).mean()
    table = pd.DataFrame(columns)
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["region", "boosted"])
    return table.rename_axis(index="period")


def category_region_share(dataset: Dataset, event_types: tuple[str, ...] = EVENT_TYPES) -> pd.DataFrame:
    """Share of each category (rows) in the events of ``event_types`` of
    each region's users (columns sum to 1)."""
    ev = dataset.events[dataset.events["event_type"].isin(event_types)]
    category = ev["product_id"].map(dataset.products.set_index("product_id")["category"])
    region = ev["user_id"].map(dataset.users.set_index("user_id")["region"])
    table = pd.crosstab(category.to_numpy(), region.to_numpy(), normalize="columns")
    regions = [r for r in dataset.config.region_names if r in table.columns]
    return table[regions].rename_axis(index="category", columns="region")


def price_summary(dataset: Dataset) -> pd.DataFrame:
    """Per category: products, median / 10th / 90th percentile price, mean
    gross margin ``(price - cost) / price`` and the share sold out (stock 0)."""
    p = dataset.products
    margin = (p["price"] - p["cost"]) / p["price"]
    grouped = p.assign(margin=margin, sold_out=p["stock"].eq(0)).groupby("category")
    return pd.DataFrame({
        "products": grouped.size(),
        "median_price": grouped["price"].median(),
        "p10_price": grouped["price"].quantile(0.1),
        "p90_price": grouped["price"].quantile(0.9),
        "mean_margin": grouped["margin"].mean(),
        "sold_out": grouped["sold_out"].mean(),
    }).reset_index()
