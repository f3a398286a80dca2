"""Micro-batching of concurrent requests (recsys.service.batching) and the batched HTTP answers."""

from __future__ import annotations

import asyncio

import httpx
import pandas as pd
import pytest

from recsys.deals.rate_limit import RateLimiter, RateLimitExceeded
from recsys.service import PREFIX, KeyStore, create_app
from recsys.service.batching import RequestBatcher
from recsys.service.rounding import round_answer
from recsys.serving.model_dir import load_model

NOW = pd.Timestamp("2025-03-01T12:00:00Z")


class Recorder:
    """A ``run`` that records its calls and answers ``key:user`` (or raises for ``bad``)."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, list[str]]] = []

    def __call__(self, key: object, users: list[str]) -> list[object]:
        self.calls.append((key, list(users)))
        if "bad" in users:
            raise ValueError("bad user in the batch")
        return [RateLimitExceeded(u, 1, 60.0, 5.0) if u == "limited" else f"{key}:{u}" for u in users]


def gather(batcher: RequestBatcher, requests: list[tuple[object, str]]) -> list[object]:
    async def main() -> list[object]:
        return await asyncio.gather(*(batcher.submit(k, u) for k, u in requests), return_exceptions=True)

    return asyncio.run(main())


def test_requests_arriving_together_share_one_call_in_arrival_order() -> None:
    run = Recorder()
    batcher = RequestBatcher(run)
    answers = gather(batcher, [(10, "a"), (10, "b"), (5, "c"), (10, "a")])
    assert answers == ["10:a", "10:b", "5:c", "10:a"]
    assert run.calls == [(10, ["a", "b", "a"]), (5, ["c"])]  # one call per key
    assert (batcher.calls, batcher.requests) == (2, 4)


def test_max_batch_bounds_each_call() -> None:
    run = Recorder()
    answers = gather(RequestBatcher(run, max_batch=2), [(1, u) for u in "abcde"])
    assert answers == [f"1:{u}" for u in "abcde"]
    assert [users for _, users in run.calls] == [["a", "b"], ["c", "d"], ["e"]]


def test_an_exception_answer_is_raised_in_its_own_request_only() -> None:
    answers = gather(RequestBatcher(Recorder()), [(1, "a"), (1, "limited"), (1, "b")])
    assert answers[0] == "1:a" and answers[2] == "1:b"
    assert isinstance(answers[1], RateLimitExceeded)


def test_a_failing_request_does_not_fail_the_others() -> None:
    run = Recorder()
    answers = gather(RequestBatcher(run), [(1, "a"), (1, "bad"), (1, "b")])
    assert answers[0] == "1:a" and answers[2] == "1:b"
    assert isinstance(answers[1], ValueError) and "bad user" in str(answers[1])
    assert run.calls[0] == (1, ["a", "bad", "b"]) and (1, ["bad"]) in run.calls[1:]


def test_a_lone_request_is_answered_without_waiting() -> None:
    assert gather(RequestBatcher(Recorder()), [("k", "solo")]) == ["k:solo"]


@pytest.mark.parametrize("max_batch", [0, -1, 2.5, True])
def test_max_batch_must_be_a_positive_int(max_batch) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        RequestBatcher(Recorder(), max_batch=max_batch)


# ---------------------------------------------------------------------------- over HTTP
def test_concurrent_http_requests_get_the_one_user_answers(model_dir, small_dataset) -> None:
    """Many concurrent full and deals requests (batched) get exactly what the engine
    answers each user alone; past the rate limit only that user's deals are refused."""
    engine = load_model(model_dir, clock=lambda: NOW)
    reference = load_model(model_dir, clock=lambda: NOW)
    reference.use_rate_limiter(RateLimiter(10**9, 60.0))
    keys = KeyStore()
    token = keys.add("backend", admin=True)
    app = create_app(engine, keys, clock=lambda: NOW, rate_limiter=RateLimiter(10**9, 60.0))
    users = small_dataset.users.user_id.iloc[:16].tolist() + ["visitor_5"]

    async def main() -> tuple[list[httpx.Response], list[httpx.Response]]:
        headers = {"Authorization": f"Bearer {token}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as client:
            full = [client.post(f"{PREFIX}/full", json={"user_id": u, "num_recommendations": 5}) for u in users]
            deals = [client.get(f"{PREFIX}/deals/{u}", params={"num_deals": 3}) for u in users]
            return list(await asyncio.gather(*full)), list(await asyncio.gather(*deals))

    full, deals = asyncio.run(main())
    assert [r.status_code for r in full + deals] == [200] * (2 * len(users))
    # the engine's answers, rounded at the response boundary (recsys.service.rounding)
    assert [r.json() for r in full] == [round_answer(reference.full(u, 5)) for u in users]
    assert [r.json() for r in deals] == [round_answer(reference.deals(u, 3)) for u in users]
    batcher = app.state.service.full_batcher
    assert batcher.requests == len(users) and batcher.calls < len(users)  # they were batched
