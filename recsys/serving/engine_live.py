"""The engine's live changes between trainings: product values, user profiles, what it was trained on.

:class:`LiveUpdates` is mixed into :class:`~recsys.serving.engine.RecommendationEngine`:

* :meth:`~LiveUpdates.update_products`: the current ``price``, ``cost`` and
  ``stock`` of catalogue products are used by the next answer (the deals'
  candidates: stock 0 gives no deal, a deal never goes below the margin floor
  of the new cost; answers show the new price). Products not in the
  catalogue are returned as ``not_in_catalogue``: they join it at the next
  train on the stored data; one with a ``name``, ``category`` and ``price``
  is recommendable by content at once: its TF-IDF vector by the fitted
  vectoriser takes a place of the real-time and of the Stage 3 answer of a
  user whose live history it matches (:meth:`~LiveUpdates._realtime_records`,
  :meth:`~LiveUpdates._full_records`), and it is a deal candidate
  (:mod:`recsys.deals.new_products`). One record holds these products
  (:class:`~recsys.serving.catalogue.NewProducts`); a later upsert of only
  ``price``, ``cost`` or ``stock`` changes it.
* :meth:`~LiveUpdates.update_profiles`: a known user's ``region``,
  ``age_group`` and ``spending_tier`` are used by the next deal answer
  (the regional and seasonal deals read the region), ``user_profile`` and
  the demographic segment of the Stage 1 fallback and the Stage 3
  demographic strategy; a user new to the data set is registered with the
  real-time model, whose demographic fallback uses that segment at once.
* :meth:`~LiveUpdates.training_data`: events, users and products of the data
  set trained on, and the event store's cutoff it was built with (0: none).

Every change replaces shared arrays or records by one assignment
(copy-on-write): a request in flight answers from the values it read.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import RecsysConfig
from recsys.data.dataset import Dataset
from recsys.deals.candidate_contract import check_values
from recsys.deals.new_products import NEW_PRODUCT_REASON
from recsys.deals.serving import UserDeals
from recsys.models.content import ContentRecommender
from recsys.models.hybrid import STRATEGIES
from recsys.models.realtime import RealtimeRecommender, UserTop
from recsys.serving.catalogue import Catalogue, NewProducts
from recsys.validation import InvalidRequest

__all__ = ["NEW_PRODUCT_REASON", "LiveUpdates"]


class LiveUpdates:
    """Live product and profile changes of the engine (see the module docstring)."""

    new_product_slots: int = 1
    """Places of a real-time answer a new product may take (the last ones)."""
    new_product_min_similarity: float = 0.3
    """Content cosine with the user's history a new product needs to take one."""

    config: RecsysConfig
    dataset_: Dataset
    _serving: Any  # the engine's Stage 2-3 state (recsys.serving.engine_batch._Serving)
    realtime_: RealtimeRecommender
    content_: ContentRecommender
    _realtime_cols: np.ndarray
    _catalogue: Catalogue
    _user_deals: UserDeals
    _user_records: dict[str, Mapping[str, Any]]
    _lock: threading.RLock

    def _check_trained(self) -> None: ...  # provided by the engine

    def training_data(self) -> dict[str, Any]:
        """``events``, ``users``, ``products`` of the data set trained on; ``cutoff_event_id`` and
        ``cutoff_time`` of the event store it includes (0 and None: the base data only)."""
        self._check_trained()
        ds = self.dataset_
        store = ds.meta.get("store") or {}
        return {"events": len(ds.events), "users": ds.n_users, "products": ds.n_products,
                "cutoff_event_id": int(store.get("cutoff_event_id", 0)), "cutoff_time": store.get("cutoff_time")}

    def update_products(self, products: pd.DataFrame) -> dict[str, Any]:
        """Apply ``product_id`` plus any of ``price``, ``cost``, ``stock`` (NaN/None: unchanged) to the
        catalogue products; returns ``updated`` and ``not_in_catalogue`` ids. Values are checked by the
        deals' rules (price > 0, cost > 0, stock >= 0): ``InvalidRequest`` otherwise, nothing changed."""
        self._check_trained()
        if "product_id" not in products:
            raise InvalidRequest("products need a product_id column")
        ids = products["product_id"].astype(object).to_numpy()
        cols = pd.Index(self._catalogue.product_id).get_indexer(ids)
        known = cols >= 0
        values = {name: pd.to_numeric(products[name], errors="raise").to_numpy(dtype=float)[known]
                  for name in ("price", "cost", "stock") if name in products}
        self._check_new_values(products[~known])  # before anything changes
        with self._lock:
            try:
                self._user_deals.builder.update_products(cols[known], **values)
            except ValueError as err:
                raise InvalidRequest(f"product values refused: {err}") from None
            if "price" in values:  # the catalogue and the builder share the data set's product order
                price, given = self._catalogue.price.copy(), ~np.isnan(values["price"])
                price[cols[known][given]] = values["price"][given]
                self._catalogue = self._catalogue.with_prices(price)
        self._add_new_products(products[~known].reset_index(drop=True))
        return {"updated": [str(i) for i in ids[known]], "not_in_catalogue": [str(i) for i in ids[~known]]}

    @staticmethod
    def _check_new_values(products: pd.DataFrame) -> None:
        """The deals' rules on the given ``price``, ``cost``, ``stock`` of new products (``InvalidRequest``)."""
        given = {c: pd.to_numeric(products[c], errors="coerce").to_numpy(dtype=float)
                 for c in ("price", "cost", "stock") if c in products}
        try:
            check_values({c: v[~np.isnan(v)] for c, v in given.items()})
        except ValueError as err:
            raise InvalidRequest(f"product values refused: {err}") from None

    def _add_new_products(self, products: pd.DataFrame) -> None:
        """Products not in the catalogue with a ``name``, ``category`` and ``price`` become recommendable by
        content at once (:meth:`_new_product_picks`) and deal candidates (:mod:`recsys.deals.new_products`);
        a row with only values (``price``, ``cost``, ``stock``) updates a product held so; others wait for
        the next training (values checked before: :meth:`_check_new_values`)."""
        if not len(products):
            return
        columns = set(products.columns)
        complete = products["name"].notna() & products["category"].notna() & products["price"].notna() \
            if {"name", "category", "price"} <= columns else pd.Series(False, index=products.index)
        ready = products[complete.to_numpy(dtype=bool)]
        vectors = self.content_.vectorize(ready) if len(ready) else None
        with self._lock:
            current = self.__dict__.get("_new_products") or NewProducts.empty(self.content_.vocabulary_size_)
            current = current.with_values(products[(~complete).to_numpy(dtype=bool)])
            if vectors is not None:
                current = current.merged(ready, vectors)
            if len(current):
                self._new_products = current

    def unknown_users(self, user_ids: list[str]) -> list[str]:
        """Those of ``user_ids`` neither in the data set trained on nor added by live events since:
        ``knows_user(u, live=True)`` for many ids with one index look-up (a request's users)."""
        self._check_trained()
        ids = [u for u in user_ids if u not in self._user_records]
        if not ids:
            return ids
        rows = self.realtime_.history_.rows_of(ids)
        return [u for u, row in zip(ids, rows.tolist(), strict=True) if row < 0]

    def new_products(self) -> list[str]:
        """Products upserted while serving that content can recommend before they join the catalogue."""
        live = self.__dict__.get("_new_products")
        return [] if live is None else [str(p) for p in live.product_id]

    def _new_product_picks(self, user_id: str, slots: int) -> tuple[NewProducts | None, np.ndarray, np.ndarray]:
        """Up to ``slots`` new products (:meth:`_add_new_products`, in stock, not yet trained on) whose content
        cosine with the user's live history (``p_u`` of :mod:`recsys.models.content`, weights of the live
        history) is at least :attr:`new_product_min_similarity`, best first: (the products, their positions,
        the cosines)."""
        live: NewProducts | None = self.__dict__.get("_new_products")
        none = np.zeros(0, dtype=np.int64)
        if live is None or not live.in_stock.any():
            return live, none, np.zeros(0)
        snapshot = self.realtime_.history_.snapshot()
        items, weights, _ = snapshot.row_arrays(snapshot.row_of(user_id))
        similarity = self.content_.similarity_of(live.vectors, self._realtime_cols[items], weights)
        similarity[~live.in_stock] = -1.0
        order = np.argsort(-similarity, kind="stable")[:slots]
        picked = order[similarity[order] >= self.new_product_min_similarity]
        return live, picked, similarity[picked]

    def _realtime_records(self, user_id: str, top: UserTop, n: int) -> list[dict[str, Any]]:
        """The real-time answer's records: ``top`` (Stage 1), where up to :attr:`new_product_slots` of the
        last places go to new products (:meth:`_new_product_picks`); score = the cosine. A history-less user
        (the fallback) gets none: content cannot score for them."""
        records = self._catalogue.records(self._realtime_cols[top.cols], top.scores, top.reasons)
        if top.fallback_only:
            return records
        live, picked, similarity = self._new_product_picks(user_id, self.new_product_slots)
        if live is None or not len(picked):
            return records
        kept = records[: max(0, min(len(records), n - len(picked)))]
        return kept + live.records(picked, similarity, NEW_PRODUCT_REASON)

    def _full_records(self, user_id: str, records: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
        """The Stage 3 answer's records with up to :attr:`new_product_slots` of the last places given to new
        products: the content strategy is the only one that can score them before the next batch, so
        they are picked as in :meth:`_realtime_records` (score = the content cosine, all of it the
        ``content`` contribution) and must pass the fusion's price rule of the user's spending tier
        (the ``max_price_quantile`` of their category's catalogue prices; an unknown category passes)."""
        live, picked, similarity = self._new_product_picks(user_id, self.new_product_slots)
        if live is None or not len(picked):
            return records
        tier = self._user_records.get(user_id, {}).get("spending_tier")
        if tier is not None and self._serving.hybrid.config.spending_tier_filter:
            q = self.config.spending_tier(tier).max_price_quantile
            if q < 1.0:
                products = self.dataset_.products
                limit = products.groupby("category", observed=True)["price"].quantile(q)
                bound = pd.Series(live.category[picked]).map(limit).to_numpy(dtype=float)
                ok = np.isnan(bound) | (live.price[picked] <= bound + 1e-9)
                picked, similarity = picked[ok], similarity[ok]
        if not len(picked):
            return records
        added = live.records(picked, similarity, NEW_PRODUCT_REASON)
        for record in added:
            record["contributions"] = {s: (record["score"] if s == "content" else 0.0) for s in STRATEGIES}
        return records[: max(0, min(len(records), n - len(picked)))] + added

    def update_profiles(self, profiles: pd.DataFrame) -> dict[str, Any]:
        """Apply ``user_id`` plus any of ``region``, ``age_group``, ``spending_tier`` (None: unchanged);
        returns ``updated`` (known users) and ``registered`` (users new to the data set) ids."""
        self._check_trained()
        config = self.dataset_.config
        allowed = {"region": config.region_names, "age_group": config.age_group_names,
                   "spending_tier": config.spending_tier_names}
        fields = [f for f in allowed if f in profiles]
        for field in fields:
            values = profiles[field].dropna()
            bad = values[~values.isin(allowed[field])]
            if len(bad):
                raise InvalidRequest(f"unknown {field} {bad.iloc[0]!r}; expected one of {list(allowed[field])}")
        rows = profiles.to_dict(orient="records")
        known = [r for r in rows if r["user_id"] in self._user_records]
        new = [r for r in rows if r["user_id"] not in self._user_records]
        middle = {g.name: (g.min_age + g.max_age) / 2 for g in config.age_groups}
        with self._lock:
            merged = []
            for row in known:
                record = dict(self._user_records[row["user_id"]])
                given = {f: row[f] for f in fields if row.get(f) is not None and not pd.isna(row[f])}
                if "age_group" in given and given["age_group"] != record["age_group"]:
                    record["age"] = middle[given["age_group"]]
                record.update(given)
                self._user_records[row["user_id"]] = record  # one assignment: the deals path reads whole records
                merged.append({"user_id": row["user_id"], **{f: record.get(f) for f in allowed}})
            if merged:  # their demographic segment (Stage 1 fallback, Stage 3 demographic) at once
                self.realtime_.update_profiles(pd.DataFrame(merged, columns=["user_id", *allowed]))
            if new:
                frame = pd.DataFrame(new, columns=["user_id", *fields])
                self.realtime_.register_users(frame)
        return {"updated": [r["user_id"] for r in known], "registered": [r["user_id"] for r in new]}
