"""Stage 2 on Spark (local mode) against the in-memory job, on a ci-profile temporal split.

One SparkSession (``local[2]``, 2 shuffle partitions, UI off) and one full
Spark batch run, shared by every test; the in-memory references are fitted
on the same training data. Tolerances (measured on this data, stated here):

* exact aggregates (interaction weights, demand panel and forecasts,
  seasonal factors, user features): relative 1e-9;
* the collaborative model (ALS, implicit) ranks the held-out cart/purchase
  items within 0.03 NDCG@10 and recall@10 of PureSVD (measured: NDCG 0.309
  vs 0.313, recall 0.539 vs 0.464);
* segments: adjusted Rand index with the in-memory K-Means >= 0.5 (measured:
  0.66; MLlib has no restarts: inertia 12332 vs 11962, silhouette 0.132 vs 0.157);
* item neighbours: every item's top-10 equal to ItemKNN's but for ties.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark", reason="pyspark is not installed (pip install -e '.[spark]')")

from recsys.spark.session import JAVA_HINT, java_version  # noqa: E402

if java_version() is None:
    pytest.skip(f"no Java runtime for Spark: {JAVA_HINT}", allow_module_level=True)

from sklearn.metrics import adjusted_rand_score  # noqa: E402

from recsys.data import load_or_generate  # noqa: E402
from recsys.evaluation import ndcg_at_k, recall_at_k, temporal_split  # noqa: E402
from recsys.interactions import Interactions  # noqa: E402
from recsys.models.knn import ItemKNN, KNNConfig  # noqa: E402
from recsys.models.svd import PureSVD  # noqa: E402
from recsys.serving.engine import EngineConfig, RecommendationEngine, Stage2State  # noqa: E402
from recsys.spark import job as spark_job  # noqa: E402
from recsys.spark.demand import spark_demand_panel  # noqa: E402
from recsys.spark.interactions import weighted_interactions  # noqa: E402
from recsys.spark.io import read_input  # noqa: E402
from recsys.spark.segments import user_features  # noqa: E402
from recsys.spark.session import spark_session  # noqa: E402
from recsys.stage2.artifacts import load_latest  # noqa: E402
from recsys.stage2.demand import DemandModel, demand_panel  # noqa: E402
from recsys.stage2.job import BatchConfig, run_batch  # noqa: E402
from recsys.stage2.seasonality import SeasonalFactors  # noqa: E402
from recsys.stage2.segmentation import SegmentationConfig, UserSegmentation, user_feature_frame  # noqa: E402

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

RTOL = 1e-9
RANK_TOLERANCE = 0.03
MIN_ARI = 0.5


@pytest.fixture(scope="module")
def spark():
    session = spark_session("local[2]", app_name="recsys-tests", shuffle_partitions=2, driver_memory="1g")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    dataset = load_or_generate(profile="ci", seed=42, data_dir=tmp_path_factory.mktemp("data"))
    return temporal_split(dataset, test_days=14)


@pytest.fixture(scope="module")
def train_dir(split, tmp_path_factory):
    return str(split.train.save(tmp_path_factory.mktemp("train")))


@pytest.fixture(scope="module")
def spark_artifacts(spark, train_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("spark-artifacts")
    return spark_job.run_spark_batch(spark, train_dir, out)


@pytest.fixture(scope="module")
def spark_input(spark, train_dir):
    return read_input(spark, train_dir)


def test_interaction_weights_equal(split, spark_input):
    train = split.train
    reference = Interactions.from_dataset(train).matrix.tocoo()
    pairs = weighted_interactions(spark_input, train.config.interactions).pairs.toPandas()
    pairs = pairs.sort_values(["user_idx", "product_idx"]).reset_index(drop=True)
    order = np.lexsort((reference.col, reference.row))
    assert len(pairs) == reference.nnz
    np.testing.assert_array_equal(pairs["user_idx"], reference.row[order])
    np.testing.assert_array_equal(pairs["product_idx"], reference.col[order])
    np.testing.assert_allclose(pairs["weight"], reference.data[order], rtol=RTOL, atol=0)
    purchased = Interactions.from_dataset(train).purchased
    assert int(pairs["purchased"].sum()) == purchased.nnz


def test_seasonal_factors_equal(split, spark_artifacts):
    reference = SeasonalFactors().fit(split.train).factors_
    got = spark_artifacts.seasonal_factors
    pd.testing.assert_frame_equal(got[["region", "category", "season", "prior_boosted"]],
                                  reference[["region", "category", "season", "prior_boosted"]], check_dtype=False)
    np.testing.assert_array_equal(got["events"], reference["events"])
    np.testing.assert_allclose(got[["share", "factor"]], reference[["share", "factor"]], rtol=RTOL)


def test_demand_panel_and_forecast_equal(split, spark_input, spark_artifacts):
    train = split.train
    reference = demand_panel(train)
    panel = spark_demand_panel(spark_input, pd.Index(train.products["product_id"]), 7)
    np.testing.assert_array_equal(panel.demand, reference.demand)
    for name, counts in reference.leading.items():
        np.testing.assert_array_equal(panel.leading[name], counts)
    assert panel.n_events_before_first_period == reference.n_events_before_first_period
    assert list(panel.period_end) == list(reference.period_end)
    model = DemandModel().fit(train)
    pd.testing.assert_frame_equal(spark_artifacts.demand, model.forecast_, check_dtype=False, rtol=RTOL)
    pd.testing.assert_frame_equal(spark_artifacts.demand_errors, model.errors_, check_dtype=False, rtol=RTOL)


def test_user_features_equal_and_segments_agree(split, spark_input, spark_artifacts):
    train = split.train
    reference, groups = user_feature_frame(train)
    frame, spark_groups, names = user_features(spark_input.users, spark_input.events, spark_input.products,
                                               train.config)
    got = frame.orderBy("user_idx").toPandas()
    assert names == list(reference.columns) and spark_groups == groups
    np.testing.assert_array_equal(got["user_id"], reference.index)
    np.testing.assert_allclose(got[names].to_numpy(float), reference.to_numpy(float), rtol=RTOL, atol=1e-12)

    memory = UserSegmentation(SegmentationConfig(method="kmeans_features")).fit(train)  # the method Spark runs
    segments = spark_artifacts.segments
    np.testing.assert_array_equal(segments["user_id"], memory.labels_.index)
    ari = adjusted_rand_score(memory.labels_.to_numpy(), segments["segment"].to_numpy())
    assert ari >= MIN_ARI, f"adjusted Rand index {ari:.3f} of Spark vs in-memory segments is below {MIN_ARI}"
    summary, reference_summary = spark_artifacts.segment_summary, memory.summary()
    assert summary["clustering_info"]["feature_columns"] == reference_summary["clustering_info"]["feature_columns"]
    assert set(summary["user_segments"]) == set(reference_summary["user_segments"])
    assert sum(s["size"] for s in summary["user_segments"].values()) == train.n_users
    sizes = [summary["user_segments"][f"segment_{i}"]["size"] for i in range(8)]
    assert sizes == sorted(sizes, reverse=True)


def test_item_neighbours_match_item_knn(split, spark_artifacts):
    k = 10
    knn = ItemKNN(KNNConfig.plain(k=50)).fit(split.train)  # the textbook cosine on the shared matrix, as Spark computes
    got = pd.read_parquet(spark_artifacts.path / "item_neighbours.parquet")
    assert list(got.columns) == ["product_id", "neighbour_id", "similarity", "rank"]
    checked = 0
    for product_id, part in got.groupby("product_id", sort=False):
        reference = knn.neighbours(product_id)
        ref_sim = reference.set_index("neighbour_id")["similarity"]
        mine = part.set_index("neighbour_id")["similarity"]
        common = mine.index.intersection(ref_sim.index)
        np.testing.assert_allclose(mine[common], ref_sim[common], rtol=1e-6)  # ItemKNN stores float32
        top_mine, top_ref = part.head(k), reference.head(k)
        if len(top_ref) == k and len(top_mine) == k:
            above = float(top_ref["similarity"].iloc[-1]) + 1e-6  # neighbours clear of a tie at the cut
            assert set(top_mine.loc[top_mine["similarity"] > above, "neighbour_id"]) == \
                set(top_ref.loc[top_ref["similarity"] > above, "neighbour_id"]), product_id
        checked += 1
    assert checked >= 0.9 * split.train.n_products


def test_collaborative_ranks_within_tolerance(split, spark_artifacts):
    users = split.warm_users
    train = split.train
    interactions = Interactions.from_dataset(train)
    memory = PureSVD().fit(train, interactions).recommend(users, n=10)
    stage2 = Stage2State.from_artifacts(spark_artifacts, train, interactions, train.content_hash())
    spark_recs = stage2.svd.recommend(users, n=10)
    for metric in (ndcg_at_k, recall_at_k):
        ours, theirs = metric(spark_recs, split.relevant, 10), metric(memory, split.relevant, 10)
        assert ours >= theirs - RANK_TOLERANCE, f"{metric.__name__}: Spark ALS {ours:.3f} vs PureSVD {theirs:.3f}"


def test_artifacts_have_the_in_memory_layout(split, spark_artifacts, tmp_path):
    memory = run_batch(split.train, tmp_path / "memory", BatchConfig())
    spark_files = set(spark_artifacts.manifest["files"])
    assert set(memory.manifest["files"]) <= spark_files
    assert spark_files - set(memory.manifest["files"]) == {"item_neighbours.parquet"}
    assert spark_artifacts.data_hash == memory.data_hash
    for name in ("user_factors", "item_factors"):
        mine, theirs = getattr(spark_artifacts, name), getattr(memory, name)
        assert list(mine.index) == list(theirs.index) and list(mine.columns) == list(theirs.columns)
    assert list(spark_artifacts.segments.columns) == list(memory.segments.columns)
    assert len(spark_artifacts.singular_values) == 50
    assert np.all(np.diff(spark_artifacts.singular_values) <= 1e-9)


def _install_version(artifacts, out_dir):
    """Copy a published version into ``out_dir`` as its newest one and point LATEST at it
    (what syncing artifacts computed elsewhere, e.g. on a cluster, to a service host does)."""
    names = sorted(p.name for p in out_dir.iterdir() if p.name.startswith("v")) if out_dir.exists() else []
    name = f"v{int(names[-1][1:]) + 1:06d}" if names else "v000001"
    shutil.copytree(artifacts.path, out_dir / name)
    (out_dir / "LATEST").write_text(name + "\n")
    return name


def test_engine_serves_spark_artifacts(split, spark_artifacts, tmp_path):
    engine = RecommendationEngine(engine_config=EngineConfig(), artifacts_dir=tmp_path)
    engine.train(split.train)
    first = load_latest(tmp_path).version
    name = _install_version(spark_artifacts, tmp_path)
    info = engine.reload_batch()
    assert info["version"] == name != first
    assert info["metrics"]["collaborative_model"] == "spark.ml ALS (implicit)"
    user = split.warm_users[0]
    answer = engine.full(user, 10)
    assert json.dumps(answer)
    assert engine.segments()
    assert engine.recommend([user], n=5, strategy="svd")["product_id"].nunique() == 5


def test_a_second_run_publishes_the_same_artifacts(spark, spark_artifacts, train_dir, tmp_path):
    """Reproducible: the same data, configuration and seeds give byte-identical
    artifact files (the manifest's sha256 of each file), ALS included."""
    again = spark_job.run_spark_batch(spark, train_dir, tmp_path)
    first, second = spark_artifacts.manifest["files"], again.manifest["files"]
    assert sorted(first) == sorted(second)
    differing = sorted(name for name in first if first[name] != second[name])
    assert differing == []


def test_interrupted_job_leaves_previous_artifacts(spark, spark_artifacts, train_dir, tmp_path, monkeypatch):
    previous = _install_version(spark_artifacts, tmp_path)
    latest_before = (tmp_path / "LATEST").read_text()
    reached = []

    def fail(ctx):
        reached.append(sorted(p.name for p in tmp_path.glob(".tmp-*/*")))
        raise RuntimeError("injected failure in the middle of the Spark job")

    monkeypatch.setitem(spark_job.SPARK_STEPS, "neighbours", fail)
    config = spark_job.SparkBatchConfig(als=spark_job.ALSConfig(rank=4, max_iter=2))
    with pytest.raises(RuntimeError, match="injected failure"):
        spark_job.run_spark_batch(spark, train_dir, tmp_path, config)
    assert "svd_user_factors.parquet" in reached[0]  # the job was interrupted after writing artifacts
    assert (tmp_path / "LATEST").read_text() == latest_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LATEST", previous]
    assert load_latest(tmp_path).version == previous


def test_reads_the_partitioned_stream_layout(spark, tmp_path):
    from recsys.data.synthetic_stream import write_stream

    summary = write_stream(tmp_path / "world", n_users=600, n_products=60, days=40, seed=3)
    data = read_input(spark, str(summary.path))
    assert (data.n_users, data.n_products, data.n_events) == (600, 60, summary.n_events)
    assert data.content_hash == summary.content_hash
    got = data.events.select("ts_ns").toPandas()["ts_ns"].sort_values().to_numpy()
    events = pd.read_parquet(summary.path / "events")
    np.testing.assert_array_equal(got, np.sort(events["timestamp"].to_numpy().astype("int64")))
    assert data.users.orderBy("user_idx").toPandas()["user_id"].tolist() == [f"user_{i}" for i in range(600)]
