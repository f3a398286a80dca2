"""The service's deals under the logging policy (on by default in a served model) and its A/B experiments."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from recsys.cli import main as cli_main
from recsys.config import DealConfig
from recsys.deals.decision_log import ParquetDecisionLog
from recsys.deals.exploration import ExplorationConfig, LoggingPolicy
from recsys.deals.rate_limit import RateLimiter
from recsys.service import PREFIX, KeyStore, create_app
from recsys.serving.model_dir import DECISIONS_SUBDIR, SERVICE_ENGINE_CONFIG, load_model

NOW = pd.Timestamp("2025-03-01T12:00:00Z")
EXPERIMENT = {"name": "pricing", "variants": [
    {"name": "formula", "share": 0.5, "exploration": {"enabled": True}},
    {"name": "sensitivity", "share": 0.5, "use_price_sensitivity": True,
     "exploration": {"enabled": True, "policy_name": "formula_price_sensitivity"}},
]}


@pytest.fixture()
def served(model_dir, tmp_path):
    """A copy of the module's model directory, served by one in-process app (admin and user tokens)."""
    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    keys = KeyStore()
    tokens = {"admin": keys.add("ops", admin=True), "user_0": keys.add("user_0")}
    app = create_app(load_model(model, clock=lambda: NOW), keys, clock=lambda: NOW,
                     rate_limiter=RateLimiter(10**6, 1.0), model_dir=model)
    return app, tokens, model


def deals_of(client: TestClient, token: str, users: list[str]) -> dict[str, dict]:
    headers = {"Authorization": f"Bearer {token}"}
    out = {}
    for user in users:
        r = client.get(f"{PREFIX}/deals/{user}", params={"num_deals": 5}, headers=headers)
        assert r.status_code == 200, r.text
        out[user] = r.json()
    return out


def test_served_deals_carry_policy_and_propensity_and_every_decision_is_logged(served, small_dataset) -> None:
    app, tokens, model = served
    users = small_dataset.users["user_id"].tolist()
    with TestClient(app) as client:
        answers = deals_of(client, tokens["admin"], users)
    logged = ParquetDecisionLog(model / DECISIONS_SUBDIR).read()  # flushed at shutdown
    assert SERVICE_ENGINE_CONFIG.exploration.enabled
    held = set(logged.loc[logged["arm"] == "holdout", "user_id"])
    share = len(held) / logged["user_id"].nunique()
    assert abs(share - 0.1) < 4 * np.sqrt(0.1 * 0.9 / logged["user_id"].nunique())
    for user, answer in answers.items():
        if user in held:
            assert answer["deals"] == [] and answer["note"].startswith("holdout")
        for deal in answer["deals"]:
            assert {"policy", "policy_version", "variant", "arm", "propensity"} <= set(deal)
            assert deal["arm"] in ("formula", "explore") and 0 < deal["propensity"] <= 1
    policy = LoggingPolicy(ExplorationConfig(enabled=True), DealConfig())
    top = 1 - 1.05 * logged["cost"] / logged["original_price"]
    assert np.allclose(logged["propensity"], policy.probability(logged["discount"], logged["formula_discount"], top))
    assert logged["offered"].sum() == sum(len(a["deals"]) for a in answers.values())


def test_admin_starts_and_ends_an_experiment(served, small_dataset) -> None:
    app, tokens, model = served
    users = small_dataset.users["user_id"].tolist()[:60]
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    with TestClient(app) as client:
        r = client.put(f"{PREFIX}/experiment", json=EXPERIMENT, headers=admin)
        assert r.status_code == 200, r.text
        assert r.json()["experiment"]["name"] == "pricing" and r.json()["engine_version"] is not None
        assert client.get(f"{PREFIX}/experiment", headers=admin).json()["experiment"]["name"] == "pricing"
        answers = deals_of(client, tokens["admin"], users)
        variants = {d["variant"] for a in answers.values() for d in a["deals"]}
        assert variants == {"pricing:formula", "pricing:sensitivity"}
        bad = client.put(f"{PREFIX}/experiment", json={**EXPERIMENT, "variants": EXPERIMENT["variants"][:1]},
                         headers=admin)
        assert bad.status_code == 422 and "at least two variants" in bad.text
        denied = client.put(f"{PREFIX}/experiment", json=EXPERIMENT,
                            headers={"Authorization": f"Bearer {tokens['user_0']}"})
        assert denied.status_code == 403
        ended = client.put(f"{PREFIX}/experiment", json={"name": ""}, headers=admin)
        assert ended.status_code == 200 and ended.json()["experiment"]["name"] == ""
        after = deals_of(client, tokens["admin"], users[:10])
        assert {d["variant"] for a in after.values() for d in a["deals"]} <= {""}
    assert load_model(model).deal_policy()[1].name == ""  # the saved engine ended it too


def test_cli_starts_and_stops_an_experiment_in_a_model_directory(served, tmp_path) -> None:
    _, _, model = served
    config = tmp_path / "experiment.toml"
    config.write_text('name = "pricing"\n\n[[variants]]\nname = "a"\nshare = 0.5\n\n'
                      '[[variants]]\nname = "b"\nshare = 0.5\nuse_price_sensitivity = true\n')
    assert cli_main(["experiment", "start", "--model", str(model), "--config", str(config)]) == 0
    assert [v.name for v in load_model(model).deal_policy()[1].variants] == ["a", "b"]
    assert cli_main(["experiment", "stop", "--model", str(model)]) == 0
    assert not load_model(model).deal_policy()[1].active
    config.write_text('name = "pricing"\n[[variants]]\nname = "a"\nshare = 1.5\n')
    assert cli_main(["experiment", "start", "--model", str(model), "--config", str(config)]) == 2
