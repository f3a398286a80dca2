"""The data set Stage 2 learns from: the base data set plus the store up to a cutoff.

``training_dataset(base, store, cutoff)`` builds one :class:`~recsys.data.dataset.Dataset`:

* **products**: the base products, each stored upsert's given fields
  replacing the base values (a price, a cost, the stock, ...); a product new
  to the base needs ``name``, ``category``, ``price`` and ``stock`` (else it
  is dropped and counted) and gets ``description`` ``""`` where not given,
  no ``tags`` and ``peak_season`` ``none``;
* **users**: the base users with their stored profiles applied (``region``,
  ``spending_tier``; an ``age_group`` other than the base age's sets ``age``
  to the middle of that band); a user new to the base (a stored profile, or
  only events) takes the fields their profile does not give from the base's
  most common region and spending tier, ``age`` and ``price_sensitivity``
  unknown (NaN), counted in ``users_defaulted``;
* **events**: the base events plus every stored event with
  ``id <= cutoff`` (and after the base's own cutoff, when the base was
  itself exported from the store: no event counts twice); ``session_id`` ``live-<user_id>`` where not given,
  ``quantity`` 1 for carts and purchases (0 otherwise) where not given, a
  purchase's ``value`` ``quantity x price`` at the product's price in the
  data set where not given. Stored events of an unknown product or with a
  time after the cutoff's wall time are dropped, counted per reason;
* ``as_of``: the later of the base's ``as_of`` and the newest kept event.

The result is validated by the ``Dataset`` rules like any other data set.
``export_main`` (``recsys export``) writes it with ``Dataset.save``, the
directory ``recsys train --data``, ``recsys batch`` and ``recsys batch
--engine spark`` read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.data.dataset import Dataset
from recsys.store.base import EventStore, utc_now
from recsys.store.schema import PRODUCT_FIELDS

__all__ = ["BASE_SUBDIR", "TrainingData", "export_main", "resolve_base", "training_dataset"]

BASE_SUBDIR = "base"
"""A model directory's base data set (``MODEL/base``: what ``recsys train`` trained on before any stored event)."""
_REQUIRED_NEW_PRODUCT = ("name", "category", "price", "stock")


@dataclass
class TrainingData:
    """The built data set and what went into it (``report``: JSON-serialisable counts)."""

    dataset: Dataset
    report: dict[str, Any]

    @property
    def summary(self) -> dict[str, Any]:
        """``training_data`` as the service reports it: events, users, products, cutoff."""
        keys = ("events", "users", "products", "stored_events", "cutoff_event_id", "cutoff_time")
        return {k: self.report[k] for k in keys}


