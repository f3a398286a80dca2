"""The engine's service facade: what the service may call instead of reaching into the engine."""

from __future__ import annotations

import dataclasses

import pytest

from recsys.deals.rate_limit import RateLimiter, RateLimitExceeded
from recsys.serving.engine import PreparedBatch, RecommendationEngine
from recsys.serving.model_dir import (
    current_version,
    load_current,
    load_model,
    save_engine,
    train_model_dir,
    version_number,
)


@pytest.fixture(scope="module")
def engine(small_dataset, tmp_path_factory) -> RecommendationEngine:
    eng = RecommendationEngine(artifacts_dir=tmp_path_factory.mktemp("facade-artifacts"))
    eng.train(small_dataset)
    return eng


def test_what_the_engine_knows(engine, small_dataset):
    assert engine.is_trained and not RecommendationEngine().is_trained
    assert engine.data_hash == small_dataset.content_hash()
    assert engine.batch_version == engine.latest_batch_version()
    user = small_dataset.users["user_id"].iloc[0]
    product = small_dataset.products["product_id"].iloc[0]
    assert engine.knows_user(user) and not engine.knows_user("nobody_here")
    assert engine.knows_product(product) and not engine.knows_product("product_nope")
    with pytest.raises(RuntimeError, match="not trained"):
        RecommendationEngine().knows_user(user)


def test_a_prepared_batch_is_served_only_once_installed(engine):
    before = engine.batch_version
    answer = engine.realtime("user_0", 5)
    prepared = engine.prepare_batch()
    assert isinstance(prepared, PreparedBatch) and prepared.version != before
    assert engine.batch_version == before  # published on disk, not served yet
    assert engine.latest_batch_version() == prepared.version
    info = engine.install_batch(prepared)
    assert engine.batch_version == info["version"] == prepared.version and set(info) == {"version", "as_of",
                                                                                        "run_seconds"}
    assert engine.realtime("user_0", 5) == answer  # Stage 1 does not depend on Stage 2


def test_a_batch_prepared_by_another_engine_is_refused(engine, small_dataset):
    other = RecommendationEngine()
    other.train(small_dataset)
    prepared = other.prepare_batch()  # without an artifacts directory: a temporary one, kept for reloads
    assert other.latest_batch_version() == prepared.version and other.reload_batch()["version"] == prepared.version
    with pytest.raises(ValueError, match="prepared by another engine"):
        engine.install_batch(prepared)
    with pytest.raises(TypeError, match="PreparedBatch"):
        engine.install_batch(dataclasses.asdict(prepared))  # type: ignore[arg-type]


def test_a_retrained_copy_answers_as_the_original_and_leaves_it_alone(engine):
    served = engine.batch_version
    copy = engine.retrained_copy()
    assert copy is not engine and engine.batch_version == served
    assert copy.data_hash == engine.data_hash and copy.batch_version != served
    for user in ("user_0", "user_1", "nobody_here"):
        assert copy.realtime(user, 5) == engine.realtime(user, 5)
        assert copy.full(user, 5, include_deals=False) == engine.full(user, 5, include_deals=False)


def test_deal_calls_count_with_the_limiter_they_are_given(engine):
    mine = RateLimiter(1, 60.0)
    default_left = engine.rate_limiter.remaining("user_1")
    engine.deals("user_1", rate_limiter=mine)
    with pytest.raises(RateLimitExceeded):
        engine.deals("user_1", rate_limiter=mine)
    (answer,) = engine.full_many(["user_1"], 3, True, rate_limiter=mine)
    assert answer["deals"] == [] and answer["deals_retry_after_seconds"] > 0
    assert isinstance(engine.deals_many(["user_1"], 2, rate_limiter=mine)[0], RateLimitExceeded)
    assert engine.rate_limiter.remaining("user_1") == default_left  # the engine's own limiter untouched
    with pytest.raises(TypeError, match="RateLimiter"):
        engine.deals("user_1", rate_limiter="redis://x")  # type: ignore[arg-type]


def test_a_model_directory_round_trip(small_dataset, tmp_path):
    model = tmp_path / "model"
    trained = train_model_dir(small_dataset, model)
    assert current_version(model) == "s000001" and version_number("s000001") == 1
    assert version_number(None) == version_number("latest") == -1
    newer = trained.prepare_batch()  # published after the save: a load serves the newest version
    loaded = load_model(model)
    assert loaded.batch_version == newer.version and loaded.data_hash == trained.data_hash
    assert save_engine(loaded, model) == "s000002"
    again, version = load_current(model)
    assert version == "s000002" and again.realtime("user_0", 5)["recommendations"] == \
        loaded.realtime("user_0", 5)["recommendations"]
