"""``run_spark_batch``: every Stage 2 artifact computed by Spark, published like ``recsys batch``.

Steps (module-level ``SPARK_STEPS``, run in order; tests patch one to fail):

==============  =================================================================
interactions    weighted, decayed (user, product) pairs (cached for the next steps)
collaborative   ALS (implicit) -> ``svd_user_factors``, ``svd_item_factors``, ``svd_singular_values``
neighbours      top-k item-item cosine -> ``item_neighbours`` (Stage 1's k-NN)
segments        features + K-Means -> ``segments``, ``segment_summary``
demand          Spark panel + driver regressor -> ``demand``, ``demand_errors``
seasonality     Spark counts -> ``seasonal_factors``
==============  =================================================================

Every file has the name, columns and row order (users / products in file
order) of :func:`recsys.stage2.job.run_batch`'s, plus ``item_neighbours.parquet``;
:func:`recsys.stage2.artifacts.publish_version` writes them into a private temporary
directory, fsyncs, writes the manifest last and renames the version into
place, so an interrupted job leaves ``LATEST`` and every published version
intact. Large frames reach the driver in blocks of ``block_rows`` rows
(index ranges of the cached result) and are appended to one parquet file,
so the driver never holds a whole factor table. The manifest's
``data_hash`` is the data set's content hash from its own manifest, which is
what the engine compares with the data it serves.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recsys.config import DEFAULT_CONFIG, RecsysConfig
from recsys.models.svd import SVDConfig
from recsys.spark.collaborative import ALSConfig, fit_als, score_singular_values
from recsys.spark.demand import fit_demand
from recsys.spark.interactions import weighted_interactions
from recsys.spark.io import SparkInput, read_input
from recsys.spark.neighbours import NeighbourConfig, item_neighbours
from recsys.spark.seasonality import seasonal_factors
from recsys.spark.segments import fit_segments
from recsys.spark.session import spark_session
from recsys.stage2.artifacts import BatchArtifacts, publish_version
from recsys.stage2.job import BatchConfig

__all__ = ["SPARK_STEPS", "SparkBatchConfig", "run_spark_batch", "spark_batch_main"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SparkBatchConfig:
    """The Stage 2 settings shared with the in-memory job (``batch``: segmentation,
    demand, seasonality, versions kept) plus the Spark-only ones."""

    batch: BatchConfig = field(default_factory=BatchConfig)
    als: ALSConfig = field(default_factory=ALSConfig)
    neighbours: NeighbourConfig = field(default_factory=NeighbourConfig)
    block_rows: int = 200_000

    def __post_init__(self) -> None:
        if isinstance(self.block_rows, bool) or not isinstance(self.block_rows, int) or self.block_rows < 1:
            raise ValueError(f"SparkBatchConfig.block_rows must be a positive int, got {self.block_rows!r}")


@dataclass
class _Context:
    spark: Any
    data: SparkInput
    config: SparkBatchConfig
    data_config: RecsysConfig
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def partitions(self) -> int:
        return int(self.spark.conf.get("spark.sql.shuffle.partitions"))


def block_writer(frame: Any, index: str, columns: list[str], n_rows: int, block_rows: int,
                 on_block: Callable[[pd.DataFrame], None] | None = None,
                 order: list[str] | None = None) -> Callable[[Path], None]:
    """A writer for :func:`publish_version`: ``frame`` (cached, with a dense
    0-based ``index`` column) fetched in index blocks, in index order, into one parquet file."""
    from pyspark.sql import functions as F

    def write(path: Path) -> None:
        writer = None
        try:
            for start in range(0, max(n_rows, 1), block_rows):
                part = (frame.where((F.col(index) >= start) & (F.col(index) < start + block_rows))
                        .orderBy(*(order or [index]))
                        .select(*columns).toPandas())
                if on_block is not None:
                    on_block(part)
                table = pa.Table.from_pandas(part, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(path, table.schema, compression="zstd")
                writer.write_table(table.cast(writer.schema))
        finally:
            if writer is not None:
                writer.close()
    return write


# --------------------------------------------------------------------------- steps
def _step_interactions(ctx: _Context) -> dict[str, Any]:
    result = weighted_interactions(ctx.data, ctx.data_config.interactions)
    ctx.state["pairs"] = result.pairs
    n_pairs = result.pairs.count()
    return {"metrics": {"interaction_pairs": int(n_pairs), "events_dropped_unknown_ids": result.n_dropped}}


def _step_collaborative(ctx: _Context) -> dict[str, Any]:
    from pyspark.sql import functions as F

    cfg = ctx.config
    factors = fit_als(ctx.state["pairs"], ctx.data.users, ctx.data.products, cfg.als, ctx.partitions)
    cols = [f"f{i}" for i in range(factors.rank)]
    grams = {"users": np.zeros((factors.rank, factors.rank)), "items": np.zeros((factors.rank, factors.rank))}

    def gram(name: str) -> Callable[[pd.DataFrame], None]:
        def add(part: pd.DataFrame) -> None:
            block = part[cols].to_numpy(dtype=np.float64)
            grams[name] += block.T @ block
        return add

    def singular_values(path: Path) -> None:
        values = score_singular_values(grams["users"], grams["items"])
        pd.DataFrame({"singular_value": values}).to_parquet(path, index=False, engine="pyarrow", compression="zstd")
        energy = ctx.state["interaction_energy"]
        metrics["als_score_energy_ratio"] = float(np.sum(values**2) / energy) if energy > 0 else float("nan")

    frames = {
        "svd_user_factors": block_writer(factors.users, "user_idx", ["user_id", *cols], ctx.data.n_users,
                                         cfg.block_rows, gram("users")),
        "svd_item_factors": block_writer(factors.items, "product_idx", ["product_id", *cols], ctx.data.n_products,
                                         cfg.block_rows, gram("items")),
        "svd_singular_values": singular_values,
    }
    total = ctx.state["pairs"].agg(F.sum(F.col("weight") * F.col("weight"))).first()[0]
    ctx.state["factors"] = factors
    ctx.state["interaction_energy"] = float(total or 0.0)
    metrics: dict[str, Any] = {  # the singular-values writer adds the energy ratio (metrics are read after writing)
        "svd_n_factors": factors.rank, "collaborative_model": "spark.ml ALS (implicit)",
        "als_rank": cfg.als.rank, "als_max_iter": cfg.als.max_iter, "als_reg_param": cfg.als.reg_param,
        "als_alpha": cfg.als.alpha}
    return {"frames": frames, "metrics": metrics}


def _step_neighbours(ctx: _Context) -> dict[str, Any]:
    cfg = ctx.config
    neighbours = item_neighbours(ctx.state["pairs"], ctx.data.products, cfg.neighbours).cache()
    n_rows = neighbours.count()
    writer = block_writer(neighbours, "product_idx", ["product_id", "neighbour_id", "similarity", "rank"],
                          ctx.data.n_products, max(1, cfg.block_rows // max(1, cfg.neighbours.k)),
                          order=["product_idx", "rank"])
    return {"frames": {"item_neighbours": writer},
            "metrics": {"neighbours_k": cfg.neighbours.k, "neighbours_rows": int(n_rows),
                        "neighbours_max_items_per_user": cfg.neighbours.max_items_per_user}}


def _step_segments(ctx: _Context) -> dict[str, Any]:
    seg = fit_segments(ctx.data.users, ctx.data.events, ctx.data.products, ctx.data_config,
                       ctx.config.batch.segmentation)
    writer = block_writer(seg.labels, "user_idx", ["user_id", "segment"], ctx.data.n_users, ctx.config.block_rows)
    return {"frames": {"segments": writer}, "json": {"segment_summary": seg.summary},
            "metrics": {"segmentation_silhouette": seg.silhouette, "segmentation_inertia": seg.inertia}}


def _step_demand(ctx: _Context) -> dict[str, Any]:
    products = ctx.data.products.orderBy("product_idx").drop("product_idx").toPandas()
    model = fit_demand(ctx.data, products, ctx.data_config, ctx.config.batch.demand)
    errors = model.errors_.set_index("model")
    return {
        "frames": {"demand": model.forecast_, "demand_errors": model.errors_},
        "metrics": {f"demand_{m}_{e}": float(errors.loc[m, e]) for m in errors.index for e in errors.columns},
    }


def _step_seasonality(ctx: _Context) -> dict[str, Any]:
    factors = seasonal_factors(ctx.data, ctx.data_config, ctx.config.batch.seasonality)
    return {"frames": {"seasonal_factors": factors.factors_},
            "metrics": {f"seasonal_{k}": v for k, v in factors.compare_with_prior().items()}}


SPARK_STEPS: dict[str, Callable[[_Context], dict[str, Any]]] = {
    "interactions": _step_interactions,
    "collaborative": _step_collaborative,
    "neighbours": _step_neighbours,
    "segments": _step_segments,
    "demand": _step_demand,
    "seasonality": _step_seasonality,
}
"""The Spark batch steps in order (a module-level table: tests patch a step to fail midway)."""


def run_spark_batch(spark: Any, data_path: str, out_dir: str | Path, config: SparkBatchConfig | None = None,
                    data_config: RecsysConfig = DEFAULT_CONFIG) -> BatchArtifacts:
    """Compute every Stage 2 artifact of the data set at ``data_path`` with
    ``spark`` and publish them as a new version under ``out_dir``."""
    config = config or SparkBatchConfig()
    started = time.perf_counter()
    data = read_input(spark, data_path)
    if data.n_users <= 0 or data.n_products <= 0 or data.n_events == 0:
        data.n_users, data.n_products = data.users.count(), data.products.count()
        data.n_events = data.events.count()
    if data.n_users == 0 or data.n_products == 0 or data.n_events == 0:
        raise ValueError(f"cannot run the batch on an empty data set ({data.n_users} users, {data.n_products} "
                         f"products, {data.n_events} events) at {data_path}")
    ctx = _Context(spark, data, config, data_config)
    batch = dataclasses.replace(config.batch, svd=SVDConfig(n_factors=config.als.rank))
    header = {
        "data_hash": data.content_hash, "as_of": data.as_of.isoformat(), "n_users": data.n_users,
        "n_products": data.n_products, "n_events": data.n_events, "config": dataclasses.asdict(batch),
        "engine": {"name": "spark", "spark_version": spark.version, "master": spark.sparkContext.master,
                   "shuffle_partitions": ctx.partitions, "als": dataclasses.asdict(config.als),
                   "neighbours": dataclasses.asdict(config.neighbours), "read_seconds":
                   round(time.perf_counter() - started, 3)},
    }
    def logged(name: str, step: Callable[[_Context], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            t0 = time.perf_counter()
            log.info("step %s: started", name)
            result = step(ctx)
            log.info("step %s: computed in %.1f s (its files are written next)", name, time.perf_counter() - t0)
            return result
        return run

    steps = [(name, logged(name, step)) for name, step in SPARK_STEPS.items()]
    try:
        artifacts = publish_version(out_dir, steps, header, config.batch.keep_versions)
    finally:
        for value in ctx.state.values():
            for frame in (getattr(value, "users", None), getattr(value, "items", None), value):
                if frame is not None and hasattr(frame, "unpersist"):
                    frame.unpersist()
    return artifacts


def spark_batch_main(data_dir: str, out_dir: Path, master: str | None = "local[2]", shuffle_partitions: int = 8,
                     driver_memory: str | None = "2g") -> Path:
    """CLI entry (``recsys batch --engine spark``): start Spark, run, stop; the published version's directory."""
    from pyspark.sql import SparkSession

    owned = SparkSession.getActiveSession() is None  # a caller's session (tests, notebooks) is left running
    spark = spark_session(master, shuffle_partitions=shuffle_partitions, driver_memory=driver_memory)
    try:
        return run_spark_batch(spark, data_dir, out_dir).path
    finally:
        if owned:
            spark.stop()


def main(argv: list[str] | None = None) -> int:
    """``spark-submit recsys/spark/job.py --data s3a://... --out DIR``: the master, driver and executor
    memory come from ``spark-submit``; the artifacts are published under ``--out`` on the driver."""
    import argparse

    parser = argparse.ArgumentParser(description="Stage 2 batch on Spark (for spark-submit)")
    parser.add_argument("--data", required=True, help="saved data set: a local path or s3a://, hdfs://, ...")
    parser.add_argument("--out", required=True, help="artifact directory on the driver (POSIX: atomic rename)")
    parser.add_argument("--shuffle-partitions", type=int, default=200)
    args = parser.parse_args(argv)
    path = spark_batch_main(args.data, Path(args.out), master=None, shuffle_partitions=args.shuffle_partitions,
                            driver_memory=None)
    print(f"batch artifacts: {path}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
