"""The one facade with the seed's operations, as a Python API returning plain dicts.

``RecommendationEngine(config)`` trains every stage on one ``Dataset`` and
answers the seed's service operations (SPEC 'Operations'; seed endpoint in
brackets), each returning a JSON-serialisable ``dict`` shaped like the seed's
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
``save`` / ``load``     a directory with a manifest (format version, data hash)
=====================  ==========================================================

Models are shared, never refitted twice: the Stage 1 real-time recommender's
item k-NN and demographic models are the hybrid's ``knn`` and
``demographic`` strategies; Stage 2's PureSVD is its ``svd`` strategy and
gives the deals their affinities; the content model gives "similar to viewed".

Stage 2 runs as the batch job of :mod:`recsys.batch` (``train`` and
``batch_process`` call :func:`~recsys.batch.run_batch`); the engine serves
from the artifact set it published (into ``artifacts_dir``, or a temporary
directory), and :meth:`RecommendationEngine.reload_batch` picks up the latest
complete version written by an external ``recsys batch`` run. Artifacts of
other data (another content hash) are refused.

Timestamps are the data set's ``as_of`` (ISO 8601, ``Z``), so every answer
is a deterministic function of the data and the configuration. A request
answers from per-product arrays prepared at train time and the user's own
row: no work proportional to the number of users.

Authenticated-user rule (SPEC 'Safety rules'): every per-user operation takes
an optional ``requesting_user``; when given it must equal ``user_id``
(``PermissionError`` otherwise), so a service wrapper passes the
authenticated id and a user only ever sees their own data.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import recsys
from recsys.batch import BatchArtifacts, BatchConfig, load_latest, run_batch
from recsys.config import DEFAULT_CONFIG, FusionWeights, RecsysConfig
from recsys.data.dataset import Dataset
from recsys.deals.candidates import CandidateBuilder, DealRules
from recsys.deals.generator import DealGenerator
from recsys.deals.rate_limit import RateLimiter
from recsys.interactions import Interactions
from recsys.models.base import Recommender, check_n, check_user_ids
from recsys.models.content import ContentConfig, ContentRecommender
from recsys.models.hybrid import STRATEGIES, HybridConfig, HybridRecommender, check_weights
from recsys.models.realtime import FALLBACK_METHOD, RealtimeConfig, RealtimeRecommender
from recsys.models.svd import PureSVD, SVDConfig

__all__ = ["ENGINE_FORMAT_VERSION", "EngineConfig", "EngineFormatError", "RecommendationEngine", "Stage2State", "jsonable"]

ENGINE_FORMAT_VERSION = 2
"""Bumped whenever the saved layout or the pickled state changes incompatibly
(2: DealRules pickles itself; the engine no longer stores its fields apart)."""

STAGE_NAMES = {
    1: "Stage 1: Real-time Scoring",
    2: "Stage 2: Batch Processing",
    3: "Stage 3: Hybrid Enrichment",
}
METHOD_NAMES = {"knn": "realtime_knn", "fallback": "demographic_fallback"}


class EngineFormatError(ValueError):
    """A saved engine cannot be read: wrong format version, or corrupt."""


@dataclass
class Stage2State:
    """The installed Stage 2 artifact set, adapted for serving: the PureSVD
    strategy rebuilt from the stored factors (aligned to the engine's
    catalogue and users), demand scores in catalogue order, and each user's
    segment."""

    artifacts: BatchArtifacts
    svd: PureSVD
    demand: np.ndarray
    segments: dict[str, int]

    @classmethod
    def from_artifacts(cls, artifacts: BatchArtifacts, dataset: Dataset, interactions: Interactions,
                       data_hash: str) -> Stage2State:
        """Adapter from :class:`~recsys.batch.BatchArtifacts`; refuses
        artifacts computed on other data (their data hash differs)."""
        if artifacts.data_hash != data_hash:
            raise ValueError(
                f"batch version {artifacts.version} was computed on data {artifacts.data_hash[:12]}..., "
                f"the engine is trained on {data_hash[:12]}...: run batch_process() or retrain"
            )
        users = artifacts.user_factors.reindex(interactions.user_ids)
        items = artifacts.item_factors.reindex(interactions.product_ids)
        demand = artifacts.demand_scores.reindex(interactions.product_ids)
        if users.isna().any().any() or items.isna().any().any() or demand.isna().any():
            raise ValueError(f"batch version {artifacts.version} does not cover every user and product")
        svd_config = artifacts.manifest.get("config", {}).get("svd", {})
        svd = PureSVD(SVDConfig(**svd_config) if svd_config else SVDConfig(n_factors=items.shape[1]))
        svd.dataset_, svd.interactions_ = dataset, interactions
        svd.user_factors_ = users.to_numpy(dtype=np.float64)
        svd.item_factors_ = np.ascontiguousarray(items.to_numpy(dtype=np.float64))
        svd.singular_values_ = np.asarray(artifacts.singular_values, dtype=np.float64)
        svd.mean_user_factors_ = artifacts.mean_user_factors
        svd.explained_energy_ = float(artifacts.manifest.get("metrics", {}).get("svd_explained_energy", float("nan")))
        segments = dict(zip(artifacts.segments["user_id"], artifacts.segments["segment"].astype(int), strict=True))
        return cls(artifacts, svd, demand.to_numpy(dtype=np.float64), segments)

    def info(self) -> dict[str, Any]:
        manifest = self.artifacts.manifest
        return {
            "version": self.artifacts.version,
            "as_of": _iso(pd.Timestamp(manifest["as_of"])),
            "data_hash": self.artifacts.data_hash,
            "run_seconds": manifest.get("run", {}).get("seconds"),
            "metrics": manifest.get("metrics", {}),
        }


@dataclass(frozen=True)
class EngineConfig:
    """Component settings of the engine (the domain tables live in
    :class:`~recsys.config.RecsysConfig`). ``similar_seed_items``: how many
    of the user's most-viewed products define "similar to viewed" deals."""

    realtime: RealtimeConfig = field(default_factory=RealtimeConfig)
    content: ContentConfig = field(default_factory=ContentConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    hybrid: HybridConfig = field(default_factory=HybridConfig)
    deal_rules: DealRules = field(default_factory=DealRules)
    similar_seed_items: int = 5
    realtime_latency_target: str = "< 100ms"

    def __post_init__(self) -> None:
        k = self.similar_seed_items
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"EngineConfig.similar_seed_items must be an int >= 1, got {k!r}")


