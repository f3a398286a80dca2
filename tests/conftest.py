"""Shared fixtures: small synthetic worlds (generated once per test session), one trained engine
per test module, and for the service tests a trained model directory and a throw-away redis-server
(one of each per test module). Also the test tiers: markers that follow from what a test uses."""

from __future__ import annotations

import pytest
from fake_clock import Clock
from service_processes import redis_server

from recsys.cli import main as cli_main
from recsys.data import Dataset, generate, load_or_generate


@pytest.fixture(scope="session")
def small_dataset() -> Dataset:
    """A few hundred users and products over 90 days (fast, for unit tests)."""
    return generate(n_users=300, n_products=150, days=90, seed=7)


@pytest.fixture(scope="session")
def ci_dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """The ``ci`` profile (seed 42), cached under a session tmp directory."""
    return load_or_generate(profile="ci", seed=42, data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def ci_parts(ci_dataset: Dataset) -> dict[str, object]:
    """The hybrid's four default strategies fitted on the ``ci`` profile (one set per test module)."""
    from recsys.interactions import Interactions
    from recsys.models.content import ContentRecommender
    from recsys.models.demographic import DemographicRecommender
    from recsys.models.knn import ItemKNN
    from recsys.models.svd import PureSVD, SVDConfig

    inter = Interactions.from_dataset(ci_dataset)
    return {"knn": ItemKNN().fit(ci_dataset, inter), "svd": PureSVD(SVDConfig(random_state=42)).fit(ci_dataset, inter),
            "content": ContentRecommender().fit(ci_dataset, inter),
            "demographic": DemographicRecommender().fit(ci_dataset, inter)}


@pytest.fixture(scope="module")
def clock() -> Clock:
    """The settable clock of :func:`engine`'s rate limiter (one per test module; tests move ``now``)."""
    return Clock()


@pytest.fixture(scope="module")
def engine(small_dataset: Dataset, clock: Clock):
    """A :class:`~recsys.serving.engine.RecommendationEngine` trained on ``small_dataset`` with the
    default configuration and :func:`clock` (one per test module: tests may add events to it)."""
    from recsys.serving.engine import RecommendationEngine

    eng = RecommendationEngine(clock=clock)
    eng.train(small_dataset)
    return eng


@pytest.fixture(scope="module")
def model_dir(small_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A model directory written by ``recsys train --data`` on ``small_dataset``
    (one per test module: service tests may train into it)."""
    root = tmp_path_factory.mktemp("service-model")
    small_dataset.save(root / "data")
    assert cli_main(["train", "--data", str(root / "data"), "--out", str(root / "model"), "--no-tune"]) == 0
    return str(root / "model")


@pytest.fixture(scope="module")
def redis_url():
    """A throw-away redis-server's URL (one per test module); skips without the binary."""
    with redis_server() as url:
        if url is None:
            pytest.skip("no redis-server binary: install it (apt-get install -y redis-server; `make redis`)")
        yield url


@pytest.fixture(scope="session")
def postgres_url():
    """A throw-away PostgreSQL server's URL (one per test session, ``recsys.store.cluster``);
    skips, saying why, where none can be started."""
    from recsys.store.cluster import postgres_server

    with postgres_server() as (url, reason):
        if url is None:
            pytest.skip(f"no PostgreSQL server: {reason}")
        yield url


# -- test tiers (markers registered in pyproject.toml; `make test-fast` deselects them) ---------------------------
#: a test that uses one of these fixtures belongs to that tier, whatever file it is in
_TIER_OF_FIXTURE = {"redis_url": "processes", "postgres_url": "processes", "spark": "spark"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tier markers that follow from what a test uses: nbval's notebook cells are
    ``notebooks``; a test using a redis-server or Spark fixture is ``processes`` or ``spark``."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.notebooks)
        for fixture, tier in _TIER_OF_FIXTURE.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(getattr(pytest.mark, tier))
