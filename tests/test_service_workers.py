"""Two uvicorn workers behind one port, sharing the live history, the deal rate limit and the
trained model through a real redis-server.

CI installs and starts nothing here by hand: the test starts its own
``redis-server`` (``.ci/run`` and ``make redis`` install the Debian package
where it is missing) and skips, saying why, only if there is no binary.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from service_processes import serve_process

from recsys.cli import main as cli_main
from recsys.config import DEFAULT_CONFIG
from recsys.service import PREFIX

pytestmark = pytest.mark.processes  # uvicorn workers and a redis-server


@pytest.fixture(scope="module")
def two_workers(small_dataset, tmp_path_factory, redis_url):
    root = tmp_path_factory.mktemp("service-workers")
    small_dataset.save(root / "data")
    assert cli_main(["train", "--data", str(root / "data"), "--out", str(root / "model"), "--no-tune"]) == 0
    keys = root / "keys.json"
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()) as out:
        cli_main(["keys", "add", "--user", "ops", "--admin", "--file", str(keys)])
    token = out.getvalue().strip()
    with serve_process(root / "model", keys, workers=2, redis_url=redis_url, log_path=root / "serve.log") as (base, _):
        yield base, {"Authorization": f"Bearer {token}"}


def fresh(method: str, url: str, **kwargs) -> httpx.Response:
    """One request on a new connection (the kernel spreads connections over the workers)."""
    return httpx.request(method, url, timeout=30.0, **kwargs)


def answering_pids(base: str, n: int = 60) -> set[int]:
    return {fresh("GET", f"{base}/health").json()["pid"] for _ in range(n)}


def test_both_workers_answer_and_use_redis(two_workers):
    base, _ = two_workers
    assert len(answering_pids(base)) == 2
    assert fresh("GET", f"{base}/health").json()["shared_history"] == "redis"


def test_an_event_posted_to_one_worker_counts_in_every_worker(two_workers):
    base, admin = two_workers
    for _ in range(20):
        r = fresh("POST", f"{base}{PREFIX}/realtime", json={"user_id": "walk_in"}, headers=admin)
        assert r.json()["method"] == "demographic_fallback"
    event = {"user_id": "walk_in", "product_id": "product_2", "event_type": "purchase",
             "timestamp": "2024-12-30T00:00:00Z"}
    r = fresh("POST", f"{base}{PREFIX}/events", json={"events": [event]}, headers=admin)
    assert r.status_code == 200 and r.json()["shared"] is True
    pids, methods = set(), set()
    for _ in range(40):
        methods.add(fresh("POST", f"{base}{PREFIX}/realtime", json={"user_id": "walk_in"}, headers=admin).json()["method"])
        pids.add(fresh("GET", f"{base}/health").json()["pid"])
    assert methods == {"realtime_knn"} and len(pids) == 2
    applied = {}
    while len(applied) < 2:
        health = fresh("GET", f"{base}/health").json()
        applied[health["pid"]] = health["events_applied"]
    assert set(applied.values()) == {1}, applied


def test_batch_process_under_load_fails_no_request_and_reaches_both_workers(two_workers):
    base, admin = two_workers
    codes: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=base, headers=admin, timeout=30.0) as client:
            i = 0
            while not stop.is_set():
                body = {"user_id": f"user_{i % 100}", "num_recommendations": 10, "include_deals": False}
                codes.append(client.post(f"{PREFIX}/full", json=body).status_code)
                i += 1

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    r = fresh("POST", f"{base}{PREFIX}/batch-process", headers=admin)
    assert r.status_code == 202
    deadline = time.monotonic() + 120
    while (job := fresh("GET", f"{base}{PREFIX}/jobs/batch-process", headers=admin).json())["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    assert job["status"] == "completed", job
    assert len(codes) > 20 and set(codes) == {200}
    versions = {}
    while len(versions) < 2:  # the job is reported by, and reloaded in, both workers
        info = fresh("GET", f"{base}{PREFIX}/model-info", headers=admin).json()
        pid = fresh("GET", f"{base}/health").json()["pid"]
        versions.setdefault(pid, info["served_batch_version"])
        assert info["batch_job"]["job_id"] == job["job_id"]
    assert set(versions.values()) == {job["result"]["version"]}


def test_prometheus_sums_both_workers(two_workers):
    base, admin = two_workers
    for _ in range(10):
        fresh("POST", f"{base}{PREFIX}/realtime", json={"user_id": "user_3"}, headers=admin)
    text = fresh("GET", f"{base}/metrics").text
    line = next(x for x in text.splitlines()
                if x.startswith('recsys_http_requests_total{method="POST",path="/recommendations/enhanced/realtime"'))
    assert float(line.rsplit(" ", 1)[1]) >= 10


def test_a_users_deal_limit_holds_over_both_workers_together(two_workers):
    """Requests on fresh connections land on both workers; the limit counts them all (before: N x the limit)."""
    base, admin = two_workers
    codes, pids = [], set()
    for _ in range(25):
        codes.append(fresh("GET", f"{base}{PREFIX}/deals/user_7?num_deals=2", headers=admin))
        pids.add(fresh("GET", f"{base}/health").json()["pid"])
    assert len(pids) == 2
    statuses = [r.status_code for r in codes]
    limit = statuses.index(429)
    assert limit == DEFAULT_CONFIG.deals.rate_limit_requests and statuses == [200] * limit + [429] * (len(statuses) - limit), statuses
    refused = codes[-1]
    assert int(refused.headers["retry-after"]) >= 1 and refused.json()["retry_after_seconds"] > 0
    assert "rate limit exceeded for user 'user_7'" in refused.json()["detail"]
    assert f"at most {limit} deal requests" in refused.json()["detail"]  # the configured limit, for both together
    r = fresh("POST", f"{base}{PREFIX}/full", json={"user_id": "user_7", "num_recommendations": 3}, headers=admin)
    assert r.status_code == 200 and r.json()["deals"] == [] and r.json()["deals_retry_after_seconds"] > 0


def per_worker_model_info(base: str, admin: dict[str, str], want: int = 2, tries: int = 200) -> dict[int, dict]:
    infos: dict[int, dict] = {}
    for _ in range(tries):
        info = fresh("GET", f"{base}{PREFIX}/model-info", headers=admin).json()
        infos[info["worker_pid"]] = info
        if len(infos) == want:
            break
    return infos


def test_train_on_one_worker_reaches_both_and_fails_no_request(two_workers):
    base, admin = two_workers
    before = per_worker_model_info(base, admin)
    served = {i["served_engine_version"] for i in before.values()}
    assert len(before) == 2 and len(served) == 1  # s000001, or s000002 after the batch-process test's retraining
    codes: list[int] = []
    stop = threading.Event()

    def load(path: str, body: dict) -> None:
        with httpx.Client(base_url=base, headers=admin, timeout=30.0) as client:
            while not stop.is_set():
                codes.append(client.post(f"{PREFIX}{path}", json=body).status_code)

    threads = [threading.Thread(target=load, args=("/full", {"user_id": f"user_{i}", "include_deals": False}))
               for i in range(2)]
    threads += [threading.Thread(target=load, args=("/realtime", {"user_id": f"user_{i}"})) for i in range(2, 4)]
    for t in threads:
        t.start()
    try:
        r = fresh("POST", f"{base}{PREFIX}/train", headers=admin)
        assert r.status_code == 202
        deadline = time.monotonic() + 120
        while (job := fresh("GET", f"{base}{PREFIX}/jobs/train", headers=admin).json())["status"] == "running":
            assert time.monotonic() < deadline, "train job did not finish"
            time.sleep(0.1)
        assert job["status"] == "completed", job
        new_version = job["result"]["engine_version"]
        while True:  # the other worker loads the published version in the background
            after = per_worker_model_info(base, admin)
            if len(after) == 2 and {i["served_engine_version"] for i in after.values()} == {new_version}:
                break
            assert all(i["engine_load_error"] is None for i in after.values()), after
            assert time.monotonic() < deadline, f"not every worker serves {new_version}: {after}"
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert int(new_version[1:]) == int(served.pop()[1:]) + 1
    assert {i["trained_at"] for i in after.values()} == {job["result"]["trained_at"]}
    assert job["result"]["trained_at"] not in {i["trained_at"] for i in before.values()}
    assert {i["served_batch_version"] for i in after.values()} == {job["result"]["batch_version"]}
    # the stored event (an earlier test's) is in the new model's training data: before its cutoff, not replayed
    assert {i["live_events_applied"] for i in after.values()} == {0}
    assert {i["training_data"]["cutoff_event_id"] for i in after.values()} == {1}
    assert len({i["training_data"]["events"] for i in after.values()}) == 1
    assert len(codes) > 20 and set(codes) == {200}, {c: codes.count(c) for c in set(codes)}

