"""The one facade with the design's operations, as a Python API returning plain dicts.

``RecommendationEngine(config)`` trains every stage on one ``Dataset`` and
answers the design's service operations (SPEC 'Operations'; the design's endpoint in
brackets), each returning a JSON-serialisable ``dict`` shaped like the design's
response:

=====================  ==========================================================
``train(dataset)``      fit Stages 1-3 [POST /train]
``model_info()``        what is trained, when, on which data hash, sizes, parameters [GET /model-info]
``realtime(u, n=5)``    Stage 1: k-NN, demographic fallback [POST /realtime]
``batch_process()``     Stage 2: SVD, segments, demand, seasonality [POST /batch-process]
``full(u, n=10)``       Stage 3: hybrid fusion + deals [POST /full]
``deals(u, k=5)``       deals only, rate limited [GET /deals/{user_id}]
``segments()``          the 8 segments and clustering info [GET /segments]
``demo_flow(u)``        one user through every stage [GET /demo-flow]
``recommend(...)``      many users at once, any strategy by name (evaluation)
``save`` / ``load``     versioned saves without pickle (:mod:`recsys.serving.engine_store`)
=====================  ==========================================================

What a service needs beyond them (it uses nothing else: no fitted
attribute, no batch or publish module): ``prepare_batch()`` /
``install_batch(p)`` (a Stage 2 version built in a worker thread, served by
one assignment), ``retrained_copy()``, ``batch_version``, ``data_hash``,
``is_trained``, ``knows_user(u)`` / ``knows_product(p)``, and the
``rate_limiter=`` argument of the deal paths (a limiter shared by every
worker); model directories: :mod:`recsys.serving.model_dir`.

Models are shared, never refitted twice: the Stage 1 real-time recommender's
item k-NN and demographic models are the hybrid's ``knn`` and ``demographic`` strategies; Stage 2's PureSVD
gives the deals their affinities and fills the hybrid's ``svd`` slot unless tuning chose RP3beta or EASE there
(``EngineConfig.rp3beta`` / ``.ease``, EASE where the catalogue fits); the content model gives "similar to viewed".

Stage 2 runs as the batch job of :mod:`recsys.stage2.job` (called from :mod:`recsys.serving.engine_batch`
only); the engine serves from the artifact set it published (into ``artifacts_dir``, or a temporary directory),
and :meth:`RecommendationEngine.reload_batch` picks up the latest complete version written by an external
``recsys batch`` run. Artifacts of other data (another content hash) are refused.

Timestamps: without ``now`` (notebooks, tests), ``timestamp`` and the deals'
validity start are the data set's ``as_of`` (ISO 8601, ``Z``), so every
answer is a deterministic function of the data and the configuration; with
``now`` (a service passes a UTC wall clock), both come from ``now()`` (the
season of the deals stays the data's). A request
answers from per-product arrays prepared at train time and the user's own
row: no work proportional to the number of users.

Authenticated-user rule (SPEC 'Safety rules'): every per-user operation takes
an optional ``requesting_user``; when given it must equal ``user_id``
(``PermissionError`` otherwise), so a service wrapper passes the
authenticated id and a user only ever sees their own data.

Concurrency: one engine may be shared by many threads. Request methods
(``realtime``, ``full``, ``deals``, ``recommend``, ...) read immutable
state: the Stage 1 live history as one snapshot per request
(:mod:`recsys.models.live_history`, copy-on-write) and Stages 2-3 as one
``_Serving`` reference. ``add_events`` writes through the real-time
model's lock (no event is ever lost); ``batch_process``/``reload_batch``
build the new Stage 2-3 state aside and publish it by one reference
assignment under the engine's lock. ``train`` replaces every model: run it
before serving (or train a new engine and swap it in).

Responses are plain JSON types (:func:`recsys.serialization.jsonable`).
Deal requests are counted per user by the ``rate_limiter`` a call passes
(default: the engine's :attr:`rate_limiter`, ``DealConfig``'s limit and window).
Past the per-user deal rate limit, ``full`` still answers its
recommendations, with ``"deals": []`` and ``"deals_retry_after_seconds"``;
``deals`` raises :class:`~recsys.deals.rate_limit.RateLimitExceeded`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import recsys
from recsys.config import DEFAULT_CONFIG, FusionWeights, RecsysConfig
from recsys.data.dataset import Dataset
from recsys.data.ids import check_requesting_user
from recsys.deals.candidates import CandidateBuilder
from recsys.deals.decision_log import DecisionSink, check_sink
from recsys.deals.experiment import ExperimentConfig, ExplorationConfig, VariantDeals, build_user_deals
from recsys.deals.generator import DealGenerator
from recsys.deals.rate_limit import RateLimiter, RateLimitExceeded
from recsys.deals.serving import ContentSimilarity, UserDeals
from recsys.interactions import Interactions
from recsys.models.base import Recommender, check_n
from recsys.models.content import ContentRecommender
from recsys.models.hybrid import STRATEGIES, check_weights
from recsys.models.live_history import LiveHistory
from recsys.models.realtime import RealtimeRecommender
from recsys.serialization import iso_utc, jsonable
from recsys.serving.catalogue import Catalogue
from recsys.serving.engine_batch import STAGE_NAMES, PreparedBatch, Stage2Jobs, _Serving
from recsys.serving.engine_config import EngineConfig, configs_from_json, configs_to_json
from recsys.serving.engine_live import LiveUpdates
from recsys.serving.engine_store import ENGINE_FORMAT_VERSION, EngineFormatError, read_state, write_state
from recsys.serving.engine_tuning import collaborative_choice, fit_served_extras, tune_configs, tuned_settings
from recsys.serving.stage2_state import Stage2State
from recsys.validation import InvalidRequest

__all__ = ["ENGINE_FORMAT_VERSION", "EngineConfig", "EngineFormatError", "PreparedBatch", "RecommendationEngine",
           "Stage2State", "jsonable"]

METHOD_NAMES = {"knn": "realtime_knn", "fallback": "demographic_fallback"}
_PROFILE_COLUMNS = ["age", "region", "age_group", "spending_tier", "price_sensitivity"]


class RecommendationEngine(Stage2Jobs, LiveUpdates):
    """The design's service as one object (see the module docstring).

    Parameters
    ----------
    config: the domain configuration (regions, age groups, tiers, fusion
        weights, deal bounds, rate limit).
    engine_config: component settings (:class:`EngineConfig`).
    weights: fusion weights overriding ``config.fusion`` (validated).
    artifacts_dir: where the Stage 2 job publishes its artifact versions
        (None: a temporary directory per run, nothing kept on disk).
    clock: the rate limiter's clock (seconds; injectable for tests).
    now: the wall clock of answers' ``timestamp`` and the deals' validity
        (``() -> pd.Timestamp``, e.g. UTC now); None: the data's ``as_of``.
    """

    def __init__(
        self,
        config: RecsysConfig = DEFAULT_CONFIG,
        engine_config: EngineConfig | None = None,
        weights: FusionWeights | Mapping[str, float] | None = None,
        artifacts_dir: str | Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], pd.Timestamp] | None = None,
    ) -> None:
        if not isinstance(config, RecsysConfig):
            raise ValueError(f"config must be a RecsysConfig, got {type(config).__name__}")
        if now is not None and not callable(now):
            raise ValueError(f"now must be a callable returning a pd.Timestamp, got {type(now).__name__}")
        self.config = config
        self.engine_config = engine_config or EngineConfig()
        self.weights = check_weights(weights) or config.fusion
        self.artifacts_dir = None if artifacts_dir is None else Path(artifacts_dir)
        self.clock = clock
        self.now = now
        self._lock = threading.RLock()
        #: the default limiter of deal requests; a call may pass its own (the service's)
        self.rate_limiter = RateLimiter.from_config(self.config.deals, self.clock)
        self._deal_generator = DealGenerator(self.config, rules=self.engine_config.deal_rules, rate_limiter=False)
        self.decision_sink: DecisionSink | None = None

    def use_rate_limiter(self, limiter: RateLimiter) -> None:
        """Count deal requests (``deals``, ``full`` with deals) of calls that pass
        no limiter of their own with ``limiter`` from now on."""
        self.rate_limiter = self._limiter(limiter)

    def _limiter(self, limiter: RateLimiter | None) -> RateLimiter:
        if limiter is None:
            return self.rate_limiter
        if not isinstance(limiter, RateLimiter):
            raise TypeError(f"rate_limiter must be a RateLimiter, got {type(limiter).__name__}")
        return limiter

    def retrained_copy(self, now: Callable[[], pd.Timestamp] | None = None, dataset: Dataset | None = None,
                       artifacts_dir: str | Path | None = None) -> RecommendationEngine:
        """A new engine with this one's configuration, clock (or ``now``) and artifact directory (or ``artifacts_dir``),
        trained on ``dataset`` (default: this one's data); slow: run it in a worker thread (this engine is only read)."""
        self._check_trained()
        new = type(self)(self.config, self.engine_config, self.weights, artifacts_dir or self.artifacts_dir,
                         self.clock, now if now is not None else self.now)
        new.rate_limiter, new.tuning_ = self.rate_limiter, getattr(self, "tuning_", None)  # the search's record
        new.train(self.dataset_ if dataset is None else dataset)
        return new

    def use_decision_sink(self, sink: DecisionSink | None) -> None:
        """Log every deal decision to ``sink`` from now on (:mod:`recsys.deals.decision_log`; None: stop)."""
        self.decision_sink = check_sink(sink)
        self._user_deals = self._deals_path() if "_user_deals" in self.__dict__ else None  # type: ignore[assignment]

    # ------------------------------------------------------------------ training
    def train(self, dataset: Dataset, tune: bool = False, tuning: Any = None) -> dict[str, Any]:
        """Fit every stage on ``dataset`` [POST /train]; returns :meth:`model_info`.
        ``tune=True``: search a validation window of ``dataset`` first (:func:`recsys.research.tuning.tune_configs`,
        ``tuning``: a ``TuningConfig``), then :meth:`apply_tuning`; ``fit_seconds`` excludes the search."""
        if not isinstance(dataset, Dataset):
            raise TypeError(f"train expects a recsys Dataset, got {type(dataset).__name__}")
        if dataset.config != self.config:
            dataset = Dataset(dataset.users, dataset.products, dataset.events, dataset.as_of,
                              dataset.personas, dict(dataset.meta), self.config)
        if dataset.n_users == 0 or dataset.n_products == 0 or len(dataset.events) == 0:
            raise ValueError(
                f"cannot train on an empty data set ({dataset.n_users} users, {dataset.n_products} products, "
                f"{len(dataset.events)} events)"
            )
        if tune:
            self.apply_tuning(tune_configs(dataset, self.engine_config, self.weights, tuning))
        with self._lock:
            started = time.perf_counter()
            self._use_data(dataset)
            artifacts = self._run_batch()  # Stage 2 first: its step temporaries do not stack on Stage 1's models
            self._fit_models(dataset)
            self._install_stage2(artifacts)
            self.fit_seconds_ = time.perf_counter() - started
            self._trained_at = self._now_iso()
        return self.model_info()

    def apply_tuning(self, result: Any) -> None:
        """Use a search's result (:class:`recsys.research.tuning.TuningResult`) for the next :meth:`train`."""
        self.engine_config, self.weights, self.tuning_ = tuned_settings(self.engine_config, result)

    def _use_data(self, dataset: Dataset) -> None:
        """The data set, its shared interactions (built once), content hash and timestamp."""
        self.dataset_, self.interactions_ = dataset, Interactions.from_dataset(dataset)
        self.data_hash_, self._timestamp = dataset.content_hash(), iso_utc(dataset.as_of)

    def _fit_models(self, dataset: Dataset, ranker: str | None = None) -> None:
        """Stage 1, the content model, the lookups (not Stage 2); ``ranker``: a saved fusion model, not retrained.
        Uses the data :meth:`_use_data` set when it is ``dataset`` already, else sets it first."""
        if self.__dict__.get("dataset_") is not dataset:
            self._use_data(dataset)
        cfg, interactions = self.engine_config, self.interactions_
        self.realtime_ = RealtimeRecommender(cfg.realtime).fit(dataset, interactions)
        builder = CandidateBuilder.freeing_index(dataset)  # the event index's last user: the rest runs without it
        self.content_ = ContentRecommender(cfg.content).fit(dataset, interactions)
        self.ease_, self.ranker_ = fit_served_extras(dataset, interactions, cfg, self.weights, ranker)  # None: unused
        # Stage 1's product columns -> catalogue columns (the same order today; mapped, not assumed)
        self._realtime_cols = interactions.product_index(self.realtime_.history_.product_ids)
        self._row_of = {u: i for i, u in enumerate(interactions.user_ids)}
        records = dataset.user_features().set_index("user_id")[_PROFILE_COLUMNS].to_dict(orient="index")
        self._user_records = records
        products = dataset.products
        self._catalogue = Catalogue(products)
        self._product_ids = frozenset(products["product_id"].tolist())
        self._user_deals = self._deals_path(builder)

    def _deals_path(self, builder: CandidateBuilder | None = None) -> UserDeals | VariantDeals:
        builder = builder or CandidateBuilder.freeing_index(self.dataset_)  # None: a fresh one, as trained
        base = UserDeals(builder, ContentSimilarity(self.content_), self._deal_generator,
                         self._user_records, self.engine_config.similar_seed_items, sink=self.decision_sink)
        return build_user_deals(base, self.config, self.engine_config.exploration, self.engine_config.experiment)

    def deal_policy(self, exploration: ExplorationConfig | None = None,
                    experiment: ExperimentConfig | None = None) -> tuple[ExplorationConfig, ExperimentConfig]:
        """The deals' logging policy and A/B experiment; given ones replace them from now on (kept in the save)."""
        self._check_trained()
        cfg = self.engine_config
        if exploration is not None or experiment is not None:
            self.engine_config = cfg = replace(cfg, exploration=exploration or cfg.exploration,
                                               experiment=cfg.experiment if experiment is None else experiment)
            self._user_deals = self._deals_path()
        return cfg.exploration, cfg.experiment

    # ------------------------------------------------------------------ checks
    @property
    def is_trained(self) -> bool:
        """True once trained (or loaded): every request method answers."""
        return "_serving" in self.__dict__

    def _check_trained(self) -> None:
        if not self.is_trained:
            raise RuntimeError("the engine is not trained: call train(dataset) first")

    @property
    def data_hash(self) -> str:
        """The content hash of the data set trained on."""
        self._check_trained()
        return self.data_hash_

    def knows_user(self, user_id: str, live: bool = False) -> bool:
        """``user_id`` is a user of the data set trained on; with ``live``, also one that live events
        (:meth:`add_events`) have added since."""
        self._check_trained()
        return user_id in self._user_records or (live and self.realtime_.history_.row_of(user_id) >= 0)

    def knows_product(self, product_id: str) -> bool:
        """``product_id`` is in the catalogue trained on."""
        self._check_trained()
        return product_id in self._product_ids

    _check_user = staticmethod(check_requesting_user)

    def _now(self) -> pd.Timestamp:
        """``now()`` as a naive UTC timestamp, or the data's ``as_of`` without a clock."""
        if self.now is None:
            return self.dataset_.as_of
        ts = pd.Timestamp(self.now())
        return ts.tz_convert(None) if ts.tzinfo is not None else ts  # to UTC, zone dropped

    def _now_iso(self) -> str:
        return self._timestamp if self.now is None else iso_utc(self._now())

    @property
    def timestamp(self) -> str:
        """The answers' timestamp: ``now()``, or the data set's ``as_of``."""
        self._check_trained()
        return self._now_iso()

    def _n(self, n: Any, name: str) -> int:
        """``n`` validated and bounded by the catalogue."""
        return check_n(n, name, limit=len(self._catalogue))

    # ------------------------------------------------------------------ products and users
    def user_profile(self, user_id: str) -> dict[str, Any]:
        """``region, age_group, spending_tier, price_sensitivity`` (+ ``age``,
        ``segment``, ``known_user``); None values for an unknown user."""
        self._check_trained()
        record = self._user_records.get(user_id)
        if record is None:
            return {"region": None, "age_group": None, "spending_tier": None, "price_sensitivity": None,
                    "age": None, "segment": None, "known_user": False}
        segment = self.stage2_.segments.get(user_id)
        return jsonable({
            "region": record["region"],
            "age_group": record["age_group"],
            "spending_tier": record["spending_tier"],
            "price_sensitivity": None if pd.isna(record["price_sensitivity"]) else round(record["price_sensitivity"], 4),
            "age": None if pd.isna(record["age"]) else float(record["age"]),
            "segment": None if segment is None else f"segment_{segment}",
            "known_user": True,
        })

    # ------------------------------------------------------------------ Stage 1
    def realtime(self, user_id: str, num_recommendations: int = 5, requesting_user: str | None = None) -> dict[str, Any]:
        """Stage 1 [POST /realtime]: item k-NN on the live history, the
        demographic fallback for unknown or history-less users; ``method``
        says which answered (``realtime_knn`` / ``demographic_fallback``)."""
        self._check_trained()
        uid = self._check_user(user_id, requesting_user)
        n = self._n(num_recommendations, "num_recommendations")
        top = self.realtime_.top_one(uid, n)
        method = METHOD_NAMES["fallback"] if top.fallback_only else METHOD_NAMES["knn"]
        return {
            "user_id": uid,
            "recommendations": self._realtime_records(uid, top, n),  # new products by content (engine_live)
            "method": method,
            "stage": STAGE_NAMES[1],
            "latency_target": self.engine_config.realtime_latency_target,
            "timestamp": self.timestamp,
        }

    def add_events(self, events: pd.DataFrame, users: pd.DataFrame | None = None) -> dict[str, Any]:
        """New events count at once in Stage 1 (no refit; safe from many
        threads); Stages 2-3 see them after the next :meth:`train`."""
        self._check_trained()
        update = self.realtime_.add_events(events, users)
        return {"events": int(update.events), "users_updated": int(update.users_updated),
                "new_users": [str(u) for u in update.new_users], "purchases": int(update.purchases)}

    # ------------------------------------------------------------------ Stage 2
    def segments(self) -> dict[str, Any]:
        """[GET /segments]: per segment ``size, avg_age, dominant_region,
        dominant_age_group, avg_price_sensitivity, dominant_spending_tier``
        and ``clustering_info``."""
        self._check_trained()
        return jsonable({**self.stage2_.artifacts.segment_summary, "timestamp": self.timestamp})

    # ------------------------------------------------------------------ Stage 3
    def full(
        self,
        user_id: str,
        num_recommendations: int = 10,
        include_deals: bool = True,
        requesting_user: str | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> dict[str, Any]:
        """Stage 3 [POST /full]: hybrid recommendations with per-strategy
        contributions, the user's deals, profile and ``strategy:
        "hybrid_enhanced"``. Past the deal rate limit: ``"deals": []`` and
        ``"deals_retry_after_seconds"`` (the recommendations still answer).
        ``rate_limiter``: counts the deal request (default: :attr:`rate_limiter`)."""
        self._check_trained()
        uid = self._check_user(user_id, requesting_user)
        return self.full_many([uid], num_recommendations, include_deals, rate_limiter)[0]

    def full_many(self, user_ids: Sequence[str], num_recommendations: int = 10, include_deals: bool = True,
                  rate_limiter: RateLimiter | None = None) -> list[dict[str, Any]]:
        """:meth:`full` for several users in one pass (one fused block, one
        deal block): answer ``i`` equals ``full(user_ids[i], ...)``, each user
        counting one deal request with ``rate_limiter``. The service batches concurrent requests
        through it (:mod:`recsys.service.batching`)."""
        self._check_trained()
        uids = [self._check_user(u, None) for u in user_ids]
        n = self._n(num_recommendations, "num_recommendations")
        limiter = self._limiter(rate_limiter)
        serving = self._serving
        rows = np.array([self._row_of.get(u, -1) for u in uids], dtype=np.int64)
        top = serving.hybrid.fuse_rows(rows, n)
        cuts = np.searchsorted(top.row, np.arange(len(uids) + 1))  # entries are ordered by (row, rank)
        timestamp = self.timestamp
        affinity = top.component_scores.get("svd") if serving.hybrid.components_.get("svd") is serving.stage2.svd else None
        deals = self._deals_many(serving, uids, rows, None, limiter, affinity) if include_deals else []
        answers = []
        for i, uid in enumerate(uids):
            a, b = cuts[i], cuts[i + 1]
            recommendations = self._catalogue.records(top.col[a:b], top.score[a:b], top.reason[a:b].tolist())
            for record, parts in zip(recommendations, top.contributions[a:b].tolist(), strict=True):
                record["contributions"] = {s: round(v, 6) for s, v in zip(STRATEGIES, parts, strict=True)}
            out: dict[str, Any] = {
                "user_id": uid, "recommendations": self._full_records(uid, recommendations, n),  # + new products
                "deals": [],
                "user_profile": self.user_profile(uid),
                "strategy": "hybrid_enhanced",
                "fusion_weights": {s: round(float(w), 6) for s, w in zip(STRATEGIES, top.weights[i], strict=True)},
                "timestamp": timestamp,
            }
            if include_deals:
                result = deals[i]
                if isinstance(result, RateLimitExceeded):
                    out["deals_note"] = str(result)
                    out["deals_retry_after_seconds"] = float(result.retry_after)
                else:
                    out["deals"] = result["deals"]
                    out["deals_note"] = result["note"]
            answers.append(out)
        return answers

    def deals(self, user_id: str, num_deals: int = 5, requesting_user: str | None = None,
              rate_limiter: RateLimiter | None = None) -> dict[str, Any]:
        """Deals only [GET /deals/{user_id}?num_deals=]: ``num_deals`` in
        ``1..DealConfig.max_deals``; rate limited per user by ``rate_limiter`` (default:
        :attr:`rate_limiter`; :class:`~recsys.deals.rate_limit.RateLimitExceeded` says when to retry)."""
        self._check_trained()
        uid = self._check_user(user_id, requesting_user)
        (result,) = self.deals_many([uid], num_deals, rate_limiter)
        if isinstance(result, RateLimitExceeded):
            raise result.renewed()
        return result

    def deals_many(self, user_ids: Sequence[str], num_deals: int = 5,
                   rate_limiter: RateLimiter | None = None) -> list[dict[str, Any] | RateLimitExceeded]:
        """:meth:`deals` for several users in one pass: answer ``i`` is
        ``deals(user_ids[i], num_deals)``, or the
        :class:`~recsys.deals.rate_limit.RateLimitExceeded` that call would raise."""
        self._check_trained()
        uids = [self._check_user(u, None) for u in user_ids]
        num_deals = self._deal_generator.check_num_deals(num_deals)
        limiter = self._limiter(rate_limiter)
        rows = np.array([self._row_of.get(u, -1) for u in uids], dtype=np.int64)
        timestamp = self.timestamp
        return [
            result if isinstance(result, RateLimitExceeded) else
            {"user_id": uid, "deals": result["deals"], "num_deals": len(result["deals"]), "requested": num_deals,
             "note": result["note"], "season": result["season"], "timestamp": timestamp}
            for uid, result in zip(uids, self._deals_many(self._serving, uids, rows, num_deals, limiter),
                                   strict=True)
        ]

    def _deals_many(self, serving: _Serving, user_ids: list[str], rows: np.ndarray, num_deals: int | None,
                    limiter: RateLimiter,
                    svd_scores: np.ndarray | None = None) -> list[dict[str, Any] | RateLimitExceeded]:
        """The users' deals (:meth:`UserDeals.answer_many <recsys.deals.serving.UserDeals.answer_many>`),
        fed with their Stage 2 affinities (none without history; ``svd_scores``:
        already computed by the hybrid for these rows)."""
        history = serving.hybrid.has_history(rows)
        affinities: list[np.ndarray | None] = [None] * len(user_ids)
        if history.any():
            with_history = np.flatnonzero(history)
            scores = svd_scores[with_history] if svd_scores is not None else \
                serving.stage2.svd.score_users(rows[with_history])
            for j, i in enumerate(with_history):
                affinities[i] = scores[j]
        season = self.config.seasons.season_of(self.dataset_.as_of.month)
        return self._user_deals.answer_many(user_ids, affinities, serving.stage2.demand, self._now(), num_deals, season,
                                            limiter, serving.stage2.segments, self.__dict__.get("_new_products"))

    # ------------------------------------------------------------------ many users
    def strategies(self) -> dict[str, Recommender]:
        """The fitted strategies by name (shared objects, not copies)."""
        self._check_trained()
        serving = self._serving
        return {"hybrid": serving.hybrid, "realtime": self.realtime_, "knn": self.realtime_.knn_, "svd": serving.stage2.svd,
                "content": self.content_, "demographic": self.realtime_.fallback_, **({self.ease_.name: self.ease_} if self.ease_ else {})}

    def recommend(self, user_ids: Sequence[str] | str, n: int = 10, strategy: str = "hybrid",
                  exclude_purchased: bool = True) -> pd.DataFrame:
        """Top-``n`` for many users at once with any strategy by name
        (:meth:`strategies`): the evaluation entry point."""
        models = self.strategies()
        if strategy not in models:
            raise InvalidRequest(f"unknown strategy {strategy!r}; expected one of {sorted(models)}")
        return models[strategy].recommend(user_ids, self._n(n, "n"), exclude_purchased)

    # ------------------------------------------------------------------ info and demo
    def model_info(self) -> dict[str, Any]:
        """[GET /model-info]: what is trained, when, on which data, sizes and parameters."""
        if "_serving" not in self.__dict__:
            return {"trained": False, "format_version": ENGINE_FORMAT_VERSION}
        ds, inter, serving = self.dataset_, self.interactions_, self._serving
        return jsonable({
            "trained": True,
            "trained_at": self._trained_at,
            "data_hash": self.data_hash_,
            "data_meta": {k: v for k, v in ds.meta.items() if isinstance(v, (str, int, float, bool))},
            "format_version": ENGINE_FORMAT_VERSION,
            "recsys_version": recsys.__version__,
            "sizes": {
                "users": ds.n_users, "products": ds.n_products, "events": len(ds.events),
                "interactions_nnz": int(inter.matrix.nnz), "content_vocabulary": self.content_.vocabulary_size_,
                "knn_neighbour_entries": self.realtime_.knn_.neighbour_entries(),
            },
            "models": {
                "realtime": {"class": type(self.realtime_).__name__, "neighbours": self.realtime_.config.neighbours,
                             "k": self.realtime_.config.knn.k, "min_history": self.realtime_.config.min_history},
                "content": {"class": "ContentRecommender", **self.content_.config.__dict__},
                "stage2": serving.stage2.info(), "collaborative": collaborative_choice(self.engine_config, ds.n_products),
                "hybrid": serving.hybrid.describe(),
            },
            "fit_seconds": round(getattr(self, "fit_seconds_", float("nan")), 3),
            "tuning": getattr(self, "tuning_", None), "training_data": self.training_data(),
        })

    def demo_flow(self, user_id: str | None = None, rate_limiter: RateLimiter | None = None) -> dict[str, Any]:
        """[GET /demo-flow]: one user (default: ``user_0`` if present, else the
        first user) through Stage 1, Stage 2 and Stage 3. Counts as one deal
        request for the rate limit."""
        self._check_trained()
        if user_id is None:
            user_id = "user_0" if "user_0" in self._row_of else str(self.interactions_.user_ids[0])
        uid = self._check_user(user_id, None)
        row = self._row_of.get(uid, -1)
        stage2: dict[str, Any] = {"stage": STAGE_NAMES[2], "segment": self.user_profile(uid)["segment"]}
        if row >= 0:
            serving = self._serving
            affinity = serving.stage2.svd.score_users(np.array([row]))[0]
            bought = self.interactions_.purchased[row].toarray().ravel()
            order = [c for c in np.argsort(-affinity, kind="stable") if not bought[c]][:5]
            stage2["top_affinity_not_bought"] = [
                {"product_id": str(self._catalogue.product_id[c]), "category": str(self._catalogue.category[c]),
                 "affinity": round(float(affinity[c]), 6), "demand_score": round(float(serving.stage2.demand[c]), 4)}
                for c in order
            ]
        history = int(np.diff(self.interactions_.matrix.indptr)[row]) if row >= 0 else 0
        return jsonable({
            "user_id": uid,
            "user_profile": self.user_profile(uid),
            "history_products": history,
            "stages": {
                "stage_1": self.realtime(uid, 5),
                "stage_2": stage2,
                "stage_3": self.full(uid, 10, include_deals=True, rate_limiter=rate_limiter),
            },
            "timestamp": self.timestamp,
        })

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Publish a save under directory ``path`` (a new version, switched
        atomically; the previous save stays loadable if this one fails).
        No pickle: see :mod:`recsys.serving.engine_store` for the layout."""
        self._check_trained()
        fit = getattr(self, "fit_seconds_", None)
        info = {"recsys_version": recsys.__version__, "data_hash": self.data_hash_, "as_of": self._timestamp,
                "trained_at": self._trained_at, "fit_seconds": fit if fit is not None and np.isfinite(fit) else None,
                "tuning": jsonable(getattr(self, "tuning_", None))}
        return write_state(path, config_json=configs_to_json(self.config, self.engine_config, self.weights), dataset=self.dataset_,
                           artifacts=self.stage2_.artifacts, history=self.realtime_.history_.snapshot(),
                           new_user_segments=self.realtime_.new_user_segment_, info=info, ranker=self.ranker_)

    @classmethod
    def load(cls, path: str | Path, clock: Callable[[], float] = time.monotonic,
             now: Callable[[], pd.Timestamp] | None = None,
             artifacts_dir: str | Path | None = None) -> RecommendationEngine:
        """Read the current save under ``path`` (checked against its manifest
        before anything is read; :class:`EngineFormatError` otherwise). Stage 1
        and the content model are refitted from the saved data (deterministic),
        the rest restored as saved."""

        configs: list[Any] = []

        def recsys_config(config_json: dict[str, Any]) -> RecsysConfig:
            try:  # replaced, not extended: read_state calls this again when a load races a save and retries
                configs[:] = configs_from_json(config_json)
            except (KeyError, TypeError, ValueError) as err:
                raise EngineFormatError(f"{path}: config.json does not hold valid configurations ({err})") from None
            return configs[0]

        stored = read_state(path, recsys_config)
        _, engine_config, weights = configs
        engine = cls(stored.dataset.config, engine_config, weights, artifacts_dir, clock, now)
        with engine._lock:
            engine._fit_models(stored.dataset, stored.ranker)
            fitted = engine.realtime_.history_
            history = stored.history
            n_fitted = len(engine.interactions_.user_ids)
            if history.n_fitted != n_fitted or not history.base_ids[:n_fitted].equals(
                    pd.Index(engine.interactions_.user_ids, dtype=object)):
                raise EngineFormatError(f"{path}: the live history does not extend the saved data's users")
            history = replace(history, base_ids=history.base_ids.rename(engine.interactions_.user_ids.name))
            engine.realtime_.history_ = LiveHistory.from_snapshot(history, fitted.product_ids, fitted.weights,
                                                                  fitted.as_of, fitted.compact_threshold)
            engine.realtime_.new_user_segment_ = stored.new_user_segments
            engine._install_stage2(stored.artifacts)
            engine._trained_at = str(stored.manifest.get("trained_at", engine._timestamp))
            fit, engine.tuning_ = stored.manifest.get("fit_seconds"), stored.manifest.get("tuning")
            engine.fit_seconds_ = float("nan") if fit is None else float(fit)
        return engine
