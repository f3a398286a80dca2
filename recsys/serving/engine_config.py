"""The engine's component settings, and their JSON form for saved engines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recsys.config import ConfigError, FusionWeights, RecsysConfig
from recsys.deals.deal_types import DealRules
from recsys.deals.experiment import ExperimentConfig
from recsys.deals.exploration import ExplorationConfig
from recsys.models.content import ContentConfig
from recsys.models.ease import EASEConfig
from recsys.models.hybrid import HybridConfig
from recsys.models.learned_fusion import LearnedFusionConfig
from recsys.models.realtime import RealtimeConfig
from recsys.models.rp3beta import RP3betaConfig
from recsys.serialization import config_from_json, config_roundtrip, config_to_json
from recsys.stage2.job import BatchConfig
from recsys.validation import check_ints

__all__ = ["EngineConfig", "configs_from_json", "configs_to_json"]


@dataclass(frozen=True)
class EngineConfig:
    """Component settings of the engine (the domain tables live in
    :class:`~recsys.config.RecsysConfig`). ``similar_seed_items``: how many
    of the user's most-viewed products define "similar to viewed" deals;
    ``exploration``: the deals' logging policy (off by default: the formula,
    propensity 1; :mod:`recsys.deals.exploration`); ``experiment``: an A/B
    experiment over deal policies (none by default; :mod:`recsys.deals.experiment`).
    ``ease``: None (default) lets Stage 2's PureSVD fill the hybrid's
    collaborative slot; an :class:`~recsys.models.ease.EASEConfig` serves EASE
    there instead (fitted at train time, catalogues up to
    :data:`~recsys.models.ease.SERVABLE_MAX_ITEMS` products; above it the slot
    falls back to PureSVD and ``model_info`` says so). ``rp3beta``: an
    :class:`~recsys.models.rp3beta.RP3betaConfig` serves RP3beta there instead
    (sparse, any catalogue size; at most one of ``ease`` and ``rp3beta``). Stage 2's PureSVD still
    gives the deals their affinities either way. ``learned_fusion``: None
    (default) serves the weighted fusion; a
    :class:`~recsys.models.learned_fusion.LearnedFusionConfig` serves the
    LambdaRank fusion, its ranker trained at train time (and again, the same,
    at load) on the validation window of the training data."""

    realtime: RealtimeConfig = field(default_factory=RealtimeConfig)
    content: ContentConfig = field(default_factory=ContentConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    hybrid: HybridConfig = field(default_factory=HybridConfig)
    deal_rules: DealRules = field(default_factory=DealRules)
    similar_seed_items: int = 5
    exploration: ExplorationConfig = field(default_factory=ExplorationConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    realtime_latency_target: str = "< 100ms"
    ease: EASEConfig | None = None
    learned_fusion: LearnedFusionConfig | None = None
    rp3beta: RP3betaConfig | None = None

    def __post_init__(self) -> None:
        check_ints(self, "similar_seed_items")
        if self.ease is not None and self.rp3beta is not None:
            raise ConfigError("EngineConfig: the collaborative slot holds one model: set ease or rp3beta, not both")


_KINDS = {"config": RecsysConfig, "engine_config": EngineConfig, "weights": FusionWeights}


def configs_to_json(config: RecsysConfig, engine_config: EngineConfig, weights: FusionWeights) -> dict[str, Any]:
    """The three configurations of an engine as plain JSON (``ValueError`` if
    one would not read back unchanged)."""
    values = {"config": config, "engine_config": engine_config, "weights": weights}
    for name, value in values.items():
        if not config_roundtrip(_KINDS[name], value):
            raise ValueError(f"{name} cannot be saved as JSON and read back unchanged: {value!r}")
    return {name: config_to_json(value) for name, value in values.items()}


def configs_from_json(data: dict[str, Any]) -> tuple[RecsysConfig, EngineConfig, FusionWeights]:
    """Inverse of :func:`configs_to_json` (every ``__post_init__`` check runs
    again; ``KeyError``/``ValueError``/``TypeError`` on bad input)."""
    return tuple(config_from_json(_KINDS[name], data[name]) for name in _KINDS)  # type: ignore[return-value]
