"""A model directory: the saved engine the workers serve, and its versions.

A model directory (``recsys train --out DIR``) holds ``engine/`` (a saved
:class:`~recsys.serving.engine.RecommendationEngine`: immutable saves ``sNNNNNN/``
behind the pointer ``CURRENT``, :mod:`recsys.serving.engine_store`) and
``artifacts/`` (its Stage 2 artifact versions ``vNNNNNN/`` behind
``LATEST``; ``batch-process`` publishes new ones there) and ``decisions/``
(the deal decision log every worker writes, :mod:`recsys.deals.decision_log`). The name of a save
is the **engine version** a service publishes after a ``train`` job
(:mod:`recsys.service.history`): save names grow with every save, so a
larger number is a newer model. Two workers whose ``train`` jobs save at
the same moment may both read back the later save's name; both publish it,
every other worker loads it, and the two training workers keep their own
engine (trained on the same data with the same configuration).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from recsys.data.dataset import Dataset
from recsys.deals.exploration import ExplorationConfig
from recsys.serving.engine import RecommendationEngine
from recsys.serving.engine_config import EngineConfig
from recsys.serving.engine_store import POINTER, EngineFormatError
from recsys.stage2 import publish

__all__ = ["ARTIFACTS_SUBDIR", "BASE_SUBDIR", "DECISIONS_SUBDIR", "ENGINE_SUBDIR", "SERVICE_ENGINE_CONFIG",
           "check_model_dir", "current_version", "ensure_base", "load_current", "load_model", "save_engine",
           "train_model_dir", "utc_now", "version_number"]

ENGINE_SUBDIR = "engine"
ARTIFACTS_SUBDIR = "artifacts"
DECISIONS_SUBDIR = "decisions"
BASE_SUBDIR = "base"
"""The base data set (``Dataset.save``): what ``recsys train`` trained on, before any stored event."""


def utc_now() -> pd.Timestamp:
    """The wall clock of a served engine: now, in UTC."""
    return pd.Timestamp.now(tz="UTC")


SERVICE_ENGINE_CONFIG = EngineConfig(exploration=ExplorationConfig(enabled=True))
"""A served engine's settings: the deals' logging policy is on (exploration and a holdout,
the shares of :class:`~recsys.deals.exploration.ExplorationConfig`), so its decisions can
be evaluated; the notebooks' engines keep it off."""


def train_model_dir(dataset: Dataset, out: str | Path, engine_config: EngineConfig = SERVICE_ENGINE_CONFIG,
                    tune: bool = False, tuning_trials: int = 24,
                    tuning_budget_seconds: float = 600.0) -> RecommendationEngine:
    """Train an engine on ``dataset`` into a new model directory ``out`` (its Stage 2
    version under ``artifacts/``, the engine saved under ``engine/``, the data set as the base
    ``base/`` that trainings on the event store add the stored data to).

    ``tune``: first search a validation window cut from ``dataset`` (``engine.train(tune=True)``,
    the notebooks' tuned row) and serve the winner; retrainings (``POST /train``) keep it."""
    out = Path(out)
    engine = RecommendationEngine(engine_config=engine_config, artifacts_dir=out / ARTIFACTS_SUBDIR)
    tuning = None
    if tune:
        from recsys.research.tuning import TuningConfig

        tuning = TuningConfig(n_trials=tuning_trials, budget_seconds=tuning_budget_seconds)
    engine.train(dataset, tune=tune, tuning=tuning)
    engine.save(out / ENGINE_SUBDIR)
    dataset.save(out / BASE_SUBDIR)
    return engine


def check_model_dir(model_dir: Path) -> None:
    """A model directory holds a saved engine (``engine/CURRENT``, engine save format 3)."""
    if not (Path(model_dir) / ENGINE_SUBDIR / POINTER).exists():
        raise FileNotFoundError(f"--model {model_dir}: no saved engine {ENGINE_SUBDIR}/{POINTER} "
                                "(write one with `recsys train`)")


def current_version(model_dir: str | Path) -> str:
    """The name of the current engine save (``sNNNNNN``)."""
    return publish.read_pointer(Path(model_dir) / ENGINE_SUBDIR, POINTER)


def version_number(version: str | None) -> int:
    """``s000012`` -> 12; -1 for None or a name that is not a save's."""
    if not version or not version[1:].isdigit():
        return -1
    return int(version[1:])


def load_model(model_dir: str | Path, clock: Callable[[], pd.Timestamp] = utc_now) -> RecommendationEngine:
    """The engine of a model directory, serving its latest Stage 2 version; its answers'
    ``timestamp`` and ``deal_expiry`` come from ``clock`` (pass the app the same clock)."""
    model_dir = Path(model_dir)
    check_model_dir(model_dir)
    engine = RecommendationEngine.load(model_dir / ENGINE_SUBDIR, now=clock,
                                       artifacts_dir=(model_dir / ARTIFACTS_SUBDIR).resolve())
    latest = engine.latest_batch_version()
    if latest is not None and latest != engine.batch_version:
        engine.reload_batch()
    return engine


def load_current(model_dir: str | Path, clock: Callable[[], pd.Timestamp] = utc_now,
                 attempts: int = 3) -> tuple[RecommendationEngine, str]:
    """:func:`load_model` and the version it loaded (``CURRENT`` unchanged before and after the load)."""
    for _ in range(attempts):
        before = current_version(model_dir)
        engine = load_model(model_dir, clock)
        if current_version(model_dir) == before:
            return engine, before
    raise EngineFormatError(f"{model_dir}: the engine saves kept changing while loading; try again")


def save_engine(engine: RecommendationEngine, model_dir: str | Path) -> str:
    """Publish ``engine`` as the model directory's new current save; returns its version
    (of two concurrent saves, the later one's: see the module doc)."""
    engine.save(Path(model_dir) / ENGINE_SUBDIR)
    return current_version(model_dir)


def ensure_base(model_dir: str | Path, engine: RecommendationEngine, version: str) -> Path:
    """The model directory's base data set ``base/``; written once from the save ``version`` of ``engine``
    when missing and that save was trained on the base data only (no event store cutoff), else
    ``FileNotFoundError`` (the base of a model trained on stored events cannot be told apart)."""
    base = Path(model_dir) / BASE_SUBDIR
    if (base / "manifest.json").exists():
        return base
    if engine.training_data()["cutoff_event_id"] != 0:
        raise FileNotFoundError(f"{model_dir}: no {BASE_SUBDIR}/ data set, and the served model was trained on "
                                "stored events: restore base/ (the data set `recsys train` used)")
    import shutil
    import uuid

    staging = base.parent / f".{BASE_SUBDIR}-{uuid.uuid4().hex[:12]}"
    shutil.copytree(Path(model_dir) / ENGINE_SUBDIR / version / "data", staging)
    try:
        staging.rename(base)
    except OSError:  # another worker renamed its copy first
        shutil.rmtree(staging, ignore_errors=True)
    return base
