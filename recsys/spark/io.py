"""The saved data set (``Dataset.save`` or :mod:`recsys.data.synthetic_stream`) as Spark DataFrames.

``read_input(spark, path)`` reads ``users``, ``products`` and ``events``
(``events.parquet`` or the partitioned folder ``events/``) and the
manifest's ``as_of`` and content hash; local paths or any Hadoop file
system URI (``s3a://bucket/prefix``, ``hdfs://...``). Event timestamps
become ``ts_ns`` (int64 nanoseconds since the epoch, read exactly); users
and products get ``user_idx`` / ``product_idx``, their row position in
the file, which is the index order of :class:`recsys.interactions.Interactions`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["SparkInput", "read_input", "read_text"]

EVENT_COLUMNS = ("user_id", "product_id", "event_type", "ts_ns", "session_id", "quantity", "value", "rating")


@dataclass
class SparkInput:
    """The data set as Spark DataFrames plus what the manifest says about it."""

    users: Any  # pyspark DataFrame: user_idx, user_id, age, region, spending_tier, price_sensitivity
    products: Any  # product_idx, product_id, name, category, ..., price, peak_season
    events: Any  # user_id, product_id, event_type, ts_ns, session_id, quantity, value, rating
    as_of: pd.Timestamp
    content_hash: str
    n_users: int
    n_products: int
    n_events: int

    @property
    def as_of_ns(self) -> int:
        return int(self.as_of.value)


def _join(path: str, name: str) -> str:
    return f"{path.rstrip('/')}/{name}"


def read_text(spark: Any, path: str) -> str:
    """A small text file through Hadoop's file system API (local or object store)."""
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(hpath):
        raise FileNotFoundError(f"{path} not found: not a saved Dataset directory")
    stream = fs.open(hpath)
    try:
        reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, "UTF-8"))
        lines = []
        while (line := reader.readLine()) is not None:
            lines.append(line)
        return "\n".join(lines)
    finally:
        stream.close()


def _exists(spark: Any, path: str) -> bool:
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return bool(hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).exists(hpath))


def _with_index(frame: Any, column: str) -> Any:
    """``frame`` with a contiguous 0-based row index in file order, in the JVM:
    ``monotonically_increasing_id`` is ``partition << 33 | row``, shifted by
    the row counts of the partitions before (one small aggregation). Cached,
    so the index is computed once from one read of the file."""
    from pyspark.sql import functions as F

    tagged = frame.withColumn("_pid", F.spark_partition_id()).withColumn("_mid", F.monotonically_increasing_id()) \
        .cache()
    counts = sorted((int(r["_pid"]), int(r["count"])) for r in tagged.groupBy("_pid").count().collect())
    offsets, total = [], 0
    for pid, count in counts:
        offsets.extend([F.lit(pid), F.lit(total)])
        total += count
    shift = F.create_map(*offsets)[F.col("_pid")] if offsets else F.lit(0)
    local = F.col("_mid") - F.shiftleft(F.col("_pid").cast("long"), 33)
    return tagged.select((local + shift).cast("long").alias(column), *frame.columns)


def read_input(spark: Any, path: str) -> SparkInput:
    """Read the data set at ``path`` (see the module docstring)."""
    from pyspark.sql import functions as F

    path = str(path)
    manifest = json.loads(read_text(spark, _join(path, "manifest.json")))
    for key in ("as_of", "content_hash"):
        if key not in manifest:
            raise ValueError(f"{_join(path, 'manifest.json')}: no {key!r}; regenerate the data set")
    events_path = _join(path, "events.parquet")
    if not _exists(spark, events_path):
        events_path = _join(path, "events")
    events = spark.read.parquet(events_path)
    missing = [c for c in ("user_id", "product_id", "event_type", "timestamp", "session_id", "quantity", "rating")
               if c not in events.columns]
    if missing:
        raise ValueError(f"{events_path}: events lack column(s) {missing}")
    ts_type = dict(events.dtypes)["timestamp"]
    ts_ns = F.col("timestamp").cast("long") if ts_type == "bigint" else \
        (F.unix_micros(F.col("timestamp").cast("timestamp")) * F.lit(1000))
    events = events.withColumn("ts_ns", ts_ns).select(*EVENT_COLUMNS)
    users = _with_index(spark.read.parquet(_join(path, "users.parquet")), "user_idx").cache()
    products = _with_index(spark.read.parquet(_join(path, "products.parquet")), "product_idx").cache()
    rows = manifest.get("rows", {})
    return SparkInput(users, products, events, pd.Timestamp(manifest["as_of"]), str(manifest["content_hash"]),
                      int(rows.get("users", -1)), int(rows.get("products", -1)), int(rows.get("events", -1)))
