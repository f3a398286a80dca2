"""Hyperparameter search on a validation window carved from the training data only.

Protocol (:func:`tune`): the data set handed in (the *training* data; in an
offline evaluation everything before the test cut) is split once more at
``as_of - validation_days`` (:func:`~recsys.evaluation.split.validation_split`):
components are fitted on the events before that cut and the hybrid's
``metric@k`` is measured on the validation window, over the users with
history there. Nothing after the data set's ``as_of`` exists for the tuner,
so the test window is never read.

Search: first the collaborative slot (:mod:`recsys.research.slot_search`:
PureSVD, EASE where the catalogue has at most
:data:`~recsys.models.ease.SERVABLE_MAX_ITEMS` products, RP3beta; each scored
alone, PureSVD replaced only on a gain whose paired interval is above zero),
then Optuna's TPE sampler (Bergstra et al. 2011) with a fixed ``seed``
(``min(10, n_trials // 3)``, at least 3, random start-up trials), stopped after ``n_trials`` trials or ``budget_seconds`` seconds, whichever
comes first. Searched: the item k-NN's learned and profile inputs (time-decay
half-life or none, repeats raw/log/binary, TF-IDF/BM25 weighting), ``k`` and
shrinkage; PureSVD's rank and input when it holds the slot; the four fusion
weights (four uniform draws normalised to sum 1). The first trial is the current configuration
(with the chosen slot), the second the slot alone (weights 0/1/0/0, a corner uniform draws miss), so
the search can only keep or improve the validation metric. The search record
(every trial, the best values, the validation metric of the current and the
best configuration) is returned as :class:`TuningResult` and kept in the
engine's ``model_info()["tuning"]``.

One code path: ``engine.train(dataset, tune=True)`` calls
:func:`tune_configs` (this module never imports the engine) and applies the
returned :class:`TuningResult` (``RecommendationEngine.apply_tuning``); the
notebooks' served row trains such an engine on their training split, so what
they report is what ``recsys train --tune`` serves.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import ConfigError, FusionWeights
from recsys.data.dataset import Dataset
from recsys.interactions import Interactions, Weighting
from recsys.models.knn import KNNConfig
from recsys.models.svd import SVDConfig
from recsys.third_party import import_quietly

__all__ = ["TuningConfig", "TuningResult", "apply_params", "budget_note", "ease_from_params", "fit_hybrid_components",
           "start_params", "tune", "tune_configs", "tuned_document", "validation_score", "write_tuned_config"]

STRATEGIES = ("knn", "svd", "content", "demographic")


@dataclass(frozen=True)
class TuningConfig:
    """Search settings: ``budget_seconds`` (wall time), ``n_trials`` (cap),
    ``validation_days`` (window at the end of the training data), ``k``,
    ``metric`` (``ndcg``, ``recall``, ``precision``, ``map``, ``hit_rate``),
    ``seed`` (TPE sampler), ``relevant_events`` (None: the data set's event
    types among purchase/cart), ``max_users`` (seeded sample of validation
    users, bounds time), ``search_fusion`` / ``search_knn`` / ``search_svd``;
    ``search_ease``: the collaborative slot may be served by EASE instead of
    PureSVD (at the regularisations of :data:`~recsys.research.slot_search.EASE_L2`); None (default):
    searched when the catalogue has at most
    :data:`~recsys.models.ease.SERVABLE_MAX_ITEMS` products, the bound up to
    which the engine serves EASE; ``search_rp3beta``: RP3beta may serve the
    slot (:mod:`recsys.models.rp3beta`, sparse: any catalogue; at :data:`~recsys.research.slot_search.RP3_GRID`); ``select``: after the search,
    :func:`tune_configs` serves the simplest of the design weights, the tuned weights and (with
    ``learned_fusion``) the LambdaRank fusion whose validation gain is not above zero by a paired
    interval (:func:`recsys.research.selection.choose_served`); False: the search's best weights.
    Defaults: 24 trials (the binding limit, so a search is reproducible) and
    600 s, a safety cap a search on the thesis profile stays well inside."""

    budget_seconds: float = 600.0
    n_trials: int = 24
    validation_days: float = 28.0
    k: int = 10
    metric: str = "ndcg"
    seed: int = 42
    relevant_events: tuple[str, ...] | None = None
    max_users: int | None = 2000
    search_fusion: bool = True
    search_knn: bool = True
    search_svd: bool = True
    search_ease: bool | None = None
    search_rp3beta: bool = True
    learned_fusion: bool = True
    select: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.budget_seconds, (int, float)) or not self.budget_seconds > 0:
            raise ConfigError(f"TuningConfig.budget_seconds must be > 0, got {self.budget_seconds!r}")
        if isinstance(self.n_trials, bool) or not isinstance(self.n_trials, int) or self.n_trials < 1:
            raise ConfigError(f"TuningConfig.n_trials must be a positive int, got {self.n_trials!r}")
        if not isinstance(self.validation_days, (int, float)) or not self.validation_days > 0:
            raise ConfigError(f"TuningConfig.validation_days must be > 0, got {self.validation_days!r}")
        if self.metric not in ("ndcg", "recall", "precision", "map", "hit_rate"):
            raise ConfigError(f"TuningConfig.metric must be an accuracy metric, got {self.metric!r}")
        if self.relevant_events is not None:
            object.__setattr__(self, "relevant_events", tuple(self.relevant_events))


@dataclass
class TuningResult:
    """The search record. ``params``: the best trial's values; ``knn`` /
    ``svd`` / ``weights``: the configuration they give; ``best_value`` and
    ``start_value``: validation ``metric@k`` of the best and of the starting
    configuration; ``trials``: one row per trial (number, value, seconds,
    params); ``validation``: the window (cut, end, users, relevant pairs)."""

    params: dict[str, Any]
    knn: KNNConfig
    svd: SVDConfig
    weights: FusionWeights
    best_value: float
    start_value: float
    trials: pd.DataFrame
    validation: dict[str, Any]
    config: TuningConfig
    seconds: float
    design_weights: FusionWeights = field(default_factory=FusionWeights)
    ease: Any = None
    learned_fusion: Any = None
    fusion_choice: dict[str, Any] | None = None
    rp3beta: Any = None
    searched_weights: FusionWeights | None = None

    def info(self) -> dict[str, Any]:
        """JSON-ready summary for ``model_info``."""
        return {
            "sampler": f"optuna TPESampler(seed={self.config.seed})",
            "budget_seconds": self.config.budget_seconds,
            "n_trials_cap": self.config.n_trials,
            "n_trials": len(self.trials),
            "seconds": round(self.seconds, 3),
            "metric": f"{self.config.metric}@{self.config.k}",
            "validation": self.validation,
            "start_value": self.start_value,
            "best_value": self.best_value,
            "best_params": self.params,
            "fusion_weights": self.weights.as_dict(),
            "searched_fusion_weights": (self.searched_weights or self.weights).as_dict(),
            "design_fusion_weights": self.design_weights.as_dict(),
            "knn": _plain(self.knn),
            "svd": _plain(self.svd),
            "collaborative": ("ease" if self.ease is not None else "rp3beta" if self.rp3beta is not None
                              else "pure_svd"),
            "ease": _plain(self.ease) if self.ease is not None else None,
            "rp3beta": _plain(self.rp3beta) if self.rp3beta is not None else None,
            "fusion": "learned" if self.learned_fusion is not None else "weighted",
            "fusion_choice": self.fusion_choice,
            "trials": self.trials.to_dict(orient="records"),
        }


def _plain(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


# -- the search space --------------------------------------------------------------------------------------------------
_HALF_LIVES = ("none", "7", "14", "30", "60", "120", "365")


def _half_life(value: str) -> float | None:
    return None if value == "none" else float(value)


def _label(half_life: float | None) -> str:
    if half_life is None:
        return "none"
    return min(_HALF_LIVES[1:], key=lambda h: abs(float(h) - half_life))


def start_params(knn: KNNConfig, svd: SVDConfig, weights: FusionWeights) -> dict[str, Any]:
    """The current configuration in the search space's coordinates (the first trial).
    Inputs that use the shared matrix are given as the nearest searched values."""
    train = knn.train_weighting or Weighting(30.0, "raw")
    profile = knn.profile_weighting or train
    sw = svd.weighting or Weighting(30.0, "raw")
    return {
        "knn_train_half_life": _label(train.half_life_days), "knn_train_repeats": train.repeats,
        "knn_train_scheme": train.scheme, "knn_profile_half_life": _label(profile.half_life_days),
        "knn_profile_repeats": profile.repeats, "knn_k": int(min(max(knn.k, 10), 400)),
        "knn_shrinkage": float(min(knn.shrinkage, 100.0)),
        "svd_n_factors": int(min(max(svd.n_factors, 8), 256)), "svd_half_life": _label(sw.half_life_days),
        "svd_repeats": sw.repeats,
        **{f"w_{s}": float(w) for s, w in weights.as_dict().items()},
    }


def apply_params(params: Mapping[str, Any], knn: KNNConfig, svd: SVDConfig,
                 weights: FusionWeights) -> tuple[KNNConfig, SVDConfig, FusionWeights]:
    """The configuration of a trial's ``params`` (keys missing: left as given)."""
    p = dict(params)
    if "knn_k" in p:
        train = Weighting(_half_life(p["knn_train_half_life"]), p["knn_train_repeats"], p["knn_train_scheme"])
        profile = Weighting(_half_life(p["knn_profile_half_life"]), p["knn_profile_repeats"], p["knn_train_scheme"])
        knn = dataclasses.replace(knn, k=int(p["knn_k"]), shrinkage=float(p["knn_shrinkage"]),
                                  train_weighting=train, profile_weighting=profile)
    if "svd_n_factors" in p:
        svd = dataclasses.replace(svd, n_factors=int(p["svd_n_factors"]),
                                  weighting=Weighting(_half_life(p["svd_half_life"]), p["svd_repeats"]))
    if "w_knn" in p:
        raw = np.array([float(p[f"w_{s}"]) for s in STRATEGIES])
        raw = raw / raw.sum() if raw.sum() > 0 else np.full(4, 0.25)
        raw = np.round(raw, 4)
        top = int(np.argmax(raw))
        raw[top] = round(1.0 - float(np.delete(raw, top).sum()), 10)  # sum 1 after rounding
        weights = FusionWeights(**dict(zip(STRATEGIES, (float(x) for x in raw), strict=True)))
    return knn, svd, weights


