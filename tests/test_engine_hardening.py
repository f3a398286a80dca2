"""Issue 14, engine side: safe persistence, safe sharing between threads,
bounded ``n``, plain JSON answers, the wall clock, and property tests."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fake_clock import Clock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import recsys.serving.engine_store as engine_store
from recsys.models.base import MAX_N
from recsys.models.realtime import RealtimeConfig, RealtimeRecommender
from recsys.serving.engine import ENGINE_FORMAT_VERSION, EngineFormatError, RecommendationEngine


@pytest.fixture(scope="module")
def saved(engine, tmp_path_factory) -> Path:
    return engine.save(tmp_path_factory.mktemp("saved") / "engine")


def strict_json(obj: dict) -> dict:
    return json.loads(json.dumps(obj, allow_nan=False))


class Payload:
    """Unpickling this writes a marker file: proof that loading ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def _current(root: Path) -> Path:
    return root / (root / "CURRENT").read_text().strip()


def _copy(saved: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(saved, tmp_path / "copy"))


# --------------------------------------------------------------------------- no code runs on load
def test_an_old_pickle_save_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "marker"
    payload = pickle.dumps(Payload(marker))
    (tmp_path / "engine.pkl").write_bytes(payload)
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"format_version": 2, "sha256": hashlib.sha256(payload).hexdigest()}))
    with pytest.raises(EngineFormatError, match="pickle"):
        RecommendationEngine.load(tmp_path)
    assert not marker.exists()


