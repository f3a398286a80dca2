"""The engine facade: the seed's operations as JSON-ready dicts, persistence, safety rules."""

from __future__ import annotations

import gc
import json

import numpy as np
import pandas as pd
import pytest

from recsys.config import ConfigError, DealConfig
from recsys.deals.generator import SEED_DEAL_KEYS
from recsys.deals.rate_limit import RateLimiter, RateLimitExceeded
from recsys.deals.serving import ContentSimilarity
from recsys.models.hybrid import STRATEGIES, HybridRecommender
from recsys.serving.engine import ENGINE_FORMAT_VERSION, EngineConfig, EngineFormatError, RecommendationEngine

SEED_REC_KEYS = {"product_id", "name", "category", "price", "score", "reason"}
FULL_KEYS = {"user_id", "recommendations", "deals", "user_profile", "strategy", "timestamp"}
PROFILE_KEYS = {"region", "age_group", "spending_tier", "price_sensitivity"}
REALTIME_KEYS = {"recommendations", "method", "stage", "latency_target", "timestamp"}


def as_json(obj: dict) -> dict:
    """Round trip through strict JSON (no NaN, only plain types)."""
    return json.loads(json.dumps(obj, allow_nan=False))


def iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- train / info
def test_model_info(engine, small_dataset):
    info = as_json(engine.model_info())
    assert info["trained"] is True and info["format_version"] == ENGINE_FORMAT_VERSION
    assert info["data_hash"] == small_dataset.content_hash()
    assert info["trained_at"] == iso(small_dataset.as_of)
    assert info["sizes"]["users"] == small_dataset.n_users and info["sizes"]["products"] == small_dataset.n_products
    assert info["models"]["hybrid"]["weights"] == {"knn": 0.4, "svd": 0.3, "content": 0.2, "demographic": 0.1}
    assert RecommendationEngine().model_info() == {"trained": False, "format_version": ENGINE_FORMAT_VERSION}


def test_models_are_shared_not_refitted(engine):
    s = engine.strategies()
    assert s["hybrid"].components_["knn"] is s["realtime"].knn_ is s["knn"]
    assert s["hybrid"].components_["demographic"] is s["realtime"].fallback_
    assert s["hybrid"].components_["svd"] is engine.stage2_.svd
    assert s["hybrid"].components_["content"] is s["content"]


def test_similar_to_viewed_uses_content_cosine(engine, small_dataset):
    ids = small_dataset.products.product_id.iloc[[0, 3, 7]].tolist()
    block = ContentSimilarity(engine.content_)[np.array([0, 3, 7])]
    assert block.shape == (3, small_dataset.n_products)
    square = engine.content_.product_similarity(ids)
    np.testing.assert_allclose(block[:, [0, 3, 7]], square.to_numpy(), atol=1e-12)


# --------------------------------------------------------------------------- full
def check_full(out: dict, dataset, n: int, bought: set) -> None:
    assert FULL_KEYS <= set(out) and out["strategy"] == "hybrid_enhanced"
    assert out["timestamp"] == iso(dataset.as_of)
    assert PROFILE_KEYS <= set(out["user_profile"])
    recs = out["recommendations"]
    assert 0 < len(recs) <= n
    assert len({r["product_id"] for r in recs}) == len(recs)
    scores = [r["score"] for r in recs]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 + 1e-9 for s in scores)
    stock = dataset.products.set_index("product_id")["stock"]
    for r in recs:
        assert SEED_REC_KEYS <= set(r) and r["reason"]
        assert set(r["contributions"]) == set(STRATEGIES)
        assert sum(r["contributions"].values()) == pytest.approx(r["score"], abs=1e-5)
        assert stock[r["product_id"]] > 0 and (out["user_id"], r["product_id"]) not in bought


def test_full_for_many_users_without_deals(engine, small_dataset):
    bought = set(map(tuple, small_dataset.events.loc[small_dataset.events.event_type == "purchase",
                                                     ["user_id", "product_id"]].to_numpy()))
    users = small_dataset.users.user_id.iloc[::2].tolist()
    for user in users:
        out = as_json(engine.full(user, 10, include_deals=False))
        check_full(out, small_dataset, 10, bought)
        assert out["deals"] == [] and out["user_profile"]["known_user"] is True
        assert out["user_profile"]["region"] == small_dataset.users.set_index("user_id").region[user]


