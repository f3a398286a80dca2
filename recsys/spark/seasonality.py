"""Seasonal factors with Spark: the event counts per (region, category, season) by Spark,
the factors of :mod:`recsys.stage2.seasonality` from those counts on the driver (a
few hundred cells): ``share = (n + alpha) / (n_season + alpha C)``,
``factor = share / mean over observed seasons of share``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recsys.config import SEASONS, RecsysConfig
from recsys.spark.io import SparkInput
from recsys.stage2.seasonality import SeasonalFactors, SeasonalityConfig

__all__ = ["season_column", "seasonal_factors"]


def season_column(config: RecsysConfig) -> Any:
    """The season of each event's month (UTC) as a Spark column over ``ts_ns``."""
    from pyspark.sql import functions as F

    month = F.month(F.timestamp_micros(F.floor(F.col("ts_ns") / F.lit(1000))))
    expr = None
    for m, season in sorted(config.seasons.month_to_season.items()):
        expr = (F.when(month == m, F.lit(season)) if expr is None else expr.when(month == m, F.lit(season)))
    return expr


def seasonal_factors(data: SparkInput, config: RecsysConfig, seasonality: SeasonalityConfig) -> SeasonalFactors:
    """A fitted :class:`~recsys.stage2.seasonality.SeasonalFactors` (``factors_``;
    ``compare_with_prior`` works on it) from Spark-aggregated counts."""
    from pyspark.sql import functions as F

    events = data.events.where(F.col("event_type").isin(list(seasonality.event_types)))
    per_user = (events.join(F.broadcast(data.products.select("product_id", "category")), "product_id")
                .withColumn("season", season_column(config))
                .groupBy("user_id", "category", "season").agg(F.count(F.lit(1)).alias("n")))
    counted = (per_user.join(data.users.select("user_id", "region"), "user_id")
               .groupBy("region", "category", "season").agg(F.sum("n").alias("count")).toPandas())
    stats = events.agg(F.count(F.lit(1)).alias("n"), F.min("ts_ns").alias("first")).first()
    if not stats["n"]:
        raise ValueError(f"no events of types {list(seasonality.event_types)} to measure seasonal factors from")
    product_categories = sorted(r[0] for r in data.products.select("category").distinct().collect())
    regions, seasons = list(config.region_names), list(SEASONS)
    categories = list(dict.fromkeys(list(config.categories) + product_categories))
    full = pd.MultiIndex.from_product([regions, categories, seasons], names=["region", "category", "season"])
    counts = counted.set_index(["region", "category", "season"])["count"].reindex(full, fill_value=0)
    cube = counts.to_numpy(dtype=float).reshape(len(regions), len(categories), len(seasons))
    alpha = seasonality.alpha
    season_total = cube.sum(axis=1, keepdims=True)
    observed = np.broadcast_to(season_total > 0, cube.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(observed, (cube + alpha) / (season_total + alpha * len(categories)), np.nan)
        n_seen = observed.sum(axis=2, keepdims=True)
        factor = share / (np.where(observed, share, 0.0).sum(axis=2, keepdims=True) / n_seen)
    fitted = SeasonalFactors(seasonality)
    fitted.factors_ = pd.DataFrame({
        "region": full.get_level_values(0), "category": full.get_level_values(1),
        "season": full.get_level_values(2), "events": cube.ravel().astype(np.int64),
        "share": share.ravel(), "factor": factor.ravel(),
        "prior_boosted": [config.is_seasonal(c, r, s) for r, c, s in full],
    })
    first = pd.Timestamp(int(stats["first"]), unit="ns")
    days = pd.Series(pd.date_range(first.normalize(), data.as_of.normalize(), freq="D"))
    fitted.season_days_ = (days.dt.month.map(config.seasons.month_to_season).value_counts()
                           .reindex(seasons, fill_value=0).rename("days"))
    return fitted
