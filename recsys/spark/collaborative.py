"""The collaborative model on Spark: MLlib ALS with implicit preferences.

Hu, Koren and Volinsky (ICDM 2008): with ``r_ui`` the weighted, decayed
interaction (:mod:`recsys.spark.interactions`), preference ``p_ui = [r_ui > 0]``
and confidence ``c_ui = 1 + alpha r_ui``, ALS minimises

``sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + lambda (sum_u n_u ||x_u||^2 + sum_i n_i ||y_i||^2)``

(MLlib scales ``lambda`` by each row's count, "ALS-WR"). Scores are
``x_u . y_i``, exactly how the engine serves PureSVD's ``(U_k S_k)_u . (V_k)_i``,
so the artifacts keep the PureSVD file names: ``svd_user_factors`` holds
``X`` (users without interactions: zeros, as PureSVD's ``r_u V_k = 0``),
``svd_item_factors`` holds ``Y`` (products without interactions: zeros), and
``svd_singular_values`` the singular values of the rank-``k`` score matrix
``X Y^T``: the square roots of the eigenvalues of ``(X^T X)(Y^T Y)``.
PureSVD needs the whole matrix in one process (ARPACK on scipy.sparse);
ALS solves ``k x k`` systems per user and per item in parallel blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ALSConfig", "ALSFactors", "fit_als", "score_singular_values"]


@dataclass(frozen=True)
class ALSConfig:
    """MLlib ALS settings (implicit preferences). ``num_blocks``: user and
    item blocks (``None``: the shuffle partitions); fixed with ``seed``, the
    factors are reproducible on the same cluster shape."""

    rank: int = 50
    max_iter: int = 10
    reg_param: float = 0.05
    alpha: float = 2.0
    seed: int = 42
    num_blocks: int | None = None

    def __post_init__(self) -> None:
        for name in ("rank", "max_iter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ALSConfig.{name} must be a positive int, got {value!r}")
        if not self.reg_param >= 0:
            raise ValueError(f"ALSConfig.reg_param must be >= 0, got {self.reg_param!r}")
        if not self.alpha > 0:
            raise ValueError(f"ALSConfig.alpha must be > 0, got {self.alpha!r}")


@dataclass
class ALSFactors:
    """Factors as Spark DataFrames ``idx, id, f0..f{k-1}`` (double), every
    user / product present (zeros where ALS has none); both cached."""

    users: Any
    items: Any
    rank: int


def _expand(spark_factors: Any, table: Any, idx: str, key: str, rank: int) -> Any:
    from pyspark.sql import functions as F

    cols = [F.coalesce(F.col("features")[i].cast("double"), F.lit(0.0)).alias(f"f{i}") for i in range(rank)]
    joined = table.select(idx, key).join(spark_factors.withColumnRenamed("id", idx), idx, "left")
    return joined.select(idx, key, *cols)


def fit_als(pairs: Any, users: Any, products: Any, config: ALSConfig, num_blocks: int) -> ALSFactors:
    """Fit ALS on ``pairs`` (``user_idx, product_idx, weight``) and return the
    factors of every row of ``users`` (``user_idx, user_id``) and ``products``."""
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F

    blocks = config.num_blocks or num_blocks
    ratings = pairs.select(F.col("user_idx").cast("int").alias("user"), F.col("product_idx").cast("int").alias("item"),
                           F.col("weight").cast("float").alias("rating"))
    als = ALS(rank=config.rank, maxIter=config.max_iter, regParam=config.reg_param, alpha=config.alpha,
              implicitPrefs=True, seed=config.seed, userCol="user", itemCol="item", ratingCol="rating",
              numUserBlocks=blocks, numItemBlocks=blocks, nonnegative=False, coldStartStrategy="nan",
              checkpointInterval=-1)
    model = als.fit(ratings)
    user_factors = _expand(model.userFactors, users, "user_idx", "user_id", config.rank).cache()
    item_factors = _expand(model.itemFactors, products, "product_idx", "product_id", config.rank).cache()
    return ALSFactors(user_factors, item_factors, config.rank)


def score_singular_values(user_gram: np.ndarray, item_gram: np.ndarray) -> np.ndarray:
    """Singular values of ``X Y^T`` from the Gram matrices ``X^T X`` and
    ``Y^T Y`` (descending): ``sigma^2 = eig((X^T X)(Y^T Y))``, computed as
    the eigenvalues of the symmetric ``L^T (X^T X) L`` with ``Y^T Y = L L^T``."""
    w, v = np.linalg.eigh(item_gram)
    root = v * np.sqrt(np.clip(w, 0.0, None))  # Y^T Y = root root^T
    eig = np.linalg.eigvalsh(root.T @ user_gram @ root)
    return np.sqrt(np.clip(eig, 0.0, None))[::-1].copy()
