"""The engine's tuning path, kept apart from the facade: the search it runs and what applying its result means.

``engine.train(dataset, tune=True)`` calls :func:`~recsys.research.tuning.tune_configs` (which never imports
the engine) and applies the returned result with :func:`tuned_settings`; :func:`fit_served_extras` fits what a
tuned configuration adds to the served models: EASE or RP3beta in the collaborative slot (:func:`collaborative_choice`) and
the learned fusion's ranker (:func:`recsys.research.fusion_study.engine_ranker`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from recsys.config import FusionWeights
from recsys.data.dataset import Dataset
from recsys.interactions import Interactions
from recsys.models.ease import EASE, collaborative_slot
from recsys.models.hybrid import check_weights
from recsys.models.rp3beta import RP3beta
from recsys.research.fusion_study import engine_ranker
from recsys.research.tuning import tune_configs

__all__ = ["collaborative_choice", "collaborative_slot", "fit_served_extras", "tune_configs", "tuned_settings"]


def tuned_settings(engine_config: Any, result: Any) -> tuple[Any, FusionWeights, dict[str, Any]]:
    """``(engine_config, weights, record)`` after a search (:class:`~recsys.research.tuning.TuningResult`):
    its k-NN, PureSVD, EASE and learned-fusion settings, its weights, and its record for ``model_info``."""
    cfg = engine_config
    tuned = replace(cfg, realtime=replace(cfg.realtime, knn=result.knn), batch=replace(cfg.batch, svd=result.svd),
                    ease=result.ease, learned_fusion=result.learned_fusion, rp3beta=result.rp3beta)
    return tuned, check_weights(result.weights), result.info()


def collaborative_choice(engine_config: Any, n_products: int) -> dict[str, object]:
    """Which model fills the collaborative slot, and why: RP3beta when ``engine_config.rp3beta`` is set,
    else :func:`~recsys.models.ease.collaborative_slot` (EASE within its servable bound, else PureSVD)."""
    if engine_config.rp3beta is not None:
        c = engine_config.rp3beta
        return {"model": "rp3beta", "alpha": c.alpha, "beta": c.beta, "k": c.k}
    return collaborative_slot(engine_config.ease, n_products)


def fit_served_extras(dataset: Dataset, interactions: Interactions, engine_config: Any,
                      weights: FusionWeights, ranker: str | None = None) -> tuple[Any, str | None]:
    """EASE or RP3beta when it fills the collaborative slot (else None: Stage 2's PureSVD) and the ranker's text model
    when the engine serves the learned fusion (else None: the weighted fusion). ``ranker``: a saved
    model (a loaded engine's), served as it is: no training; refused when the engine serves no learned fusion."""
    slot = collaborative_choice(engine_config, dataset.n_products)["model"]
    model = (EASE(engine_config.ease).fit(dataset, interactions) if slot == "ease"
             else RP3beta(engine_config.rp3beta).fit(dataset, interactions) if slot == "rp3beta" else None)
    if ranker is not None:
        if engine_config.learned_fusion is None:
            raise ValueError("a saved learned-fusion ranker was given, but the engine configuration has no "
                             "learned_fusion: the save is inconsistent")
        return model, ranker
    return model, engine_ranker(dataset, engine_config, weights)