def test_a_pickled_array_with_a_matching_checksum_is_refused(saved, tmp_path):
    root = _copy(saved, tmp_path)
    current = _current(root)
    marker = tmp_path / "marker"
    buffer = io.BytesIO()
    np.save(buffer, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    (current / "live" / "changed.npy").write_bytes(buffer.getvalue())
    manifest = json.loads((current / "manifest.json").read_text())
    manifest["files"]["live/changed.npy"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    (current / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EngineFormatError, match="cannot be read"):
        RecommendationEngine.load(root)
    assert not marker.exists()


def test_a_manifest_listing_other_files_is_refused(saved, tmp_path):
    root = _copy(saved, tmp_path)
    current = _current(root)
    marker = tmp_path / "marker"
    payload = pickle.dumps(Payload(marker))
    (current / "engine.pkl").write_bytes(payload)
    manifest = json.loads((current / "manifest.json").read_text())
    manifest["files"]["engine.pkl"] = hashlib.sha256(payload).hexdigest()
    (current / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EngineFormatError, match="engine.pkl"):
        RecommendationEngine.load(root)
    assert not marker.exists()


@pytest.mark.parametrize("garbage", [b"{not json", b"[1, 2]", b"\xff\xfe\x00", b'{"format_version": 3}',
                                     b'{"format_version": 3, "files": {"../x": "0"}}', b"null"])
def test_a_garbage_manifest_is_an_engine_format_error(saved, tmp_path, garbage):
    root = _copy(saved, tmp_path)
    (_current(root) / "manifest.json").write_bytes(garbage)
    with pytest.raises(EngineFormatError):
        RecommendationEngine.load(root)


def test_a_garbage_pointer_is_an_engine_format_error(saved, tmp_path):
    root = _copy(saved, tmp_path)
    for garbage in (b"../../etc", b"\xff\xfe"):
        (root / "CURRENT").write_bytes(garbage)
        with pytest.raises(EngineFormatError):
            RecommendationEngine.load(root)


def test_the_manifest_records_versions_and_every_file(saved):
    manifest = json.loads((_current(saved) / "manifest.json").read_text())
    assert manifest["format_version"] == ENGINE_FORMAT_VERSION
    assert {"recsys", "numpy", "scipy", "pandas", "pyarrow", "scikit-learn"} <= set(manifest["libraries"])
    on_disk = {p.relative_to(_current(saved)).as_posix() for p in _current(saved).rglob("*") if p.is_file()}
    assert on_disk - {"manifest.json"} == set(manifest["files"])
    assert not [name for name in on_disk if name.endswith((".pkl", ".pickle"))]


# --------------------------------------------------------------------------- atomic saves
def test_a_failed_save_leaves_the_previous_one_loadable(engine, tmp_path, monkeypatch, small_dataset):
    root = engine.save(tmp_path / "engine")
    before = _current(root).name

    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(engine_store, "save_artifacts", broken)
    with pytest.raises(OSError, match="No space"):
        engine.save(root)
    assert _current(root).name == before
    assert not list(root.glob(".tmp-*"))
    user = small_dataset.users.user_id.iloc[5]
    loaded = RecommendationEngine.load(root)
    assert loaded.full(user, 5, include_deals=False) == engine.full(user, 5, include_deals=False)


def test_a_load_that_retries_after_a_racing_save_reads_the_newer_save(engine, tmp_path, monkeypatch):
    """Deterministic form of the race below: the save being read is replaced (and pruned)
    after its config was read; the retry reads the config again and must not mix the two."""
    root = engine.save(tmp_path / "engine")
    real, calls = engine_store._read_version, []

    def replaced_while_read(path, recsys_config):
        calls.append(path.name)
        if len(calls) == 1:
            real(path, recsys_config)  # read through, config included
            engine.save(root)  # meanwhile a newer save is published
            raise FileNotFoundError(path)  # as if this one was pruned under the reader
        return real(path, recsys_config)

    monkeypatch.setattr(engine_store, "_read_version", replaced_while_read)
    loaded = RecommendationEngine.load(root)
    assert len(calls) == 2 and calls[0] != calls[1]
    assert loaded.data_hash_ == engine.data_hash_ and loaded.engine_config == engine.engine_config


def test_loads_during_saves_never_see_a_corrupt_save(engine, tmp_path):
    root = engine.save(tmp_path / "engine")
    errors: list[BaseException] = []
    stop = threading.Event()

    def saver() -> None:
        try:
            while not stop.is_set():
                engine.save(root)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    thread = threading.Thread(target=saver)
    thread.start()
    try:
        for _ in range(4):
            assert RecommendationEngine.load(root).data_hash_ == engine.data_hash_
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert len([p for p in root.iterdir() if p.is_dir() and p.name.startswith("s")]) <= engine_store.KEEP_SAVES


def test_save_keeps_live_events_and_new_users(small_dataset, tmp_path):
    eng = RecommendationEngine(clock=Clock())
    eng.train(small_dataset)
    products = small_dataset.products.product_id.tolist()
    events = pd.DataFrame({"user_id": ["newcomer_1"] * 3 + [small_dataset.users.user_id.iloc[0]],
                           "product_id": products[:4], "event_type": ["view", "cart", "purchase", "view"],
                           "timestamp": [small_dataset.as_of] * 4})
    eng.add_events(events, users=pd.DataFrame({"user_id": ["newcomer_1"], "region": ["EU"], "age": [30.0]}))
    loaded = RecommendationEngine.load(eng.save(tmp_path / "engine"))
    for user in ("newcomer_1", small_dataset.users.user_id.iloc[0], "never_seen"):
        assert loaded.realtime(user, 6) == eng.realtime(user, 6)
    assert loaded.realtime_.new_user_segment_ == eng.realtime_.new_user_segment_


# --------------------------------------------------------------------------- threads
def test_add_events_from_50_threads_loses_nothing(small_dataset):
    model = RealtimeRecommender(RealtimeConfig(compact_threshold=40)).fit(small_dataset)
    products = small_dataset.products.product_id.tolist()
    known = small_dataset.users.user_id.tolist()[:10]
    errors: list[BaseException] = []
    start = threading.Barrier(60)

    def writer(t: int) -> None:
        try:
            start.wait()
            for i in range(6):  # 30 products per shared user over the threads, 6 new users per thread
                user = known[t % 10]
                product = products[(t // 10) * 6 + i]
                model.add_events(pd.DataFrame({
                    "user_id": [user, f"new_{t}_{i}"], "product_id": [product, products[i]],
                    "event_type": ["view", "cart"], "timestamp": [small_dataset.as_of] * 2}))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    def reader() -> None:
        try:
            start.wait()
            for i in range(30):
                model.recommend_one(known[i % 10], 5)
                model.recommend(known[:3] + [f"new_0_{i % 6}"], 5)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(50)]
    threads += [threading.Thread(target=reader) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    history = model.history_.snapshot()
    for t in range(10):
        cols, _, _ = history.row_arrays(history.row_of(known[t]))
        wanted = {products[(w // 10) * 6 + i] for w in range(t, 50, 10) for i in range(6)}
        assert wanted <= set(model.history_.product_ids[cols])
    new_ids = [f"new_{t}_{i}" for t in range(50) for i in range(6)]
    rows = history.rows_of(new_ids)
    assert (rows >= 0).all() and len(set(rows.tolist())) == len(new_ids)
    assert history.ids_of(rows) == new_ids


def test_engine_requests_while_events_arrive(engine, small_dataset):
    errors: list[BaseException] = []
    users = small_dataset.users.user_id.tolist()[:20]
    products = small_dataset.products.product_id.tolist()

    def work(t: int) -> None:
        try:
            for i in range(5):
                engine.add_events(pd.DataFrame({"user_id": [f"thread_{t}"], "product_id": [products[i + t % 50]],
                                                "event_type": ["view"], "timestamp": [small_dataset.as_of]}))
                strict_json(engine.realtime(users[(t + i) % 20], 5))
                strict_json(engine.full(users[(t + i) % 20], 5, include_deals=False))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    assert all(engine.realtime_.history_.row_of(f"thread_{t}") >= 0 for t in range(50))


# --------------------------------------------------------------------------- huge n
def test_huge_n_is_bounded_by_the_catalogue(engine, small_dataset):
    user = small_dataset.users.user_id.iloc[1]
    engine.rate_limiter.reset()
    out = engine.full(user, 10**9, include_deals=False)
    assert 0 < len(out["recommendations"]) <= small_dataset.n_products
    assert len(engine.realtime(user, 10**9)["recommendations"]) <= small_dataset.n_products
    for strategy in engine.strategies():
        frame = engine.recommend([user, "visitor_z"], n=10**9, strategy=strategy)
        assert frame.groupby("user_id").size().max() <= small_dataset.n_products
        assert len(engine.strategies()[strategy].recommend([user], 10**9)) <= small_dataset.n_products


@pytest.mark.parametrize("n", [2**70, MAX_N + 1, 0, -3, 2.0, "5", True, None])
def test_bad_n_is_a_value_error_naming_it(engine, small_dataset, n):
    user = small_dataset.users.user_id.iloc[1]
    with pytest.raises(ValueError, match="num_recommendations"):
        engine.full(user, n)
    with pytest.raises(ValueError, match="num_recommendations"):
        engine.realtime(user, n)
    with pytest.raises(ValueError, match=r"\bn\b"):
        engine.recommend([user], n, strategy="hybrid")
    if n is not None:
        with pytest.raises(ValueError, match="num_deals"):
            engine.deals(user, n)


# --------------------------------------------------------------------------- JSON, clock
def test_every_answer_is_plain_json(engine, small_dataset):
    user = small_dataset.users.user_id.iloc[2]
    engine.rate_limiter.reset()
    answer = engine.deals(user, np.int64(3))
    assert type(answer["requested"]) is int and json.dumps(answer, allow_nan=False)
    for result in (engine.full(user, np.int64(4)), engine.realtime(user, np.int32(3)), engine.model_info(),
                   engine.segments(), engine.demo_flow(user)):
        json.dumps(result, allow_nan=False)


def test_now_sets_timestamp_and_deal_validity(small_dataset):
    wall = pd.Timestamp("2031-05-04 12:30:00", tz="UTC")
    eng = RecommendationEngine(clock=Clock(), now=lambda: wall)
    eng.train(small_dataset)
    user = small_dataset.users.user_id.iloc[4]
    full = eng.full(user, 5)
    assert full["timestamp"] == "2031-05-04T12:30:00Z" == eng.deals(user, 3)["timestamp"]
    assert eng.model_info()["trained_at"] == "2031-05-04T12:30:00Z"
    for deal in full["deals"]:
        assert wall.tz_localize(None) < pd.Timestamp(deal["deal_expiry"]).tz_localize(None) <= wall.tz_localize(None) + pd.Timedelta(days=7)
    plain = RecommendationEngine(clock=Clock())
    plain.train(small_dataset)
    assert plain.full(user, 5)["timestamp"] == small_dataset.as_of.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_load_takes_the_clock(saved):
    wall = pd.Timestamp("2030-01-01 00:00:00")
    loaded = RecommendationEngine.load(saved, now=lambda: wall)
    assert loaded.timestamp == "2030-01-01T00:00:00Z"


# --------------------------------------------------------------------------- properties
user_ids = st.one_of(
    st.sampled_from(["user_0", "user_1", "user_17", "user_299", "visitor_1"]),
    st.text(max_size=140),
    st.integers(), st.none(), st.floats(allow_nan=True),
)
sizes = st.one_of(st.integers(min_value=-5, max_value=400), st.integers(min_value=2**31 - 2, max_value=2**80),
                  st.floats(allow_nan=True), st.booleans(), st.none(), st.text(max_size=3))


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=user_ids, n=sizes, op=st.sampled_from(["full", "realtime", "deals", "recommend"]))
def test_engine_calls_answer_or_refuse_with_a_value_error(engine, user, n, op):
    engine.rate_limiter.reset()
    try:
        if op == "full":
            out = engine.full(user, n)
            assert len(out["recommendations"]) <= min(n, engine.dataset_.n_products)
        elif op == "realtime":
            out = engine.realtime(user, n)
            assert len(out["recommendations"]) <= n
        elif op == "deals":
            out = engine.deals(user, n)
            assert out["num_deals"] == len(out["deals"]) <= (engine.config.deals.max_deals if n is None else n)
        else:
            frame = engine.recommend([user], n, strategy="svd")
            assert list(frame.columns[:5]) == ["user_id", "product_id", "score", "rank", "reason"]
            return
    except ValueError as err:
        message = str(err)
        assert any(word in message for word in ("user", "num_recommendations", "num_deals", " n ", "n must")), message
        return
    json.dumps(out, allow_nan=False)
    assert out["user_id"] == user


def test_no_marker_files_left(tmp_path):
    assert not [p for p in os.listdir(tmp_path) if p == "marker"]