def ease_from_params(params: Mapping[str, Any]) -> Any:
    """The EASE settings of a trial whose collaborative slot is EASE, else None."""
    from recsys.models.ease import EASEConfig

    if params.get("collaborative") != "ease":
        return None
    return EASEConfig(l2=float(params["ease_l2"]), weighting=Weighting(_half_life(params["ease_half_life"]), "binary"))


def _slot_kind(config: Any) -> str:
    """``rp3beta`` or ``ease``: the component kind of a collaborative-slot configuration."""
    return "rp3beta" if type(config).__name__ == "RP3betaConfig" else "ease"


def _suggest(trial: Any, config: TuningConfig, n_items: int, n_users: int) -> dict[str, Any]:
    p: dict[str, Any] = {}
    if config.search_knn:
        p["knn_train_half_life"] = trial.suggest_categorical("knn_train_half_life", _HALF_LIVES)
        p["knn_train_repeats"] = trial.suggest_categorical("knn_train_repeats", ("raw", "log", "binary"))
        p["knn_train_scheme"] = trial.suggest_categorical("knn_train_scheme", ("none", "tfidf", "bm25"))
        p["knn_profile_half_life"] = trial.suggest_categorical("knn_profile_half_life", _HALF_LIVES)
        p["knn_profile_repeats"] = trial.suggest_categorical("knn_profile_repeats", ("raw", "log", "binary"))
        p["knn_k"] = trial.suggest_int("knn_k", 10, 400, log=True)
        p["knn_shrinkage"] = trial.suggest_float("knn_shrinkage", 0.0, 100.0)
    if config.search_svd:
        top = max(8, min(256, min(n_items, n_users) - 2))
        p["svd_n_factors"] = trial.suggest_int("svd_n_factors", min(8, top), top, log=True)
        p["svd_half_life"] = trial.suggest_categorical("svd_half_life", _HALF_LIVES)
        p["svd_repeats"] = trial.suggest_categorical("svd_repeats", ("raw", "log", "binary"))
    if config.search_fusion:
        for s in STRATEGIES:
            p[f"w_{s}"] = trial.suggest_float(f"w_{s}", 0.0, 1.0)
    return p


