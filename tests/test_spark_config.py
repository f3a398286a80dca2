"""Settings of the Spark job and the Java check (no Spark needed)."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.spark.collaborative import ALSConfig, score_singular_values
from recsys.spark.job import SparkBatchConfig
from recsys.spark.neighbours import NeighbourConfig
from recsys.spark.session import JavaMissingError, java_version, spark_session


@pytest.mark.parametrize("kwargs, name", [({"rank": 0}, "rank"), ({"max_iter": 1.5}, "max_iter"),
                                          ({"reg_param": -1.0}, "reg_param"), ({"alpha": 0.0}, "alpha")])
def test_als_config_names_the_bad_field(kwargs, name):
    with pytest.raises(ValueError, match=f"ALSConfig.{name}"):
        ALSConfig(**kwargs)


def test_neighbour_and_job_configs_reject_bad_values():
    with pytest.raises(ValueError, match="NeighbourConfig.k"):
        NeighbourConfig(k=0)
    with pytest.raises(ValueError, match="max_items_per_user"):
        NeighbourConfig(max_items_per_user=1)
    with pytest.raises(ValueError, match="block_rows"):
        SparkBatchConfig(block_rows=0)


def test_score_singular_values_are_those_of_the_score_matrix():
    rng = np.random.default_rng(0)
    users, items = rng.normal(size=(40, 5)), rng.normal(size=(30, 5))
    expected = np.linalg.svd(users @ items.T, compute_uv=False)[:5]
    got = score_singular_values(users.T @ users, items.T @ items)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_missing_java_is_named_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    assert java_version() is None
    with pytest.raises(JavaMissingError, match="openjdk-17-jre-headless"):
        spark_session("local[1]")
