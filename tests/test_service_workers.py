"""Two uvicorn workers behind one port, sharing the live history through a real redis-server.

CI installs and starts nothing here by hand: the test starts its own
``redis-server`` (``.ci/run`` and ``make redis`` install the Debian package
where it is missing) and skips, saying why, only if there is no binary.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from recsys.cli import main as cli_main
from recsys.service import PREFIX
from recsys.service.processes import redis_server, serve_process


@pytest.fixture(scope="module")
def redis_url():
    with redis_server() as url:
        if url is None:
            pytest.skip("no redis-server binary: install it (apt-get install -y redis-server; `make redis`)")
        yield url


@pytest.fixture(scope="module")
def two_workers(small_dataset, tmp_path_factory, redis_url):
    root = tmp_path_factory.mktemp("service-workers")
    small_dataset.save(root / "data")
    assert cli_main(["train", "--data", str(root / "data"), "--out", str(root / "model")]) == 0
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