# -- scoring one configuration -----------------------------------------------------------------------------------------
class _Validation:
    """Fitted-once parts of the validation problem, and a cache of fitted components."""

    def __init__(self, dataset: Dataset, config: TuningConfig, content: Any, demographic: Any,
                 hybrid_config: Any) -> None:
        from recsys.evaluation.comparison import sample_users
        from recsys.evaluation.split import validation_split

        kinds = config.relevant_events or tuple(
            t for t in ("purchase", "cart") if t in set(dataset.events["event_type"].unique())) or ("purchase",)
        self.split = validation_split(dataset, config.validation_days, relevant_events=kinds)
        self.train = self.split.train
        self.users = sample_users(self.split.warm_users, config.max_users, config.seed)
        self.relevant = self.split.relevant[self.split.relevant["user_id"].isin(self.users)]
        self.interactions = Interactions.from_dataset(self.train)
        self.rows = self.interactions.user_index(self.users)
        self.config = config
        self.hybrid_config = hybrid_config
        self.fixed = {"content": content.fit(self.train, self.interactions),
                      "demographic": demographic.fit(self.train, self.interactions)}
        self._cache: dict[tuple[str, Any], Any] = {}

    def component(self, kind: str, config: Any) -> Any:
        from recsys.evaluation.comparison import PrecomputedScores
        from recsys.models.ease import EASE
        from recsys.models.knn import ItemKNN
        from recsys.models.svd import PureSVD

        key = (kind, config)
        if key not in self._cache:
            from recsys.models.rp3beta import RP3beta

            model = (ItemKNN(config) if kind == "knn" else PureSVD(config) if kind == "svd"
                     else RP3beta(config) if kind == "rp3beta" else EASE(config))
            model.fit(self.train, self.interactions)
            if len(self._cache) > 16:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = PrecomputedScores(model, np.unique(self.rows))
        return self._cache[key]

    def fixed_component(self, name: str) -> Any:
        from recsys.evaluation.comparison import PrecomputedScores

        key = (name, None)
        if key not in self._cache:
            self._cache[key] = PrecomputedScores(self.fixed[name], np.unique(self.rows))
        return self._cache[key]

    def score(self, knn: KNNConfig, svd: SVDConfig, weights: FusionWeights, collab: Any = None) -> float:
        """Mean validation ``metric@k`` of one configuration (:meth:`per_user`)."""
        return float(self.per_user(knn, svd, weights, collab).mean())

    def per_user(self, knn: KNNConfig, svd: SVDConfig, weights: FusionWeights, collab: Any = None) -> pd.Series:
        """Validation ``metric@k`` of one configuration per validation user (0 without a hit); ``collab``:
        an EASE or RP3beta configuration in the collaborative slot (None: PureSVD ``svd``)."""
        from recsys.models.hybrid import HybridRecommender

        w = weights.as_dict()
        parts = {}
        if w["knn"] > 0:
            parts["knn"] = self.component("knn", knn)
        if w["svd"] > 0:
            parts["svd"] = self.component(_slot_kind(collab), collab) if collab is not None else self.component("svd", svd)
        for name in ("content", "demographic"):
            if w[name] > 0:
                parts[name] = self.fixed_component(name)
        return self.metric_of(HybridRecommender.from_fitted(parts, weights, self.hybrid_config))

    def metric_of(self, model: Any) -> pd.Series:
        """``model``'s validation ``metric@k`` per validation user (0 without a hit)."""
        from recsys.evaluation import metrics as M

        recs = model.recommend(self.users, n=self.config.k, exclude_purchased=True)
        per_user = M.ranking_metrics_per_user(recs[["user_id", "product_id", "rank"]], self.relevant, self.config.k)
        return per_user[self.config.metric].reindex(pd.Index(self.users)).fillna(0.0)