def test_full_with_deals(engine, small_dataset):
    cfg: DealConfig = small_dataset.config.deals
    products = small_dataset.products.set_index("product_id")
    bought = set(map(tuple, small_dataset.events.loc[small_dataset.events.event_type == "purchase",
                                                     ["user_id", "product_id"]].to_numpy()))
    for user in small_dataset.users.user_id.iloc[::10]:
        out = as_json(engine.full(user, 8))
        check_full(out, small_dataset, 8, bought)
        deals = out["deals"]
        assert cfg.min_deals <= len(deals) <= cfg.max_deals or out["deals_note"]
        assert len({d["product_id"] for d in deals}) == len(deals)
        for d in deals:
            assert set(SEED_DEAL_KEYS) <= set(d)
            assert 100 * cfg.min_discount - 1e-9 <= d["discount_percentage"] <= 100 * cfg.max_discount + 1e-9
            assert d["deal_price"] >= products.cost[d["product_id"]] * (1 + cfg.min_margin) - 1e-9
            assert d["deal_price"] < d["original_price"]
            assert d["deal_expiry"].endswith("Z")
            expiry = pd.Timestamp(d["deal_expiry"]).tz_localize(None) - small_dataset.as_of
            assert pd.Timedelta(days=cfg.expiry_min_days) <= expiry <= pd.Timedelta(days=cfg.expiry_max_days)
            assert (user, d["product_id"]) not in bought


def test_full_for_an_unknown_user(engine, small_dataset):
    out = as_json(engine.full("visitor_42", 5))
    check_full(out, small_dataset, 5, set())
    assert out["user_profile"]["known_user"] is False and out["deals"] == [] and "unknown user" in out["deals_note"]
    assert out["fusion_weights"] == {"knn": 0.0, "svd": 0.0, "content": 0.0, "demographic": 1.0}


def test_full_matches_the_hybrid_recommend(engine, small_dataset):
    users = small_dataset.users.user_id.iloc[:20].tolist()
    frame = engine.recommend(users, n=6)
    for user, group in frame.groupby("user_id", sort=False):
        out = engine.full(user, 6, include_deals=False)
        assert [r["product_id"] for r in out["recommendations"]] == group.product_id.tolist()
        np.testing.assert_allclose([r["score"] for r in out["recommendations"]], group.score, atol=1e-6)


@pytest.fixture()
def unlimited(engine):
    """The module's engine without a deal rate limit, for one test."""
    previous = engine.rate_limiter
    engine.use_rate_limiter(RateLimiter(10**9, 60.0))
    yield engine
    engine.use_rate_limiter(previous)


def test_full_many_answers_each_user_as_full_does(unlimited, small_dataset):
    """The batched path (the service's) gives every user exactly ``full``'s answer:
    known users, a visitor, a repeated user, with and without deals."""
    users = small_dataset.users.user_id.iloc[:12].tolist() + ["visitor_9", small_dataset.users.user_id.iloc[0]]
    for include_deals in (True, False):
        assert unlimited.full_many(users, 6, include_deals) == [unlimited.full(u, 6, include_deals) for u in users]
    assert unlimited.deals_many(users, 3) == [unlimited.deals(u, 3) for u in users]


def test_full_many_counts_each_user_against_the_rate_limit(engine, small_dataset):
    user, other = small_dataset.users.user_id.iloc[:2].tolist()
    previous = engine.rate_limiter
    engine.use_rate_limiter(RateLimiter(1, 60.0))
    try:
        first, again, second = engine.full_many([user, user, other], 4)
        assert first["deals"] and second["deals"] and "deals_retry_after_seconds" not in first
        assert again["deals"] == [] and again["deals_retry_after_seconds"] > 0
        assert [len(a["recommendations"]) for a in (first, again, second)] == [4, 4, 4]
        refused = engine.deals_many([user, other], 2)
        assert all(isinstance(r, RateLimitExceeded) for r in refused)
    finally:
        engine.use_rate_limiter(previous)


