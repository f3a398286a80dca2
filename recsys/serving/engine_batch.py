"""The engine's Stage 2: run the batch job, prepare a new Stage 2-3 state aside, install it.

Mixed into :class:`~recsys.serving.engine.RecommendationEngine`; the only
module of :mod:`recsys.serving` that calls the Stage 2 job
(:func:`recsys.stage2.job.run_batch`) or reads published artifact versions
(:func:`recsys.stage2.artifacts.load_latest`).

Protocol of a background batch run (the service's ``batch-process``):
:meth:`Stage2Jobs.prepare_batch` runs the job and builds the new Stage 2-3
state (PureSVD from the new factors, the hybrid over it) without touching
what is served -- call it in a worker thread; :meth:`Stage2Jobs.install_batch`
then serves it by one reference assignment -- cheap, call it on the event
loop. Requests in between are answered from the previous state.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys.models.base import Recommender
from recsys.models.hybrid import HybridRecommender
from recsys.models.learned_fusion import served_fusion
from recsys.serialization import jsonable
from recsys.serving.stage2_state import Stage2State
from recsys.stage2.artifacts import LATEST, BatchArtifacts, load_latest
from recsys.stage2.job import run_batch

if TYPE_CHECKING:
    from recsys.config import FusionWeights
    from recsys.data.dataset import Dataset
    from recsys.interactions import Interactions
    from recsys.models.content import ContentRecommender
    from recsys.models.realtime import RealtimeRecommender
    from recsys.serving.engine_config import EngineConfig

__all__ = ["STAGE_NAMES", "PreparedBatch", "Stage2Jobs"]

STAGE_NAMES = {
    1: "Stage 1: Real-time Scoring",
    2: "Stage 2: Batch Processing",
    3: "Stage 3: Hybrid Enrichment",
}


@dataclass(frozen=True)
class _Serving:
    """Stages 2-3 as served: replaced as a whole, never modified."""

    stage2: Stage2State
    hybrid: HybridRecommender


@dataclass(frozen=True)
class PreparedBatch:
    """A Stage 2 version computed and built aside by :meth:`Stage2Jobs.prepare_batch`,
    not served yet; ``version`` names the published artifact version."""

    version: str
    data_hash: str
    _serving: _Serving
    _owner: int  # id() of the engine that prepared it: only that engine may install it


class Stage2Jobs:
    """Stage 2 of the engine (see the module docstring); state lives on the engine,
    which provides ``_check_trained()`` and ``timestamp``."""

    # set by the engine (declared for type checkers)
    artifacts_dir: Path | None
    engine_config: EngineConfig
    weights: FusionWeights
    dataset_: Dataset
    interactions_: Interactions
    data_hash_: str
    realtime_: RealtimeRecommender
    content_: ContentRecommender
    _lock: threading.RLock
    _serving: _Serving

    def _run_batch(self) -> BatchArtifacts:
        """Run the Stage 2 job (:func:`recsys.stage2.job.run_batch`): into
        ``artifacts_dir`` as a new published version, or, without one, into a
        temporary directory that is removed once the artifacts are in memory."""
        # the engine's interactions are Interactions.from_dataset(self.dataset_): shared, not rebuilt
        if self.artifacts_dir is not None:
            return run_batch(self.dataset_, self.artifacts_dir, self.engine_config.batch, self.interactions_)
        with tempfile.TemporaryDirectory(prefix="recsys-batch-") as tmp:
            return run_batch(self.dataset_, tmp, self.engine_config.batch, self.interactions_)

    def _build_serving(self, artifacts: BatchArtifacts) -> _Serving:
        """Stages 2-3 built aside from an artifact set (nothing served changes)."""
        stage2 = Stage2State.from_artifacts(artifacts, self.dataset_, self.interactions_, self.data_hash_)
        components: dict[str, Recommender] = {  # the collaborative slot: EASE when served (EngineConfig.ease)
            "knn": self.realtime_.knn_, "svd": self.__dict__.get("ease_") or stage2.svd, "content": self.content_,
            "demographic": self.realtime_.fallback_,
        }
        # Stage 3: the learned fusion when a ranker was trained (EngineConfig.learned_fusion), else the weighted one
        return _Serving(stage2, served_fusion(components, self.weights, self.engine_config.hybrid,
                                              self.__dict__.get("ranker_")))

    def _install_stage2(self, artifacts: BatchArtifacts) -> None:
        """Serve from a (new) artifact set: build Stages 2-3 aside, publish by one assignment."""
        self._serving = self._build_serving(artifacts)

    @property
    def stage2_(self) -> Stage2State:
        return self._serving.stage2

    @property
    def hybrid_(self) -> HybridRecommender:
        return self._serving.hybrid

    @property
    def batch_version(self) -> str:
        """The name of the Stage 2 artifact version served (``vNNNNNN``)."""
        self._check_trained()  # type: ignore[attr-defined]
        return self._serving.stage2.artifacts.version

    # ------------------------------------------------------------------ background protocol
    def prepare_batch(self) -> PreparedBatch:
        """Run the Stage 2 job on the engine's data, published as a new artifact
        version (into ``artifacts_dir``; an engine without one gets a temporary
        directory, kept so that :meth:`reload_batch` finds its versions), and
        build the state to serve from it. Serves nothing new: safe in a worker
        thread while requests are answered."""
        self._check_trained()  # type: ignore[attr-defined]
        with self._lock:
            if self.artifacts_dir is None:
                self.artifacts_dir = Path(tempfile.mkdtemp(prefix="recsys-artifacts-"))
        artifacts = run_batch(self.dataset_, self.artifacts_dir, self.engine_config.batch, self.interactions_)
        return PreparedBatch(artifacts.version, self.data_hash_, self._build_serving(artifacts), id(self))

    def install_batch(self, prepared: PreparedBatch) -> dict[str, Any]:
        """Serve ``prepared`` (one reference assignment); returns its ``version``,
        ``as_of``, ``run_seconds``. Refuses a version prepared by another engine or
        on other data."""
        self._check_trained()  # type: ignore[attr-defined]
        if not isinstance(prepared, PreparedBatch):
            raise TypeError(f"install_batch expects a PreparedBatch, got {type(prepared).__name__}")
        if prepared._owner != id(self) or prepared.data_hash != self.data_hash_:
            raise ValueError(f"batch version {prepared.version} was prepared by another engine or on other data")
        with self._lock:
            self._serving = prepared._serving
        info = prepared._serving.stage2.info()
        return jsonable({k: info[k] for k in ("version", "as_of", "run_seconds")})

    def latest_batch_version(self) -> str | None:
        """The newest complete version published in ``artifacts_dir`` (None: none, or no directory)."""
        if self.artifacts_dir is None:
            return None
        latest = self.artifacts_dir / LATEST
        return latest.read_text().strip() if latest.exists() else None

    def reload_batch(self) -> dict[str, Any]:
        """Read the latest complete artifact set from ``artifacts_dir`` (e.g.
        written by an hourly ``recsys batch`` run) and serve from it."""
        self._check_trained()  # type: ignore[attr-defined]
        if self.artifacts_dir is None:
            raise ValueError("reload_batch needs an engine with artifacts_dir set")
        with self._lock:
            self._install_stage2(load_latest(self.artifacts_dir))
        return jsonable(self.stage2_.info())

    def batch_process(self) -> dict[str, Any]:
        """Stage 2 [POST /batch-process]: run the batch job (SVD, segments,
        demand, seasonal factors; published atomically when ``artifacts_dir``
        is set), serve from the new artifact set, and summarise it."""
        self._check_trained()  # type: ignore[attr-defined]
        with self._lock:
            self._install_stage2(self._run_batch())
            stage2 = self.stage2_
        info = stage2.info()
        return jsonable({
            "status": "completed",
            "stage": STAGE_NAMES[2],
            "artifacts": {k: info[k] for k in ("version", "as_of", "data_hash")},
            "n_segments": len(stage2.artifacts.segment_summary.get("user_segments", {})),
            "metrics": info["metrics"],
            "duration_seconds": info["run_seconds"],
            "timestamp": self.timestamp,  # type: ignore[attr-defined]
        })