def validation_score(dataset: Dataset, knn: KNNConfig, svd: SVDConfig, weights: FusionWeights,
                     config: TuningConfig | None = None, hybrid_config: Any = None) -> float:
    """Validation ``metric@k`` of one configuration (the tuner's objective)."""
    from recsys.models.content import ContentRecommender
    from recsys.models.demographic import DemographicRecommender
    from recsys.models.hybrid import HybridConfig

    config = config or TuningConfig()
    problem = _Validation(dataset, config, ContentRecommender(), DemographicRecommender(),
                          hybrid_config or HybridConfig())
    return problem.score(knn, svd, weights)


def tune(
    dataset: Dataset,
    config: TuningConfig | None = None,
    *,
    knn: KNNConfig | None = None,
    svd: SVDConfig | None = None,
    weights: FusionWeights | None = None,
    content: Any = None,
    demographic: Any = None,
    hybrid_config: Any = None,
    on_trial: Any = None,
) -> TuningResult:
    """Search the hybrid's settings on a validation window of ``dataset`` (see
    the module docstring); ``knn``/``svd``/``weights`` are the starting point
    (default: the configured defaults), ``content``/``demographic`` unfitted
    models used as they are (fitted once on the validation training data)."""
    optuna = import_quietly("optuna")

    from recsys.models.content import ContentRecommender
    from recsys.models.demographic import DemographicRecommender
    from recsys.models.hybrid import HybridConfig

    config = config or TuningConfig()
    knn, svd = knn or KNNConfig(), svd or SVDConfig()
    weights = weights or dataset.config.fusion
    started = time.perf_counter()
    if config.search_ease is None:
        from recsys.models.ease import SERVABLE_MAX_ITEMS

        config = dataclasses.replace(config, search_ease=dataset.n_products <= SERVABLE_MAX_ITEMS)
    problem = _Validation(dataset, config, content or ContentRecommender(), demographic or DemographicRecommender(),
                          hybrid_config or HybridConfig())
    n_users, n_items = problem.interactions.shape
    slot = None
    if config.search_ease or config.search_rp3beta:  # the slot first, each candidate alone (slot_search)
        from recsys.research.slot_search import choose_slot

        slot = choose_slot(problem, knn, svd, bool(config.search_ease), config.search_rp3beta)
        if slot["config"] is not None:
            config = dataclasses.replace(config, search_svd=False)  # PureSVD is not in the slot: nothing to tune
    collab = slot["config"] if slot else None

    def objective(trial: Any) -> float:
        t0 = time.perf_counter()
        params = _suggest(trial, config, n_items, n_users)
        k_cfg, s_cfg, w = apply_params(params, knn, svd, weights)
        value = problem.score(k_cfg, s_cfg, w, collab)
        trial.set_user_attr("seconds", time.perf_counter() - t0)
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    startup = max(3, min(10, config.n_trials // 3))  # Optuna's default 10 random trials, fewer for small caps
    sampler = optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=startup)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    first = {k: v for k, v in start_params(knn, svd, weights).items() if _searched(k, config)}
    study.enqueue_trial(first)
    if config.search_fusion:  # the corner uniform draws almost never reach: the collaborative slot alone
        study.enqueue_trial({**first, "w_knn": 0.0, "w_svd": 1.0, "w_content": 0.0, "w_demographic": 0.0})
    remaining = config.budget_seconds - (time.perf_counter() - started)
    callbacks = [lambda study, trial: on_trial(study, trial)] if on_trial is not None else None
    study.optimize(objective, n_trials=config.n_trials, timeout=max(remaining, 1e-3), gc_after_trial=False,
                   callbacks=callbacks)
    trials = pd.DataFrame([{"number": t.number, "value": t.value, "seconds": t.user_attrs.get("seconds"),
                            **t.params} for t in study.trials if t.value is not None])
    best = study.best_trial
    start_value = float(trials.iloc[0]["value"])
    best_knn, best_svd, best_w = apply_params(best.params, knn, svd, weights)
    split = problem.split
    validation = {"cut": str(split.cut), "end": str(split.end), "days": config.validation_days,
                  "users": len(problem.users), "relevant_pairs": len(problem.relevant),
                  "train_events": int(len(problem.train.events)), "max_event_time": str(dataset.events["timestamp"].max())}
    if slot is not None:
        validation["collaborative_slot"] = {k: v for k, v in slot.items() if k != "config"}
    return TuningResult(params={**best.params, **({"collaborative": slot["chosen"]} if slot else {})}, knn=best_knn,
                        svd=best_svd, weights=best_w, best_value=float(best.value), start_value=start_value,
                        trials=trials, validation=validation, config=config, seconds=time.perf_counter() - started,
                        design_weights=dataset.config.fusion, ease=collab if slot and slot["model"] == "ease" else None,
                        rp3beta=collab if slot and slot["model"] == "rp3beta" else None)


def _searched(name: str, config: TuningConfig) -> bool:
    if name.startswith("knn_"):
        return config.search_knn
    if name.startswith("svd_"):
        return config.search_svd
    return config.search_fusion if name.startswith("w_") else False


def budget_note(result: TuningResult) -> str:
    """One line: trials run, time used, start -> best validation metric."""
    c = result.config
    return (f"{len(result.trials)} trials in {result.seconds:.1f} s (budget {c.budget_seconds:g} s, cap {c.n_trials}); "
            f"validation {c.metric}@{c.k}: {result.start_value:.4f} -> {result.best_value:.4f}")


# -- the engine's hook and the configuration file ----------------------------------------------------------------------
def tune_configs(dataset: Dataset, engine_config: Any, weights: FusionWeights,
                 config: TuningConfig | None = None, on_trial: Any = None) -> TuningResult:
    """The search ``engine.train(dataset, tune=True)`` runs: from the engine's
    settings (``engine_config``: an :class:`~recsys.serving.engine_config.EngineConfig`,
    ``weights``) on a validation window of ``dataset`` (the data the engine is
    about to be trained on, nothing later), then, with ``config.select``,
    :func:`~recsys.research.selection.choose_served`; the engine applies the result. ``on_trial(study,
    trial)``: called after every trial (progress lines)."""
    from recsys.models.content import ContentRecommender
    from recsys.models.demographic import DemographicRecommender

    config = config or TuningConfig()
    cfg = engine_config
    result = tune(dataset, config, knn=cfg.realtime.knn, svd=cfg.batch.svd, weights=weights,
                  content=ContentRecommender(cfg.content), demographic=DemographicRecommender(cfg.realtime.fallback),
                  hybrid_config=cfg.hybrid, on_trial=on_trial)
    result.design_weights = dataset.config.fusion
    if config.select:
        from recsys.models.learned_fusion import LearnedFusionConfig
        from recsys.research.selection import choose_served

        tuned = dataclasses.replace(cfg, realtime=dataclasses.replace(cfg.realtime, knn=result.knn),
                                    batch=dataclasses.replace(cfg.batch, svd=result.svd), ease=result.ease,
                                    rp3beta=result.rp3beta)
        started = time.perf_counter()
        result.fusion_choice = choose_served(dataset, tuned, result.weights, weights, config)
        result.seconds += time.perf_counter() - started
        result.searched_weights, result.weights = result.weights, FusionWeights(**result.fusion_choice["weights"])
        if result.fusion_choice["chosen"] == "learned":
            result.learned_fusion = LearnedFusionConfig(seed=config.seed, validation_days=float(config.validation_days))
    return result


def _toml_table(value: Any) -> Any:
    """Dataclasses -> nested dicts for TOML: None left out (it means "the
    default"), tuples -> lists."""
    if dataclasses.is_dataclass(value):
        return {f.name: _toml_table(getattr(value, f.name)) for f in dataclasses.fields(value)
                if getattr(value, f.name) is not None}
    if isinstance(value, (list, tuple)):
        return [_toml_table(v) for v in value]
    if isinstance(value, dict):
        return {k: _toml_table(v) for k, v in value.items() if v is not None}
    return value


def tuned_document(result: TuningResult) -> dict[str, Any]:
    """The tuned settings as a configuration document (:mod:`recsys.config_file`
    format, so ``--config`` reads it): ``[fusion]`` (the
    :class:`~recsys.config.RecsysConfig` table) and ``[engine.realtime.knn]``,
    ``[engine.batch.svd]``, plus ``[engine.ease]`` / ``[engine.rp3beta]`` / ``[engine.learned_fusion]``
    when the search chose them (:class:`~recsys.serving.engine_config.EngineConfig`
    fields by name)."""
    engine: dict[str, Any] = {"realtime": {"knn": _toml_table(result.knn)}, "batch": {"svd": _toml_table(result.svd)}}
    if result.ease is not None:
        engine["ease"] = _toml_table(result.ease)
    if result.rp3beta is not None:
        engine["rp3beta"] = _toml_table(result.rp3beta)
    if result.learned_fusion is not None:
        engine["learned_fusion"] = _toml_table(result.learned_fusion)
    return {"fusion": result.weights.as_dict(), "engine": engine}


def write_tuned_config(result: TuningResult, path: str | Any) -> Any:
    """Write :func:`tuned_document` as TOML (``tomli_w``) to ``path`` and the
    search record (:meth:`TuningResult.info`) as JSON beside it (``<path>.search.json``)."""
    import json
    from pathlib import Path

    import tomli_w

    from recsys.serialization import jsonable

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(tuned_document(result)))
    path.with_suffix(".search.json").write_text(json.dumps(jsonable(result.info()), indent=2, sort_keys=True) + "\n")
    return path


