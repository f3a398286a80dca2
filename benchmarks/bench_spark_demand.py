"""Driver memory of the Spark job's demand step, apart: the panel Spark aggregates, then the regressor.

Usage (from the project root; the xl data set from ``recsys generate --profile xl``)::

    .venv/bin/python benchmarks/bench_spark_demand.py --data data/xl-42

``recsys.spark.demand`` reduces the events to a products x weekly-periods
panel with Spark, then fits :class:`recsys.stage2.demand.DemandModel` (scikit-learn's
HistGradientBoostingRegressor over per-product lag features) on the driver.
This script times the two parts and samples the Python driver's RSS (every
0.2 s, psutil) during each, to show which one sets the driver's peak in
``bench_spark.py --profile xl``. It prints the figures; nothing is recorded.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

for _key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_key, "1")

import pandas as pd  # noqa: E402
import psutil  # noqa: E402


class DriverPeak:
    """Largest RSS of this process (the Python driver, not the JVM) while the block runs."""

    def __init__(self) -> None:
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, me.memory_info().rss)
            self._stop.wait(0.2)

    def __enter__(self) -> DriverPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, psutil.Process().memory_info().rss)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a saved data set (e.g. data/xl-42)")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--shuffle-partitions", type=int, default=32)
    args = parser.parse_args()

    from recsys.config import DEFAULT_CONFIG
    from recsys.spark.demand import catalogue_dataset, spark_demand_panel
    from recsys.spark.io import read_input
    from recsys.spark.session import spark_session
    from recsys.stage2.demand import DemandConfig, DemandModel

    spark = spark_session(args.master, shuffle_partitions=args.shuffle_partitions, driver_memory=args.driver_memory)
    try:
        data = read_input(spark, args.data)
        products = data.products.orderBy("product_idx").drop("product_idx").toPandas()
        config = DemandConfig()
        with DriverPeak() as aggregate:
            t0 = time.perf_counter()
            panel = spark_demand_panel(data, pd.Index(products["product_id"]), config.period_days)
            aggregate_seconds = time.perf_counter() - t0
        with DriverPeak() as fit:
            t0 = time.perf_counter()
            DemandModel(config).fit(catalogue_dataset(products, data.as_of, DEFAULT_CONFIG), panel=panel)
            fit_seconds = time.perf_counter() - t0
    finally:
        spark.stop()
    n_products, n_periods = panel.demand.shape
    print(f"panel: {n_products:,} products x {n_periods} periods, aggregated by Spark in {aggregate_seconds:.0f} s, "
          f"driver peak {aggregate.peak / 2**20:,.0f} MB")
    print(f"regressor fit on the driver: {fit_seconds:.0f} s, driver peak {fit.peak / 2**20:,.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