class _ContentSimilarity:
    """Adapter: the deal builder's ``item_similarity`` (it reads
    ``shape`` and ``[rows]``) as content cosine rows computed on demand, so
    no products x products matrix is ever stored."""

    def __init__(self, content: ContentRecommender) -> None:
        self.content = content
        n = content.item_vectors_.shape[0]
        self.shape = (n, n)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        x = self.content.item_vectors_  # CSR, unit rows: cosine = dot product
        seeds = x[np.atleast_1d(np.asarray(rows))].toarray()
        return np.asarray(x @ seeds.T).T  # one sparse x dense product, (len(rows), products)


def _iso(ts: pd.Timestamp) -> str:
    """``2024-01-15T10:30:00Z`` (naive timestamps are taken as UTC)."""
    ts = pd.Timestamp(ts)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def jsonable(value: Any, digits: int | None = None) -> Any:
    """Plain Python for JSON: numpy scalars unwrapped, NaN -> None, tuples ->
    lists; floats rounded to ``digits`` if given (for display only: the
    engine's own answers are not rounded beyond their scores)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, digits) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v, digits) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return round(value, digits) if digits is not None else value
    if isinstance(value, pd.Timestamp):
        return _iso(value)
    return value


class RecommendationEngine:
    """The seed's service as one object (see the module docstring).

    Parameters
    ----------
    config: the domain configuration (regions, age groups, tiers, fusion
        weights, deal bounds, rate limit).
    engine_config: component settings (:class:`EngineConfig`).
    weights: fusion weights overriding ``config.fusion`` (validated).
    artifacts_dir: where the Stage 2 job publishes its artifact versions
        (None: a temporary directory per run, nothing kept on disk).
    clock: the rate limiter's clock (seconds; injectable for tests).
    """

    def __init__(
        self,
        config: RecsysConfig = DEFAULT_CONFIG,
        engine_config: EngineConfig | None = None,
        weights: FusionWeights | Mapping[str, float] | None = None,
        artifacts_dir: str | Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(config, RecsysConfig):
            raise ValueError(f"config must be a RecsysConfig, got {type(config).__name__}")
        self.config = config
        self.engine_config = engine_config or EngineConfig()
        self.weights = check_weights(weights) or config.fusion
        self.artifacts_dir = None if artifacts_dir is None else Path(artifacts_dir)
        self.clock = clock
        self._deal_generator = self._make_deal_generator()

    # ------------------------------------------------------------------ training
    def train(self, dataset: Dataset, tune: bool = False, tuning: Any = None) -> dict[str, Any]:
        """Fit every stage on ``dataset`` [POST /train]; returns :meth:`model_info`.
        ``tune=True``: first search the k-NN, PureSVD and fusion settings on a
        validation window cut from ``dataset`` itself (:func:`recsys.tuning.tune_engine`;
        ``tuning``: a :class:`recsys.tuning.TuningConfig`)."""
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
            from recsys.tuning import tune_engine

            tune_engine(self, dataset, tuning)
        cfg = self.engine_config
        started = time.perf_counter()
        interactions = Interactions.from_dataset(dataset)
        self.dataset_ = dataset
        self.interactions_ = interactions
        self.data_hash_ = dataset.content_hash()
        self._timestamp = _iso(dataset.as_of)
        self.realtime_ = RealtimeRecommender(cfg.realtime).fit(dataset, interactions)
        self.content_ = ContentRecommender(cfg.content).fit(dataset, interactions)
        self._prepare_lookups(dataset)
        self._install_stage2(self._run_batch())
        self.fit_seconds_ = time.perf_counter() - started
        return self.model_info()

    def _prepare_lookups(self, dataset: Dataset) -> None:
        """Per-user and per-product arrays for the single-user request path."""
        users = dataset.user_features()
        self._row_of = {u: i for i, u in enumerate(self.interactions_.user_ids)}
        self._user_records = users.set_index("user_id")[
            ["age", "region", "age_group", "spending_tier", "price_sensitivity"]
        ].to_dict(orient="index")
        products = dataset.products
        self._product_id = products["product_id"].to_numpy(dtype=object)
        self._product_name = products["name"].to_numpy(dtype=object)
        self._product_category = products["category"].to_numpy(dtype=object)
        self._product_price = products["price"].to_numpy(dtype=np.float64)
        self._candidate_builder = CandidateBuilder(dataset)
        self._similarity = _ContentSimilarity(self.content_)

    def _run_batch(self) -> BatchArtifacts:
        """Run the Stage 2 job (:func:`recsys.batch.run_batch`): into
        ``artifacts_dir`` as a new published version, or, without one, into a
        temporary directory that is removed once the artifacts are in memory."""
        if self.artifacts_dir is not None:
            return run_batch(self.dataset_, self.artifacts_dir, self.engine_config.batch)
        with tempfile.TemporaryDirectory(prefix="recsys-batch-") as tmp:
            return run_batch(self.dataset_, tmp, self.engine_config.batch)

    def _install_stage2(self, artifacts: BatchArtifacts) -> None:
        """Serve from a (new) artifact set: rebuild the hybrid on its SVD."""
        stage2 = Stage2State.from_artifacts(artifacts, self.dataset_, self.interactions_, self.data_hash_)
        self.stage2_ = stage2
        self._demand = stage2.demand
        components: dict[str, Recommender] = {
            "knn": self.realtime_.knn_, "svd": stage2.svd, "content": self.content_,
            "demographic": self.realtime_.fallback_,
        }
        self.hybrid_ = HybridRecommender.from_fitted(components, self.weights, self.engine_config.hybrid)

    def reload_batch(self) -> dict[str, Any]:
        """Read the latest complete artifact set from ``artifacts_dir`` (e.g.
        written by an hourly ``recsys batch`` run) and serve from it."""
        self._check_trained()
        if self.artifacts_dir is None:
            raise ValueError("reload_batch needs an engine with artifacts_dir set")
        self._install_stage2(load_latest(self.artifacts_dir))
        return jsonable(self.stage2_.info())

    def _make_deal_generator(self) -> DealGenerator:
        limiter = RateLimiter.from_config(self.config.deals, self.clock)
        return DealGenerator(self.config, rules=self.engine_config.deal_rules, rate_limiter=limiter)

    # ------------------------------------------------------------------ checks
    def _check_trained(self) -> None:
        if not hasattr(self, "hybrid_"):
            raise RuntimeError("the engine is not trained: call train(dataset) first")

    @staticmethod
    def _check_user(user_id: Any, requesting_user: str | None) -> str:
        if not isinstance(user_id, str):
            raise ValueError(f"user_id must be a string, got {type(user_id).__name__} {user_id!r}")
        (uid,) = check_user_ids([user_id])
        if requesting_user is not None and requesting_user != uid:
            raise PermissionError(
                f"user {requesting_user!r} may only see their own recommendations and deals, not {uid!r}"
            )
        return uid

    @property
    def timestamp(self) -> str:
        """The answers' timestamp: the data set's ``as_of``."""
        self._check_trained()
        return self._timestamp

    # ------------------------------------------------------------------ products and users
    def _product_records(self, cols: np.ndarray, scores: np.ndarray, reasons: Sequence[str]) -> list[dict[str, Any]]:
        return [
            {
                "product_id": str(self._product_id[c]),
                "name": str(self._product_name[c]),
                "category": str(self._product_category[c]),
                "price": float(self._product_price[c]),
                "score": round(float(s), 6),
                "reason": str(r),
            }
            for c, s, r in zip(cols.tolist(), scores.tolist(), reasons, strict=True)
        ]

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
        n = check_n(num_recommendations, "num_recommendations")
        frame = self.realtime_.recommend_one(uid, n)
        cols = self.interactions_.product_index(frame["product_id"].to_numpy())
        methods = set(frame["method"])
        method = METHOD_NAMES["fallback"] if methods == {FALLBACK_METHOD} else METHOD_NAMES["knn"]
        return {
            "user_id": uid,
            "recommendations": self._product_records(cols, frame["score"].to_numpy(), frame["reason"].tolist()),
            "method": method,
            "stage": STAGE_NAMES[1],
            "latency_target": self.engine_config.realtime_latency_target,
            "timestamp": self.timestamp,
        }

    def add_events(self, events: pd.DataFrame, users: pd.DataFrame | None = None) -> dict[str, Any]:
        """New events count at once in Stage 1 (no refit); Stages 2-3 see
        them after the next :meth:`train`."""
        self._check_trained()
        update = self.realtime_.add_events(events, users)
        return {"events": update.events, "users_updated": update.users_updated,
                "new_users": list(update.new_users), "purchases": update.purchases}

    # ------------------------------------------------------------------ Stage 2
    def batch_process(self) -> dict[str, Any]:
        """Stage 2 [POST /batch-process]: run the batch job (SVD, segments,
        demand, seasonal factors; published atomically when ``artifacts_dir``
        is set), serve from the new artifact set, and summarise it."""
        self._check_trained()
        self._install_stage2(self._run_batch())
        info = self.stage2_.info()
        return jsonable({
            "status": "completed",
            "stage": STAGE_NAMES[2],
            "artifacts": {k: info[k] for k in ("version", "as_of", "data_hash")},
            "n_segments": len(self.stage2_.artifacts.segment_summary.get("user_segments", {})),
            "metrics": info["metrics"],
            "duration_seconds": info["run_seconds"],
            "timestamp": self.timestamp,
        })

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
    ) -> dict[str, Any]:
        """Stage 3 [POST /full]: hybrid recommendations with per-strategy
        contributions, the user's deals, profile and ``strategy:
        "hybrid_enhanced"``."""
        self._check_trained()
        uid = self._check_user(user_id, requesting_user)
        n = check_n(num_recommendations, "num_recommendations")
        row = self._row_of.get(uid, -1)
        top = self.hybrid_.fuse_rows(np.array([row], dtype=np.int64), n)
        recommendations = self._product_records(top.col, top.score, top.reason.tolist())
        for record, parts in zip(recommendations, top.contributions.tolist(), strict=True):
            record["contributions"] = {s: round(v, 6) for s, v in zip(STRATEGIES, parts, strict=True)}
        out: dict[str, Any] = {
            "user_id": uid,
            "recommendations": recommendations,
            "deals": [],
            "user_profile": self.user_profile(uid),
            "strategy": "hybrid_enhanced",
            "fusion_weights": {s: round(float(w), 6) for s, w in zip(STRATEGIES, top.weights[0], strict=True)},
            "timestamp": self.timestamp,
        }
        if include_deals:
            deals = self._deals(uid, row, None, top.component_scores.get("svd"))
            out["deals"] = deals["deals"]
            out["deals_note"] = deals["note"]
        return out

    def deals(self, user_id: str, num_deals: int = 5, requesting_user: str | None = None) -> dict[str, Any]:
        """Deals only [GET /deals/{user_id}?num_deals=]: ``num_deals`` in
        ``1..DealConfig.max_deals``; rate limited per user
        (:class:`~recsys.deals.rate_limit.RateLimitExceeded` says when to retry)."""
        self._check_trained()
        uid = self._check_user(user_id, requesting_user)
        result = self._deals(uid, self._row_of.get(uid, -1), num_deals)
        return {"user_id": uid, "deals": result["deals"], "num_deals": len(result["deals"]),
                "requested": num_deals, "note": result["note"], "season": result["season"],
                "timestamp": self.timestamp}

    def _deals(self, user_id: str, row: int, num_deals: int | None,
               svd_scores: np.ndarray | None = None) -> dict[str, Any]:
        """Deals from the deal generator's per-request path (a one-user
        ``build_block`` + ``generate``, rate limited by the generator's
        :class:`~recsys.deals.rate_limit.RateLimiter`), fed with this user's
        Stage 2 affinities (none without history), the demand scores and the
        content similarity to the products they view most. ``svd_scores``:
        the user's Stage 2 scores if already computed (by the hybrid, whose
        ``svd`` strategy is Stage 2's model), as a one-row block."""
        season = self.config.seasons.season_of(self.dataset_.as_of.month)
        if row < 0:
            return {"deals": [], "season": season,
                    "note": f"unknown user {user_id!r}: deals need a known profile (region, age, tier)"}
        if svd_scores is None:
            svd_scores = self.stage2_.svd.score_users(np.array([row]))
        affinity = np.array(svd_scores[0], dtype=np.float64)  # a copy: set to NaN below when there is no history
        if not self.hybrid_.has_history(np.array([row]))[0]:
            affinity[:] = np.nan  # no history, no affinity (the contract's "none")
        similarity = self._candidate_builder.similarity_to_viewed(
            [user_id], self._similarity, self.engine_config.similar_seed_items)[0]
        candidates = self._candidate_builder.build_block([user_id], affinity, self._demand, similarity)
        user = {"user_id": user_id, **self._user_records[user_id]}
        result = self._deal_generator.generate(user, candidates, self.dataset_.as_of, num_deals, season)
        return {"deals": jsonable(result.to_records()), "season": result.season, "note": result.shortfall_reason}

    # ------------------------------------------------------------------ many users
    def strategies(self) -> dict[str, Recommender]:
        """The fitted strategies by name (shared objects, not copies)."""
        self._check_trained()
        return {
            "hybrid": self.hybrid_, "realtime": self.realtime_, "knn": self.realtime_.knn_,
            "svd": self.stage2_.svd, "content": self.content_, "demographic": self.realtime_.fallback_,
        }

    def recommend(self, user_ids: Sequence[str] | str, n: int = 10, strategy: str = "hybrid",
                  exclude_purchased: bool = True) -> pd.DataFrame:
        """Top-``n`` for many users at once with any strategy by name
        (:meth:`strategies`): the evaluation entry point."""
        models = self.strategies()
        if strategy not in models:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of {sorted(models)}")
        return models[strategy].recommend(user_ids, n, exclude_purchased)

    # ------------------------------------------------------------------ info and demo
    def model_info(self) -> dict[str, Any]:
        """[GET /model-info]: what is trained, when, on which data, sizes and parameters."""
        if not hasattr(self, "hybrid_"):
            return {"trained": False, "format_version": ENGINE_FORMAT_VERSION}
        ds, inter = self.dataset_, self.interactions_
        return jsonable({
            "trained": True,
            "trained_at": self.timestamp,
            "data_hash": self.data_hash_,
            "data_meta": {k: v for k, v in ds.meta.items() if isinstance(v, (str, int, float, bool))},
            "format_version": ENGINE_FORMAT_VERSION,
            "recsys_version": recsys.__version__,
            "sizes": {
                "users": ds.n_users, "products": ds.n_products, "events": len(ds.events),
                "interactions_nnz": int(inter.matrix.nnz), "content_vocabulary": self.content_.vocabulary_size_,
                "knn_neighbour_entries": int(self.realtime_.knn_.similarity_.nnz),
            },
            "models": {
                "realtime": {"class": type(self.realtime_).__name__, "neighbours": self.realtime_.config.neighbours,
                             "k": self.realtime_.config.knn.k, "min_history": self.realtime_.config.min_history},
                "content": {"class": "ContentRecommender", **self.content_.config.__dict__},
                "stage2": self.stage2_.info(),
                "hybrid": self.hybrid_.describe(),
            },
            "fit_seconds": round(getattr(self, "fit_seconds_", float("nan")), 3),
            "tuning": getattr(self, "tuning_", None),
        })

    def demo_flow(self, user_id: str | None = None) -> dict[str, Any]:
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
            affinity = self.stage2_.svd.score_users(np.array([row]))[0]
            bought = self.interactions_.purchased[row].toarray().ravel()
            order = [c for c in np.argsort(-affinity, kind="stable") if not bought[c]][:5]
            stage2["top_affinity_not_bought"] = [
                {"product_id": str(self._product_id[c]), "category": str(self._product_category[c]),
                 "affinity": round(float(affinity[c]), 6), "demand_score": round(float(self._demand[c]), 4)}
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
                "stage_3": self.full(uid, 10, include_deals=True),
            },
            "timestamp": self.timestamp,
        })

    # ------------------------------------------------------------------ persistence
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_deal_generator", None)  # holds a lock and live rate-limit windows
        state.pop("clock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.clock = time.monotonic
        self._deal_generator = self._make_deal_generator()

    def save(self, path: str | Path) -> Path:
        """Write ``engine.pkl`` and ``manifest.json`` (format version, data
        hash, as_of, sha256 of the pickle) into directory ``path``."""
        self._check_trained()
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        payload = pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)
        tmp = directory / "engine.pkl.tmp"
        tmp.write_bytes(payload)
        tmp.replace(directory / "engine.pkl")
        manifest = {
            "format_version": ENGINE_FORMAT_VERSION,
            "recsys_version": recsys.__version__,
            "data_hash": self.data_hash_,
            "as_of": self.timestamp,
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
        (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        return directory

    @classmethod
    def load(cls, path: str | Path, clock: Callable[[], float] = time.monotonic) -> RecommendationEngine:
        """Read a directory written by :meth:`save`, checking the format
        version and the pickle's checksum. Only load files you trust (pickle)."""
        directory = Path(path)
        manifest_path = directory / "manifest.json"
        if not manifest_path.exists():
            raise FileNotFoundError(f"{manifest_path} not found: not a saved RecommendationEngine directory")
        manifest = json.loads(manifest_path.read_text())
        version = manifest.get("format_version")
        if version != ENGINE_FORMAT_VERSION:
            raise EngineFormatError(
                f"{directory} holds engine format version {version!r}; this code reads version "
                f"{ENGINE_FORMAT_VERSION}: retrain and save again"
            )
        payload = (directory / "engine.pkl").read_bytes()
        if hashlib.sha256(payload).hexdigest() != manifest.get("sha256"):
            raise EngineFormatError(f"{directory / 'engine.pkl'} does not match its manifest checksum (corrupt?)")
        engine = pickle.loads(payload)
        if not isinstance(engine, cls):
            raise EngineFormatError(f"{directory / 'engine.pkl'} holds a {type(engine).__name__}, not a {cls.__name__}")
        engine.clock = clock
        engine._deal_generator = engine._make_deal_generator()
        return engine