def test_refused_deal_requests_leave_no_reference_cycles(engine, small_dataset):
    """A refusal kept or raised must not tie itself to the frames that built the
    request (a cycle holding every request's arrays until a full collection: a
    worker's memory grew by 200 MB in a load test before this was fixed)."""
    users = small_dataset.users.user_id.iloc[:6].tolist()
    previous = engine.rate_limiter
    engine.use_rate_limiter(RateLimiter(1, 60.0))
    try:
        engine.full_many(users, 5)  # each user's one allowed request
        gc.collect()
        gc.disable()
        try:
            for _ in range(3):
                engine.full_many(users, 5)
                engine.deals_many(users, 2)
                engine.full(users[0], 5)
                with pytest.raises(RateLimitExceeded):
                    engine.deals(users[0], 2)
            assert gc.collect() == 0
        finally:
            gc.enable()
    finally:
        engine.use_rate_limiter(previous)


# --------------------------------------------------------------------------- realtime
def test_realtime_for_many_users(engine, small_dataset):
    history = small_dataset.events.groupby("user_id").size()
    for user in small_dataset.users.user_id.tolist() + ["visitor_1"]:
        out = as_json(engine.realtime(user, 5))
        assert REALTIME_KEYS <= set(out) and out["user_id"] == user
        assert out["stage"] == "Stage 1: Real-time Scoring" and out["latency_target"] == "< 100ms"
        assert out["timestamp"] == iso(small_dataset.as_of)
        assert len(out["recommendations"]) == 5
        for r in out["recommendations"]:
            assert SEED_REC_KEYS <= set(r) and np.isfinite(r["score"])
        expected = "realtime_knn" if history.get(user, 0) > 0 else "demographic_fallback"
        assert out["method"] == expected


def test_realtime_answers_the_stage1_frame(engine, small_dataset):
    """The array path of ``realtime`` gives the products, scores and reasons of
    ``RealtimeRecommender.recommend`` (the frame path), in the catalogue's fields."""
    users = small_dataset.users.user_id.iloc[:15].tolist() + ["visitor_2"]
    frame = engine.realtime_.recommend(users, n=7)
    products = small_dataset.products.set_index("product_id")
    for user, group in frame.groupby("user_id", sort=False):
        out = engine.realtime(user, 7)
        assert [r["product_id"] for r in out["recommendations"]] == group.product_id.tolist()
        assert [r["reason"] for r in out["recommendations"]] == group.reason.tolist()
        np.testing.assert_allclose([r["score"] for r in out["recommendations"]], group.score, atol=1e-6)
        for r in out["recommendations"]:
            assert (r["name"], r["category"], r["price"]) == tuple(products.loc[r["product_id"], ["name", "category", "price"]])
        fallback = set(group.method) == {"demographic"}
        assert out["method"] == ("demographic_fallback" if fallback else "realtime_knn")


def test_new_events_reach_realtime_at_once(engine, small_dataset):
    user = "visitor_events"
    assert engine.realtime(user)["method"] == "demographic_fallback"
    viewed = small_dataset.products.product_id.iloc[:3].tolist()
    events = pd.DataFrame({"user_id": user, "product_id": viewed, "event_type": "view",
                           "timestamp": small_dataset.as_of})
    update = engine.add_events(events)
    assert update["new_users"] == [user] and update["events"] == 3
    assert engine.realtime(user)["method"] == "realtime_knn"


# --------------------------------------------------------------------------- deals, safety
def test_deals_rate_limit_and_retry(engine, small_dataset, clock):
    user = small_dataset.users.user_id.iloc[3]
    limit = small_dataset.config.deals.rate_limit_requests
    engine.rate_limiter.reset()
    first = as_json(engine.deals(user, num_deals=3))
    assert first["num_deals"] == len(first["deals"]) <= 3 and first["user_id"] == user
    for _ in range(limit - 1):
        assert engine.deals(user, num_deals=3) == first  # deterministic for a given as_of
    with pytest.raises(RateLimitExceeded, match="retry in") as err:
        engine.deals(user, num_deals=3)
    assert 0 < err.value.retry_after <= small_dataset.config.deals.rate_limit_window_seconds
    limited = as_json(engine.full(user))  # past the limit: recommendations still, no deals, when to retry
    assert limited["recommendations"] == as_json(engine.full(user, include_deals=False))["recommendations"]
    assert limited["deals"] == [] and 0 < limited["deals_retry_after_seconds"] <= 60.0
    assert "retry in" in limited["deals_note"]
    clock.now += small_dataset.config.deals.rate_limit_window_seconds
    assert engine.deals(user, num_deals=3) == first