def _products(base: pd.DataFrame, stored: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """Base products with the stored upserts applied; (frame, new products, new products dropped)."""
    products = base.set_index("product_id", drop=False).copy()
    stored = stored.set_index("product_id", drop=False)
    known = stored.index.isin(products.index)
    for field in PRODUCT_FIELDS:
        values = stored.loc[known, field]
        values = values[values.notna()]
        if len(values):
            products.loc[values.index, field] = values.astype(products[field].dtype)
    new = stored.loc[~known]
    complete = new[list(_REQUIRED_NEW_PRODUCT)].notna().all(axis=1)
    new = new[complete]
    added = pd.DataFrame({
        "product_id": new["product_id"].astype(object), "name": new["name"].astype(object),
        "category": new["category"].astype(object),
        "description": new["description"].where(new["description"].notna(), "").astype(object),
        "tags": "", "price": new["price"].astype("float64"), "cost": new["cost"].astype("float64"),
        "stock": new["stock"].astype("int64"), "peak_season": "none",
    })
    frame = pd.concat([products.reset_index(drop=True), added], ignore_index=True) if len(added) else (
        products.reset_index(drop=True))
    return frame, len(added), int((~complete).sum())


def _users(base: Dataset, profiles: pd.DataFrame, event_users: pd.Series) -> tuple[pd.DataFrame, int]:
    """Base users with the stored profiles applied, plus new users; (frame, users defaulted)."""
    config = base.config
    users = base.users.set_index("user_id", drop=False).copy()
    profiles = profiles.set_index("user_id", drop=False)
    known = profiles.index.isin(users.index)
    for field in ("region", "spending_tier"):
        values = profiles.loc[known, field]
        values = values[values.notna()]
        users.loc[values.index, field] = values
    groups = profiles.loc[known, "age_group"]
    groups = groups[groups.notna()]
    if len(groups):
        current = config.age_groups_of(users.loc[groups.index, "age"])
        changed = groups[current.to_numpy() != groups.to_numpy()]
        middle = {g.name: (g.min_age + g.max_age) / 2 for g in config.age_groups}
        users.loc[changed.index, "age"] = changed.map(middle).astype("float64")
    new_ids = pd.Index(profiles.index[~known]).union(pd.Index(event_users.unique())).difference(users.index)
    modal = {f: base.users[f].mode().iloc[0] for f in ("region", "spending_tier")}
    new_profiles = profiles.reindex(new_ids)
    added = pd.DataFrame({"user_id": np.asarray(new_ids, dtype=object)})
    defaulted = np.zeros(len(new_ids), dtype=bool)
    for field in ("region", "spending_tier"):
        given = new_profiles[field].to_numpy(dtype=object)
        missing = pd.isna(given)
        defaulted |= missing
        added[field] = np.where(missing, modal[field], given).astype(object)
    middle = {g.name: (g.min_age + g.max_age) / 2 for g in config.age_groups}
    added["age"] = new_profiles["age_group"].map(middle).astype("float64").to_numpy()
    added["price_sensitivity"] = np.nan
    frame = pd.concat([users.reset_index(drop=True), added[list(base.users.columns)]], ignore_index=True)
    return frame, int(defaulted.sum())


def _events(stored: pd.DataFrame, products: pd.DataFrame, cutoff_time: pd.Timestamp
            ) -> tuple[pd.DataFrame, dict[str, int]]:
    """Stored events completed to the data set's columns; (frame, rows dropped per reason)."""
    reasons = {
        "unknown product_id": ~stored["product_id"].isin(products["product_id"]),
        "timestamp after the cutoff time": stored["timestamp"] > cutoff_time,
    }
    removed = pd.Series(False, index=stored.index)
    dropped = {}
    for reason, mask in reasons.items():
        dropped[reason] = int((mask & ~removed).sum())
        removed |= mask
    events = stored[~removed]
    kind = events["event_type"]
    quantity = events["quantity"].where(events["quantity"].notna(), kind.isin(["cart", "purchase"]).astype(float))
    price = events["product_id"].map(products.set_index("product_id")["price"])
    value = events["value"].where(events["value"].notna() | kind.ne("purchase"), (quantity * price).round(2))
    session = events["session_id"].where(events["session_id"].notna(), "live-" + events["user_id"])
    frame = pd.DataFrame({
        "user_id": events["user_id"].astype(object), "product_id": events["product_id"].astype(object),
        "event_type": kind.astype(object), "timestamp": events["timestamp"], "session_id": session.astype(object),
        "quantity": quantity.astype("int64"), "value": value.astype("float64"),
        "rating": events["rating"].astype("float64"),
    })
    return frame.reset_index(drop=True), dropped


def training_dataset(base: Dataset, store: EventStore, cutoff: int | None = None,
                     cutoff_time: datetime | None = None) -> TrainingData:
    """The base data set plus the store's events with ``id <= cutoff`` (default: all committed),
    products and profiles (see the module doc). ``cutoff_time`` (default: now, naive UTC) bounds the
    stored events' times."""
    cutoff = store.last_event_id() if cutoff is None else int(cutoff)
    cutoff_time = pd.Timestamp(utc_now() if cutoff_time is None else cutoff_time)
    already = int((base.meta.get("store") or {}).get("cutoff_event_id", 0))  # a base exported from this store
    stored = store.events(after=already, through=max(cutoff, already))
    products, new_products, products_dropped = _products(base.products, store.products())
    events, dropped = _events(stored, products, cutoff_time)
    users, defaulted = _users(base, store.profiles(), events["user_id"])
    as_of = max(base.as_of, events["timestamp"].max()) if len(events) else base.as_of
    meta = {**base.meta, "store": {"cutoff_event_id": cutoff, "cutoff_time": cutoff_time.isoformat(),
                                   "base_data_hash": base.content_hash()}}
    dataset = Dataset(users, products, pd.concat([base.events, events[list(base.events.columns)]], ignore_index=True),
                      as_of, base.personas, meta, base.config)
    report = {
        "events": len(dataset.events), "users": dataset.n_users, "products": dataset.n_products,
        "base_events": len(base.events), "stored_events": len(stored), "stored_events_used": len(events),
        "stored_events_dropped": dropped, "new_products": new_products,
        "new_products_dropped_incomplete": products_dropped, "new_users": dataset.n_users - base.n_users,
        "users_defaulted": defaulted, "cutoff_event_id": cutoff, "cutoff_time": cutoff_time.isoformat(),
        "as_of": dataset.as_of.isoformat(),
    }
    return TrainingData(dataset, report)


def resolve_base(path: str | Path) -> Path:
    """A data set directory (``manifest.json``) or a model directory's ``base/``."""
    path = Path(path)
    for candidate in (path, path / BASE_SUBDIR):
        if (candidate / "manifest.json").exists():
            return candidate
    raise FileNotFoundError(f"--base {path}: neither a data set directory (manifest.json) nor a model directory "
                            f"with {BASE_SUBDIR}/ (written by `recsys train`)")


def export_main(database: str | None, base: str | Path, out: str | Path, cutoff: int | None = None) -> TrainingData:
    """``recsys export``: the training data set of ``database`` over ``base`` written to ``out``."""
    from recsys.store import DEFAULT_DATABASE_FILE, open_store

    base_dir = resolve_base(base)
    if database is None:
        if base_dir.name != BASE_SUBDIR:
            raise ValueError("--database is required unless --base is a model directory (its events.db)")
        database = f"sqlite:///{base_dir.parent / DEFAULT_DATABASE_FILE}"
    with open_store(database) as store:
        data = training_dataset(Dataset.load(base_dir), store, cutoff)
    data.dataset.save(out)
    return data