def tune_main(args: Any) -> int:
    """``recsys tune --data DIR --budget SECONDS --out FILE.toml [--trials N] [--seed S]``."""
    from pathlib import Path

    from recsys.data.dataset import Dataset as _Dataset
    from recsys.runs.progress import Steps
    from recsys.serving.engine_config import EngineConfig

    steps = Steps("tune", enabled=not getattr(args, "quiet", False))
    with steps.step(f"load {args.data}"):
        dataset = _Dataset.load(Path(args.data))
    config = TuningConfig(budget_seconds=float(args.budget), n_trials=int(args.trials), seed=int(args.seed),
                          validation_days=float(args.validation_days))

    def on_trial(study: Any, trial: Any) -> None:
        value = float("nan") if trial.value is None else trial.value
        best = max((t.value for t in study.trials if t.value is not None), default=float("nan"))
        steps.line(f"trial {trial.number + 1}/{config.n_trials}: {value:.4f} in "
                   f"{trial.user_attrs.get('seconds', 0.0):.1f} s (best {best:.4f}; "
                   f"{time.perf_counter() - steps.started:.0f} of {config.budget_seconds:.0f} s budget)")

    with steps.step(f"search (at most {config.n_trials} trials, {config.budget_seconds:.0f} s)"):
        result = tune_configs(dataset, EngineConfig(), dataset.config.fusion, config, on_trial=on_trial)
    out = write_tuned_config(result, args.out)
    print(budget_note(result))
    if result.fusion_choice is not None:
        print(f"fusion: {result.fusion_choice}")
    print(f"fusion weights: tuned {result.weights.as_dict()} vs design {result.design_weights.as_dict()}")
    print(f"wrote {out} (the search record: {out.with_suffix('.search.json')})")
    return 0


