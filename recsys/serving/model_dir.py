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

A training publishes into a model directory in a crash-safe order
(:func:`staging_dir`, :func:`save_staged`): its Stage 2 version is written
into a private staging directory (``artifacts/`` untouched), then the engine
is saved (``engine/CURRENT`` switched: the commit point; the save holds that
Stage 2 version), and only then is the version moved into ``artifacts/`` and
``LATEST`` pointed at it. A crash before the save leaves the previous model
whole; a crash after it leaves ``LATEST`` behind the saved engine, and
:func:`load_model` rolls the publication forward from the save. ``LATEST``
never names a Stage 2 version of data the current engine was not trained on
(one that does -- another writer's -- is reported and not served).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from recsys.data.dataset import Dataset
from recsys.deals.exploration import ExplorationConfig
from recsys.serving.engine import RecommendationEngine
from recsys.serving.engine_config import EngineConfig
from recsys.serving.engine_store import POINTER, EngineFormatError
from recsys.stage2 import publish
from recsys.stage2.artifacts import LATEST, save_artifacts

__all__ = ["ARTIFACTS_SUBDIR", "BASE_SUBDIR", "DECISIONS_SUBDIR", "ENGINE_SUBDIR", "SERVICE_ENGINE_CONFIG",
           "check_model_dir", "current_version", "ensure_base", "load_current", "load_model", "save_engine",
           "save_staged", "staging_dir", "train_model_dir", "utc_now", "version_number"]

log = logging.getLogger("recsys.serving")

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
    if version_number(latest) < version_number(engine.batch_version):  # a training crashed after its save
        _publish_batch(engine, model_dir / ARTIFACTS_SUBDIR, None)
    elif latest != engine.batch_version:  # a newer batch-process or `recsys batch` version
        try:
            engine.reload_batch()
        except ValueError as err:  # computed on other data: not this engine's
            log.error("%s: Stage 2 version %s not served: %s", model_dir, latest, err)
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


@contextlib.contextmanager
def staging_dir(model_dir: str | Path) -> Iterator[Path]:
    """``with staging_dir(model_dir) as staging:`` a private directory for a training's Stage 2 version
    (``retrained_copy(artifacts_dir=staging)``), numbered after the newest version in ``artifacts/`` so
    that it keeps its name when :func:`save_staged` moves it there; removed on exit (those of killed
    processes when the next one is made)."""
    model_dir = Path(model_dir)
    publish.sweep_stale_tmp(model_dir)
    staging = publish.new_tmp_dir(model_dir)
    try:
        artifacts = model_dir / ARTIFACTS_SUBDIR
        found = publish.versions(artifacts, "v") if artifacts.is_dir() else []
        if found:  # an empty placeholder: the staged version is numbered after it
            (staging / found[-1][1]).mkdir()
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def save_staged(engine: RecommendationEngine, model_dir: str | Path, staging: Path,
                fail_after_save: Callable[[], None] | None = None) -> str:
    """Save ``engine`` (trained with ``artifacts_dir=staging``) as the model directory's current engine,
    then move its Stage 2 version into ``artifacts/`` and point ``LATEST`` at it (the module doc's order);
    the engine publishes its next versions into ``artifacts/``. Returns the engine version.
    ``fail_after_save``: called between the two steps (tests inject a crash there)."""
    model_dir = Path(model_dir)
    version = save_engine(engine, model_dir)
    if fail_after_save is not None:
        fail_after_save()
    _publish_batch(engine, model_dir / ARTIFACTS_SUBDIR, staging)
    return version


def _publish_batch(engine: RecommendationEngine, artifacts: Path, staging: Path | None) -> None:
    """Put the engine's Stage 2 version into ``artifacts`` (moved from ``staging``, or written from the
    engine's save) and point ``LATEST`` at it, unless a newer version is there already; the engine
    publishes its next versions there."""
    batch = engine.batch_version
    artifacts.mkdir(parents=True, exist_ok=True)
    engine.artifacts_dir = artifacts
    latest = publish.read_pointer(artifacts, LATEST) if (artifacts / LATEST).exists() else None
    if version_number(latest) >= version_number(batch):
        return
    target = artifacts / batch
    if target.exists() and _data_hash_of(target) != engine.data_hash:
        log.error("%s: Stage 2 version %s of other data is there; this engine's not published", artifacts, batch)
        return
    if not target.exists():
        tmp = publish.new_tmp_dir(artifacts)
        try:
            source = staging / batch if staging is not None and (staging / batch).is_dir() else None
            if source is None:  # roll forward from the engine's copy (its save holds it)
                source = save_artifacts(engine.stage2_.artifacts, tmp)
            os.rename(source, target)
        except OSError as err:  # another writer took the name meanwhile: the engine keeps its own copy
            log.error("%s: Stage 2 version %s not published: %s", artifacts, batch, err)
            return
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        publish.fsync_dir(artifacts)
    publish.point_to(artifacts, LATEST, batch)
    publish.prune(artifacts, "v", engine.engine_config.batch.keep_versions, batch)


def _data_hash_of(version_dir: Path) -> str | None:
    """The data hash a Stage 2 version's manifest names (None: unreadable)."""
    try:
        return str(json.loads((version_dir / "manifest.json").read_text())["data_hash"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
