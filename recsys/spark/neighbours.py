"""Item-item neighbours for Stage 1, with Spark: cosine over the weighted interaction columns.

``sim(i, j) = sum_u x_ui x_uj / (||x_i|| ||x_j||)`` (the plain cosine of
:class:`recsys.models.knn.ItemKNN`, shrinkage 0), computed as a self-join of
the normalised pairs ``x_ui / ||x_i||`` on the user, summed per (i, j): the
co-occurrence form of an item-item similarity, which distributes by user.
Each item keeps its ``k`` most similar other items with ``sim > 0`` (ties:
the lower product index first, as ItemKNN). The cost is ``sum_u n_u^2`` for
``n_u`` products per user; ``max_items_per_user`` bounds it by keeping only
each user's heaviest products (``None``: exact).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["NeighbourConfig", "item_neighbours"]


@dataclass(frozen=True)
class NeighbourConfig:
    """``k`` neighbours per item; ``max_items_per_user``: cap on each user's products (``None``: exact)."""

    k: int = 50
    max_items_per_user: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"NeighbourConfig.k must be a positive int, got {self.k!r}")
        cap = self.max_items_per_user
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 2):
            raise ValueError(f"NeighbourConfig.max_items_per_user must be None or an int >= 2, got {cap!r}")


def item_neighbours(pairs: Any, products: Any, config: NeighbourConfig) -> Any:
    """``product_idx, product_id, neighbour_id, neighbour_idx, similarity, rank`` (rank 1..k)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    x = pairs.select("user_idx", "product_idx", "weight")
    norms = x.groupBy("product_idx").agg(F.sqrt(F.sum(F.col("weight") * F.col("weight"))).alias("norm"))
    if config.max_items_per_user is not None:
        heaviest = Window.partitionBy("user_idx").orderBy(F.desc("weight"), F.asc("product_idx"))
        x = x.withColumn("_r", F.row_number().over(heaviest)).where(F.col("_r") <= config.max_items_per_user) \
            .drop("_r")
    xn = x.join(F.broadcast(norms), "product_idx").select(
        "user_idx", "product_idx", (F.col("weight") / F.col("norm")).alias("v"))
    left = xn.select("user_idx", F.col("product_idx").alias("i"), F.col("v").alias("vi"))
    right = xn.select("user_idx", F.col("product_idx").alias("j"), F.col("v").alias("vj"))
    sims = (left.join(right, "user_idx").where(F.col("i") != F.col("j"))
            .groupBy("i", "j").agg(F.sum(F.col("vi") * F.col("vj")).alias("similarity"))
            .where(F.col("similarity") > 0))
    best = Window.partitionBy("i").orderBy(F.desc("similarity"), F.asc("j"))
    top = sims.withColumn("rank", F.row_number().over(best)).where(F.col("rank") <= config.k)
    ids = products.select("product_idx", "product_id")
    return (top.join(F.broadcast(ids.withColumnRenamed("product_idx", "i")), "i")
            .join(F.broadcast(ids.select(F.col("product_idx").alias("j"), F.col("product_id").alias("neighbour_id"))),
                  "j")
            .select(F.col("i").alias("product_idx"), "product_id", "neighbour_id", F.col("j").alias("neighbour_idx"),
                    "similarity", F.col("rank").cast("int").alias("rank")))
