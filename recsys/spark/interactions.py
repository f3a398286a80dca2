"""Weighted, time-decayed implicit feedback with Spark (the formula of :mod:`recsys.interactions`):

``w(u, i) = sum over events e of (u, i) of type_weight(e) * 0.5 ** (max(age_days(e), 0) / half_life_days)``

``age_days = (as_of - timestamp) / 86400 s``, computed from int64
nanoseconds. Reviews weigh ``review_weight_per_star * rating``. The result
has one row per (user, product) pair with an event: ``user_idx, product_idx,
user_id, product_id, weight, purchased`` (``purchased``: the pair has a
purchase event). Events of users or products missing from their tables are
dropped and counted (``n_dropped``), as ``Dataset`` validation would reject them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recsys.config import InteractionWeights
from recsys.spark.io import SparkInput

__all__ = ["SparkInteractions", "event_weight_column", "weighted_interactions"]

NS_PER_DAY = 86_400 * 10**9


@dataclass
class SparkInteractions:
    """The weighted pairs (cached) and how many events were dropped."""

    pairs: Any
    n_dropped: int


def event_weight_column(as_of_ns: int, weights: InteractionWeights) -> Any:
    """The per-event weight as a Spark column expression over ``event_type, rating, ts_ns``."""
    from pyspark.sql import functions as F

    kind = F.col("event_type")
    base = (F.when(kind == "view", F.lit(weights.view))
            .when(kind == "favorite", F.lit(weights.favorite))
            .when(kind == "cart", F.lit(weights.cart))
            .when(kind == "purchase", F.lit(weights.purchase))
            .when(kind == "review", F.lit(weights.review_weight_per_star) * F.col("rating").cast("double"))
            .otherwise(F.lit(0.0)))
    age_days = (F.lit(as_of_ns) - F.col("ts_ns")).cast("double") / F.lit(1e9) / F.lit(86400.0)
    decay = F.pow(F.lit(0.5), F.greatest(age_days, F.lit(0.0)) / F.lit(float(weights.half_life_days)))
    return base * decay


def weighted_interactions(data: SparkInput, weights: InteractionWeights) -> SparkInteractions:
    """Aggregate the events into weighted (user, product) pairs (see the module docstring)."""
    from pyspark.sql import functions as F

    users = data.users.select("user_idx", "user_id")
    products = data.products.select("product_idx", "product_id")
    by_pair = (data.events
               .withColumn("w", event_weight_column(data.as_of_ns, weights))
               .withColumn("is_purchase", (F.col("event_type") == "purchase").cast("int"))
               .groupBy("user_id", "product_id")
               .agg(F.sum("w").alias("weight"), (F.max("is_purchase") > 0).alias("purchased"),
                    F.count(F.lit(1)).alias("n_events")))
    pairs = (by_pair.join(F.broadcast(products), "product_id").join(users, "user_id")
             .select("user_idx", "product_idx", "user_id", "product_id", "weight", "purchased", "n_events")
             .cache())
    n_pair_events = int(pairs.agg(F.sum("n_events")).first()[0] or 0)
    n_events = data.n_events if data.n_events >= 0 else data.events.count()
    return SparkInteractions(pairs.drop("n_events"), int(n_events - n_pair_events))