def test_users_see_only_their_own_data(engine, small_dataset):
    a, b = small_dataset.users.user_id.iloc[:2]
    assert engine.full(a, 3, include_deals=False, requesting_user=a)["user_id"] == a
    for call in (lambda: engine.full(a, requesting_user=b), lambda: engine.realtime(a, requesting_user=b),
                 lambda: engine.deals(a, requesting_user=b)):
        with pytest.raises(PermissionError, match="only see their own"):
            call()


def test_bad_input(engine, small_dataset):
    user = small_dataset.users.user_id.iloc[0]
    with pytest.raises(ValueError, match="num_recommendations must be a positive int"):
        engine.full(user, 0)
    with pytest.raises(ValueError, match="num_recommendations"):
        engine.realtime(user, 2.5)
    with pytest.raises(ValueError, match="user_id must be a string"):
        engine.full(17)
    with pytest.raises(ValueError, match="malformed user id"):
        engine.realtime("user 0")
    with pytest.raises(ValueError, match="num_deals"):
        engine.deals(user, num_deals=99)
    with pytest.raises(ValueError, match="unknown strategy"):
        engine.recommend([user], strategy="magic")
    with pytest.raises(RuntimeError, match="not trained"):
        RecommendationEngine().full(user)
    with pytest.raises(TypeError, match="Dataset"):
        RecommendationEngine().train(small_dataset.users)
    with pytest.raises(ValueError, match="similar_seed_items"):
        EngineConfig(similar_seed_items=0)


@pytest.mark.parametrize("weights", [{"knn": 0.5, "svd": 0.5, "content": 0.5, "demographic": 0.0},
                                     {"knn": -0.2, "svd": 0.6, "content": 0.5, "demographic": 0.1},
                                     {"knn": 0.5, "bpr": 0.5}])
def test_invalid_weights_are_refused(weights):
    with pytest.raises(ConfigError):
        RecommendationEngine(weights=weights)


# --------------------------------------------------------------------------- stage 2, many users, demo
def test_segments_have_the_seed_shape(engine):
    out = as_json(engine.segments())
    segs = out["user_segments"]
    assert len(segs) == 8 and out["clustering_info"]["n_clusters"] == 8
    info = out["clustering_info"]
    assert info["algorithm"] == ("Gaussian mixture (diagonal)" if info["method"] == "gmm_features" else "K-Means")
    assert info["features_used"] and info["method"] in info["selection"]["candidates"]  # the blind choice
    for seg in segs.values():
        assert {"size", "avg_age", "dominant_region", "dominant_age_group", "avg_price_sensitivity",
                "dominant_spending_tier"} <= set(seg)
    assert sum(s["size"] for s in segs.values()) == engine.dataset_.n_users


def test_batch_process_reinstalls_stage2(engine, small_dataset):
    users = small_dataset.users.user_id.iloc[:15].tolist()
    before = engine.recommend(users, n=5)
    old_svd = engine.stage2_.svd
    out = as_json(engine.batch_process())
    assert out["status"] == "completed" and out["stage"] == "Stage 2: Batch Processing"
    assert out["artifacts"]["data_hash"] == small_dataset.content_hash()
    assert engine.stage2_.svd is not old_svd and engine.hybrid_.components_["svd"] is engine.stage2_.svd
    pd.testing.assert_frame_equal(engine.recommend(users, n=5), before)  # same data, same answers