def fit_hybrid_components(train: Dataset, knn: KNNConfig | None = None, svd: SVDConfig | None = None,
                          content: Any = None, demographic: Any = None,
                          interactions: Interactions | None = None, ease: Any = None,
                          rp3beta: Any = None) -> dict[str, Any]:
    """The four hybrid strategies fitted on ``train`` with the given settings
    (defaults: the configured ones; ``content``/``demographic``: unfitted
    models, or already fitted ones, which are used as they are; ``ease``: an
    :class:`~recsys.models.ease.EASEConfig` or ``rp3beta``: an :class:`~recsys.models.rp3beta.RP3betaConfig`
    serves the collaborative slot instead of PureSVD)."""
    from recsys.models.content import ContentRecommender
    from recsys.models.demographic import DemographicRecommender
    from recsys.models.ease import EASE
    from recsys.models.knn import ItemKNN
    from recsys.models.svd import PureSVD

    interactions = interactions or Interactions.from_dataset(train)
    content = content if content is not None else ContentRecommender()
    demographic = demographic if demographic is not None else DemographicRecommender()
    from recsys.models.rp3beta import RP3beta

    collaborative = (EASE(ease) if ease is not None else RP3beta(rp3beta) if rp3beta is not None
                     else PureSVD(svd or SVDConfig()))
    parts = {"knn": ItemKNN(knn or KNNConfig()), "svd": collaborative,
             "content": content, "demographic": demographic}
    for model in parts.values():
        if not hasattr(model, "interactions_"):
            model.fit(train, interactions)
    return parts
