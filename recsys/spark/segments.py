"""User features and K-Means segments with Spark (the features of :mod:`recsys.stage2.segmentation`).

Per user: age, one-hot region, ``log1p`` events and distinct sessions,
ordinal spending tier, event-type shares, category shares and price
sensitivity, aggregated by Spark; missing values filled with the column
median (exact ``percentile``); z-scored with the population standard
deviation (as ``StandardScaler``; a constant column keeps scale 1) and the
same group weights; then MLlib K-Means (k-means|| initialisation, fixed
seed) and segments renumbered by decreasing size. The summary is the one
:meth:`recsys.stage2.segmentation.UserSegmentation.summary` returns, from Spark
aggregates per segment. The silhouette is scikit-learn's on a fixed sample
of ``silhouette_sample`` users (by a seeded hash of the user id).

Where it differs from the in-memory Stage 2 (:mod:`recsys.stage2.segmentation`):
it always clusters the features (the method ``kmeans_features``); it neither
runs the persona-blind choice (``SegmentationConfig.method="auto"``, which on
the thesis profile picks K-Means on features + PureSVD user factors) nor builds
the PureSVD embedding, whatever ``method`` says; ``clustering_info`` says so
(``method``, ``note``).

Not bit-identical to the in-memory K-Means: MLlib has no ``n_init``
restarts and initialises with k-means||, so the partition can differ where
clusters are not well separated; the tests bound the disagreement by the
adjusted Rand index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import silhouette_score

from recsys.config import EVENT_TYPES, RecsysConfig
from recsys.stage2.segmentation import (
    FEATURE_GROUPS,
    SegmentationConfig,
    UserSegmentation,
    dominant_value,
    relabel_by_size,
)

__all__ = ["SparkSegments", "fit_segments", "user_features"]


@dataclass
class SparkSegments:
    """``labels``: Spark DataFrame ``user_idx, user_id, segment`` (cached); the summary and metrics."""

    labels: Any
    summary: dict[str, Any]
    inertia: float
    silhouette: float


def user_features(users: Any, events: Any, products: Any, config: RecsysConfig
                  ) -> tuple[Any, dict[str, list[str]], list[str]]:
    """Raw features per user (``user_idx, user_id`` + feature columns), the
    column groups, and the feature columns in order."""
    from pyspark.sql import functions as F

    categories_seen = sorted(r[0] for r in products.select("category").distinct().collect())
    categories = list(dict.fromkeys(list(config.categories) + [c for c in categories_seen
                                                                 if c not in config.categories]))
    ev = events.select("user_id", "product_id", "event_type", "session_id").join(
        F.broadcast(products.select("product_id", "category")), "product_id", "left")
    aggs = [F.count(F.lit(1)).alias("n_events"), F.countDistinct("session_id").alias("n_sessions")]
    aggs += [F.sum((F.col("event_type") == e).cast("double")).alias(f"n_type_{i}") for i, e in enumerate(EVENT_TYPES)]
    aggs += [F.sum((F.col("category") == c).cast("double")).alias(f"n_cat_{i}") for i, c in enumerate(categories)]
    per_user = ev.groupBy("user_id").agg(*aggs)
    joined = users.join(per_user, "user_id", "left").fillna(0, subset=[f.name for f in per_user.schema.fields][1:])
    denom = F.greatest(F.col("n_events").cast("double"), F.lit(1.0))
    tier = F.lit(None).cast("double")
    for rank, name in reversed(list(enumerate(config.spending_tier_names))):
        tier = F.when(F.col("spending_tier") == name, F.lit(float(rank))).otherwise(tier)
    cols = {"age": F.col("age").cast("double")}
    cols.update({f"region={r}": (F.col("region") == r).cast("double") for r in config.region_names})
    cols["log_events"] = F.log1p(F.col("n_events").cast("double"))
    cols["log_sessions"] = F.log1p(F.col("n_sessions").cast("double"))
    cols["spending_tier"] = tier
    cols.update({f"share_{e}": F.col(f"n_type_{i}") / denom for i, e in enumerate(EVENT_TYPES)})
    cols.update({f"cat={c}": F.col(f"n_cat_{i}") / denom for i, c in enumerate(categories)})
    cols["price_sensitivity"] = F.col("price_sensitivity").cast("double")
    groups = {
        "age": ["age"], "region": [f"region={r}" for r in config.region_names],
        "activity": ["log_events", "log_sessions"], "spending_tier": ["spending_tier"],
        "interaction": [f"share_{e}" for e in EVENT_TYPES] + [f"cat={c}" for c in categories],
        "price_sensitivity": ["price_sensitivity"],
    }
    names = list(cols)
    frame = joined.select("user_idx", "user_id", *[expr.alias(name) for name, expr in cols.items()])
    return frame, groups, names


def fit_segments(users: Any, events: Any, products: Any, config: RecsysConfig,
                 segmentation: SegmentationConfig) -> SparkSegments:
    """Features, scaling, MLlib K-Means and the summary (see the module docstring)."""
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import functions as F

    raw, groups, names = user_features(users, events, products, config)
    raw = raw.cache()
    n_users = raw.count()
    k = segmentation.n_clusters
    if n_users <= k:
        raise ValueError(f"cannot form {k} segments from {n_users} users: need more users than n_clusters")
    nulls = raw.select(*[F.sum(F.col(f"`{c}`").isNull().cast("long")).alias(f"c{i}")
                         for i, c in enumerate(names)]).first()
    fill = {}
    for i, c in enumerate(names):
        if nulls[f"c{i}"]:
            fill[c] = raw.select(F.percentile(F.col(f"`{c}`"), 0.5)).first()[0]
            fill[c] = 0.0 if fill[c] is None else float(fill[c])
    filled = [F.coalesce(F.col(f"`{c}`"), F.lit(fill[c])) if c in fill else F.col(f"`{c}`") for c in names]
    moments = raw.select(*[F.avg(e).alias(f"m{i}") for i, e in enumerate(filled)],
                         *[F.stddev_pop(e).alias(f"s{i}") for i, e in enumerate(filled)]).first()
    weights = UserSegmentation(segmentation)._column_weights(groups, names)
    scaled = []
    for i, e in enumerate(filled):
        sd = moments[f"s{i}"] or 0.0
        scale = sd if sd > 0 else 1.0
        scaled.append(((e - F.lit(moments[f"m{i}"])) / F.lit(scale) * F.lit(float(weights[i]))).alias(f"z{i}"))
    zcols = [f"z{i}" for i in range(len(names))]
    X = VectorAssembler(inputCols=zcols, outputCol="features").transform(
        raw.select("user_idx", "user_id", *scaled)).select("user_idx", "user_id", "features").cache()
    model = KMeans(k=k, seed=segmentation.random_state, maxIter=100, tol=1e-4, initMode="k-means||",
                   featuresCol="features", predictionCol="cluster").fit(X)
    centers = np.array(model.clusterCenters())
    clusters = model.transform(X).select("user_idx", "user_id", "cluster", "features")
    sizes = dict(clusters.groupBy("cluster").count().collect())
    old = np.repeat(np.arange(len(centers)), [int(sizes.get(c, 0)) for c in range(len(centers))])
    relabelled, _ = relabel_by_size(old, centers)
    new_of_old = {int(o): int(n) for o, n in zip(old, relabelled, strict=True)}
    mapping = F.create_map(*[F.lit(v) for pair in sorted(new_of_old.items()) for v in pair])
    labelled = clusters.withColumn("segment", mapping[F.col("cluster")].cast("int")).cache()
    labels = labelled.select("user_idx", "user_id", "segment")
    sample = (labelled.orderBy(F.xxhash64("user_id", F.lit(segmentation.random_state)), "user_idx")
              .limit(segmentation.silhouette_sample).select("features", "segment").collect())
    Xs = np.array([row["features"].toArray() for row in sample])
    ys = np.array([row["segment"] for row in sample])
    silhouette = float(silhouette_score(Xs, ys)) if len(np.unique(ys)) > 1 else float("nan")
    summary = _summary(users, labels, config, segmentation, groups, names, silhouette)
    inertia = float(model.summary.trainingCost)
    X.unpersist()
    raw.unpersist()
    return SparkSegments(labels, summary, inertia, silhouette)


def _summary(users: Any, labels: Any, config: RecsysConfig, segmentation: SegmentationConfig,
             groups: dict[str, list[str]], names: list[str], silhouette: float) -> dict[str, Any]:
    """``UserSegmentation.summary()``'s structure from per-segment Spark aggregates."""
    from pyspark.sql import functions as F

    ages = sorted(float(r[0]) for r in users.select("age").distinct().collect() if r[0] is not None)
    age_map = pd.DataFrame({"age": ages, "age_group": config.age_groups_of(pd.Series(ages, dtype=float)).to_numpy()})
    spark = users.sparkSession
    age_frame = spark.createDataFrame(age_map) if len(age_map) else None
    seg_users = labels.select("user_id", "segment").join(users, "user_id")
    if age_frame is not None:
        seg_users = seg_users.join(F.broadcast(age_frame), "age", "left")
    else:
        seg_users = seg_users.withColumn("age_group", F.lit(None).cast("string"))
    seg_users = seg_users.fillna({"age_group": "unknown"})
    means = {r["segment"]: r for r in seg_users.groupBy("segment").agg(
        F.count(F.lit(1)).alias("size"), F.avg("age").alias("avg_age"),
        F.avg("price_sensitivity").alias("avg_ps")).collect()}
    counts: dict[str, pd.DataFrame] = {
        col: seg_users.groupBy("segment", col).count().toPandas() for col in ("region", "age_group", "spending_tier")}
    order = {"region": list(config.region_names), "age_group": list(config.age_group_names) + ["unknown"],
             "spending_tier": list(config.spending_tier_names)}

    def dominant(col: str, seg: int) -> str:
        part = counts[col][counts[col]["segment"] == seg]
        values = pd.Series(np.repeat(part[col].to_numpy(dtype=object), part["count"].to_numpy()))
        return dominant_value(values, order[col])

    def number(value: Any) -> float:
        return round(float("nan") if value is None else float(value), 6)

    segments = {}
    for seg in range(segmentation.n_clusters):
        row = means.get(seg)
        segments[f"segment_{seg}"] = {
            "size": int(row["size"]) if row else 0,
            "avg_age": number(row["avg_age"] if row else None),
            "dominant_region": dominant("region", seg),
            "dominant_age_group": dominant("age_group", seg),
            "avg_price_sensitivity": number(row["avg_ps"] if row else None),
            "dominant_spending_tier": dominant("spending_tier", seg),
        }
    return {
        "user_segments": segments,
        "clustering_info": {
            "n_clusters": segmentation.n_clusters,
            "algorithm": UserSegmentation.algorithm,
            "method": "kmeans_features",
            "note": "the Spark path clusters the features only; the in-memory Stage 2 serves the persona-blind "
                    f"choice (configured method {segmentation.method!r})",
            "features_used": [FEATURE_GROUPS[g] for g in groups],
            "feature_columns": names,
            "silhouette": round(silhouette, 6) if not math.isnan(silhouette) else silhouette,
        },
    }
