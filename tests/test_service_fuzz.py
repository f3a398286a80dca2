"""Property-based fuzz of the OpenAPI schema (schemathesis): no input produces a 500.

Every operation gets schema-valid and schema-violating requests (hypothesis,
``EXAMPLES_PER_OPERATION`` derandomized examples per operation, so it is
bounded and repeatable in CI), each sent with an admin token, a user token
and no token. Checks: no 5xx, and every answer conforms to the responses the
schema documents. "No 5xx" is not true by construction: only
:class:`~recsys.validation.InvalidRequest` (and schema violations) answer
422; any other exception, a plain ``ValueError`` from a bug included, is a 500,
and the same check then fails (:func:`test_the_check_fails_on_a_bug_inside_the_engine`). The app is built at import (schemathesis needs it to
collect the operations): a small world and a trained engine, about 2 s.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile

import pandas as pd
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from recsys.data import generate
from recsys.service import KeyStore, create_app
from recsys.serving.catalogue import Catalogue
from recsys.serving.engine import RecommendationEngine
from recsys.store import open_store
from recsys.validation import InvalidRequest

pytestmark = pytest.mark.fuzz

EXAMPLES_PER_OPERATION = 25


def _app():
    engine = RecommendationEngine()
    engine.train(generate(n_users=150, n_products=80, days=90, seed=3))
    keys = KeyStore()
    folder = tempfile.mkdtemp(prefix="recsys-fuzz-")  # the event store, as `recsys serve` always has one
    atexit.register(shutil.rmtree, folder, True)
    app = create_app(engine, keys, clock=lambda: pd.Timestamp("2025-03-01T12:00:00Z"),
                     store=open_store(f"sqlite:///{folder}/events.db"))
    app.state.fuzz_tokens = {"admin": keys.add("ops", admin=True), "user": keys.add("user_0")}
    return app


APP = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_request_produces_a_server_error(case):
    for who in ("admin", "user", None):
        headers = {} if who is None else {"Authorization": f"Bearer {APP.state.fuzz_tokens[who]}"}
        case.call_and_validate(headers=headers, checks=[not_a_server_error, response_schema_conformance])


def test_only_invalid_requests_are_422():
    handlers = APP.exception_handlers
    assert InvalidRequest in handlers and ValueError not in handlers and Exception not in handlers


def test_the_check_fails_on_a_bug_inside_the_engine(monkeypatch):
    """The fuzz check can fail: a ValueError raised deep in the engine is a 500 it reports."""

    def bug(*args, **kwargs):
        raise ValueError("a bug, not bad input")

    case = schema["/recommendations/enhanced/realtime"]["POST"].Case(body={"user_id": "user_0"},
                                                                      media_type="application/json")
    headers = {"Authorization": f"Bearer {APP.state.fuzz_tokens['admin']}"}
    case.call_and_validate(headers=headers, checks=[not_a_server_error])  # passes without the bug
    monkeypatch.setattr(Catalogue, "records", bug)
    with pytest.raises(FailureGroup, match="Server error"):
        case.call_and_validate(headers=headers, checks=[not_a_server_error])
