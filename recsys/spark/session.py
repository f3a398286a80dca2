"""The SparkSession of the Stage 2 job, pinned for reproducible results.

Determinism: a fixed ``spark.sql.shuffle.partitions`` (the partitioning of
every aggregation, hence the order in which floating-point sums are added),
one core per task (``spark.task.cpus=1``; MLlib's BLAS runs single-threaded
in each task), UTC session time, and seeds on every randomized algorithm
(ALS, K-Means). What stays non-deterministic across *cluster shapes*: sums
over partitions are added in partition order, so a different number of
partitions or executors changes the last bits of aggregated floats (exact
integer counts never change), and ALS / K-Means converge to slightly
different factors and centroids from those bits.

Parquet timestamps written by pandas are nanoseconds, which Spark cannot
represent; ``spark.sql.legacy.parquet.nanosAsLong`` reads them as int64
nanoseconds since the epoch, which the jobs use exactly (no rounding to
microseconds).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping

__all__ = ["JavaMissingError", "java_version", "spark_session"]

JAVA_HINT = ("install Java 17 or newer, e.g. `apt-get install -y openjdk-17-jre-headless` (Debian/Ubuntu), "
             "or set JAVA_HOME")


class JavaMissingError(RuntimeError):
    """No usable Java runtime for Spark."""


def java_version() -> str | None:
    """The first line of ``java -version`` (``JAVA_HOME`` first), or ``None`` if no Java is found."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stderr or out.stdout).strip().splitlines()
    return text[0] if out.returncode == 0 and text else None


def spark_session(master: str | None = "local[2]", app_name: str = "recsys-stage2", shuffle_partitions: int = 8,
                  driver_memory: str | None = "2g", conf: Mapping[str, str] | None = None):
    """Get or create the SparkSession (``master``: ``local[n]``, ``spark://host:port``, ``yarn``,
    ``k8s://...``; ``None`` under ``spark-submit``, which sets the master and the driver memory);
    ``JavaMissingError`` naming the fix when no Java is installed."""
    if java_version() is None:
        raise JavaMissingError(f"Spark needs a Java runtime and none was found: {JAVA_HINT}")
    import warnings

    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    from pyspark.sql import SparkSession

    if shuffle_partitions < 1:
        raise ValueError(f"shuffle_partitions must be >= 1, got {shuffle_partitions!r}")
    builder = SparkSession.builder.master(master) if master else SparkSession.builder
    builder = (builder.appName(app_name)
               .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
               .config("spark.default.parallelism", str(shuffle_partitions))
               .config("spark.task.cpus", "1")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.legacy.parquet.nanosAsLong", "true")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.sql.adaptive.enabled", "false")  # fixed plans: partition counts do not adapt
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false"))
    if driver_memory:
        builder = builder.config("spark.driver.memory", driver_memory)
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
