"""Demand with Spark: the per-product weekly panel aggregated by Spark, the regressor on the driver.

The panel is :func:`recsys.stage2.demand.demand_panel`'s: periods of
``period_days`` counted back from ``as_of`` (``back = floor(age_days /
period_days)``, complete periods only), per product and period the
purchased quantity and the view / favorite / cart counts. Spark reduces the
events to at most ``n_products x n_periods`` rows; the driver then fits
:class:`recsys.stage2.demand.DemandModel` on that panel unchanged (a gradient
boosting model over per-product features: small enough for one machine).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.config import RecsysConfig
from recsys.data.dataset import CANONICAL_DTYPE, SCHEMA, Dataset
from recsys.spark.io import SparkInput
from recsys.stage2.demand import LEADING_EVENTS, DemandConfig, DemandModel, DemandPanel

__all__ = ["catalogue_dataset", "fit_demand", "spark_demand_panel"]


def spark_demand_panel(data: SparkInput, product_ids: pd.Index, period_days: int) -> DemandPanel:
    """The :class:`~recsys.stage2.demand.DemandPanel` of the events, aggregated by Spark."""
    from pyspark.sql import functions as F

    first = data.events.agg(F.min("ts_ns")).first()[0]
    if first is None:
        raise ValueError("cannot build a demand panel from a data set without events")
    span_days = (data.as_of_ns - int(first)) / 1e9 / 86400.0
    n_periods = int(np.floor(span_days / period_days))
    age_days = (F.lit(data.as_of_ns) - F.col("ts_ns")).cast("double") / F.lit(1e9) / F.lit(86400.0)
    binned = data.events.withColumn("back", F.floor(age_days / F.lit(float(period_days))).cast("long"))
    kind = F.col("event_type")
    sums = [F.sum(F.when(kind == "purchase", F.col("quantity").cast("double")).otherwise(0.0)).alias("demand")]
    sums += [F.sum(F.when(kind == name, 1.0).otherwise(0.0)).alias(name) for name in LEADING_EVENTS]
    inside = binned.where(F.col("back") < n_periods)
    cells = (inside.join(F.broadcast(data.products.select("product_id", "product_idx")), "product_id")
             .groupBy("product_idx", "back").agg(*sums).toPandas())
    n_before = int(binned.where(F.col("back") >= n_periods).count())
    rows = cells["product_idx"].to_numpy(dtype=np.int64)
    cols = n_periods - 1 - cells["back"].to_numpy(dtype=np.int64)

    def dense(name: str) -> np.ndarray:
        out = np.zeros((len(product_ids), max(n_periods, 0)))
        out[rows, cols] = cells[name].to_numpy(dtype=float)
        return out

    ends = pd.DatetimeIndex([data.as_of - pd.Timedelta(days=period_days * (n_periods - 1 - i))
                             for i in range(n_periods)])
    return DemandPanel(dense("demand"), {name: dense(name) for name in LEADING_EVENTS}, ends, product_ids, n_before)


def catalogue_dataset(products: pd.DataFrame, as_of: pd.Timestamp, config: RecsysConfig) -> Dataset:
    """A :class:`Dataset` holding only the catalogue (no users, no events):
    what ``DemandModel`` reads besides the panel."""
    def empty(name: str) -> pd.DataFrame:
        return pd.DataFrame({c: pd.Series(dtype=CANONICAL_DTYPE[spec.kind]) for c, spec in SCHEMA[name].items()})

    return Dataset(empty("users"), products[list(SCHEMA["products"])], empty("events"), as_of, config=config)


def fit_demand(data: SparkInput, products: pd.DataFrame, config: RecsysConfig, demand: DemandConfig) -> DemandModel:
    """``DemandModel`` fitted on the Spark panel (``products`` in file order, collected)."""
    panel = spark_demand_panel(data, pd.Index(products["product_id"]), demand.period_days)
    return DemandModel(demand).fit(catalogue_dataset(products, data.as_of, config), panel=panel)