def test_artifacts_dir_versions_and_reload(small_dataset, engine, tmp_path):
    eng = RecommendationEngine(artifacts_dir=tmp_path / "batch")
    eng.train(small_dataset)
    assert (tmp_path / "batch" / "LATEST").read_text().strip() == "v000001"
    out = eng.batch_process()
    assert out["artifacts"]["version"] == "v000002" and out["n_segments"] == 8
    info = eng.reload_batch()
    assert info["version"] == "v000002" and info["data_hash"] == small_dataset.content_hash()
    users = small_dataset.users.user_id.iloc[:10].tolist()
    pd.testing.assert_frame_equal(eng.recommend(users, 5), engine.recommend(users, 5))  # same data, same answers
    np.testing.assert_allclose(eng.stage2_.svd.user_factors_, engine.stage2_.svd.user_factors_)
    with pytest.raises(ValueError, match="artifacts_dir"):
        engine.reload_batch()


def test_svd_rebuilt_from_artifacts_equals_a_fitted_one(engine, small_dataset):
    from recsys.models.svd import PureSVD

    fitted = PureSVD().fit(small_dataset)
    rows = np.array([0, 5, 17, -1])
    np.testing.assert_allclose(engine.stage2_.svd.score_users(rows), fitted.score_users(rows), atol=1e-9)
    assert engine.stage2_.svd.explained_energy_ == pytest.approx(fitted.explained_energy_)


def test_artifacts_of_other_data_are_refused(small_dataset, engine, tmp_path):
    from recsys.stage2.job import run_batch

    other = small_dataset.restrict_events(small_dataset.events.index % 5 != 0)
    artifacts = run_batch(other, tmp_path / "other")
    with pytest.raises(ValueError, match="computed on data"):
        engine._install_stage2(artifacts)


def test_recommend_any_strategy(engine, small_dataset):
    users = small_dataset.users.user_id.iloc[:30].tolist() + ["visitor_9"]
    for name in engine.strategies():
        frame = engine.recommend(users, n=4, strategy=name)
        assert {"user_id", "product_id", "score", "rank", "reason"} <= set(frame.columns), name
        assert frame.groupby("user_id").size().max() <= 4 and frame.user_id.nunique() == len(users), name
    assert isinstance(engine.strategies()["hybrid"], HybridRecommender)


def test_demo_flow(engine, small_dataset):
    engine.rate_limiter.reset()
    out = as_json(engine.demo_flow())
    user = "user_0" if "user_0" in set(small_dataset.users.user_id) else small_dataset.users.user_id.iloc[0]
    assert out["user_id"] == user and set(out["stages"]) == {"stage_1", "stage_2", "stage_3"}
    assert out["stages"]["stage_1"]["stage"] == "Stage 1: Real-time Scoring"
    assert out["stages"]["stage_3"]["strategy"] == "hybrid_enhanced"
    assert out["stages"]["stage_2"]["segment"].startswith("segment_")


# --------------------------------------------------------------------------- persistence
def test_save_load_answers_identically(engine, small_dataset, tmp_path):
    engine.rate_limiter.reset()
    engine.save(tmp_path / "engine")
    loaded = RecommendationEngine.load(tmp_path / "engine")
    users = small_dataset.users.user_id.iloc[::25].tolist() + ["visitor_x"]
    for user in users:
        assert loaded.full(user, 7) == engine.full(user, 7)
        assert loaded.realtime(user, 4) == engine.realtime(user, 4)
    assert loaded.segments() == engine.segments()
    info_a, info_b = loaded.model_info(), engine.model_info()
    assert info_a == info_b
    pd.testing.assert_frame_equal(loaded.recommend(users, 5, "hybrid"), engine.recommend(users, 5, "hybrid"))


def test_load_refuses_other_versions_and_corruption(engine, tmp_path):
    root = engine.save(tmp_path / "engine")
    current = root / (root / "CURRENT").read_text().strip()
    manifest = json.loads((current / "manifest.json").read_text())
    (current / "manifest.json").write_text(json.dumps({**manifest, "format_version": ENGINE_FORMAT_VERSION + 1}))
    with pytest.raises(EngineFormatError, match="format version"):
        RecommendationEngine.load(root)
    (current / "manifest.json").write_text(json.dumps(manifest))
    segments = current / "stage2" / manifest["stage2_version"] / "segments.parquet"
    segments.write_bytes(segments.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(EngineFormatError, match="sha256"):
        RecommendationEngine.load(root)
    with pytest.raises(FileNotFoundError, match="CURRENT"):
        RecommendationEngine.load(tmp_path / "nothing")
