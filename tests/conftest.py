"""Shared fixtures: small synthetic worlds, generated once per test session."""

from __future__ import annotations

import pytest

from recsys.data import Dataset, generate, load_or_generate


@pytest.fixture(scope="session")
def small_dataset() -> Dataset:
    """A few hundred users and products over 90 days (fast, for unit tests)."""
    return generate(n_users=300, n_products=150, days=90, seed=7)


@pytest.fixture(scope="session")
def ci_dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """The ``ci`` profile (seed 42), cached under a session tmp directory."""
    return load_or_generate(profile="ci", seed=42, data_dir=tmp_path_factory.mktemp("data"))
