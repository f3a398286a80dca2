"""Stage 2 on Apache Spark: the same artifacts as :mod:`recsys.stage2.job`, computed by Spark.

One module per job, in data-flow order:

=====================  ============================================================
``session``            the SparkSession (pinned for determinism) and the Java check
``io``                 the saved data set as Spark DataFrames (one file or partitioned parts)
``interactions``       weighted, time-decayed (user, product) weights; integer indices
``collaborative``      MLlib ALS with implicit preferences: user and item factors
``neighbours``         exact (or DIMSUM-sampled) item-item cosine, top-k per item (Stage 1)
``segments``           user features, MLlib K-Means, the segment summary
``demand``             per-product weekly demand panel by Spark; the regressor on the driver
``seasonality``        region x category x season event counts; the factors
``job``                ``run_spark_batch``: every step, published by :func:`recsys.stage2.artifacts.publish_version`
=====================  ============================================================

pyspark is an optional dependency (``pip install recsys[spark]``); import
the submodules only where it is installed.
"""
