"""Peers from the ``implicit`` library (Frederickson), as :class:`~recsys.models.base.Recommender`\\ s.

* :class:`ImplicitALS`: ``implicit.cpu.als.AlternatingLeastSquares`` (Hu, Koren
  and Volinsky 2008; conjugate-gradient solver), confidence ``1 + alpha x``.
* :class:`ImplicitBPR`: ``implicit.cpu.bpr.BayesianPersonalizedRanking``
  (Rendle et al. 2009).
* :class:`ImplicitItemKNN`: ``CosineRecommender`` / ``BM25Recommender`` /
  ``TFIDFRecommender`` (item-item, top ``K`` neighbours).

Each is given the users x items matrix of its ``weighting`` (default: binary,
no decay -- the plain matrix the textbook setups use), and runs with one
thread and a fixed ``random_state`` so results are reproducible. Scores are
``implicit``'s own (factors dot products, or ``x_u W`` for the k-NN), computed
for all items; unknown users score 0.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recsys.config import ConfigError
from recsys.data.dataset import Dataset
from recsys.interactions import Interactions, Weighting, model_matrix
from recsys.models.base import Recommender
from recsys.third_party import import_quietly

__all__ = ["ImplicitALS", "ImplicitBPR", "ImplicitItemKNN", "ImplicitConfig"]


@dataclass(frozen=True)
class ImplicitConfig:
    """Settings shared by the ``implicit`` peers (each reads the ones it uses).

    ``factors``, ``regularization``, ``iterations``, ``learning_rate`` (BPR),
    ``alpha`` (ALS confidence scale), ``neighbours`` (k-NN ``K``), ``knn``
    (``cosine``, ``bm25`` or ``tfidf``), ``random_state``, ``weighting``."""

    factors: int = 64
    regularization: float = 0.01
    iterations: int = 15
    learning_rate: float = 0.01
    alpha: float = 1.0
    neighbours: int = 50
    knn: str = "cosine"
    random_state: int = 42
    weighting: Weighting | None = field(default_factory=Weighting)

    def __post_init__(self) -> None:
        for name in ("factors", "iterations", "neighbours"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"ImplicitConfig.{name} must be a positive int, got {value!r}")
        if self.knn not in ("cosine", "bm25", "tfidf"):
            raise ConfigError(f"ImplicitConfig.knn must be 'cosine', 'bm25' or 'tfidf', got {self.knn!r}")
        object.__setattr__(self, "weighting", Weighting.coerce(self.weighting))


class _ImplicitPeer(Recommender):
    """Fits an ``implicit`` model on the weighted users x items CSR matrix."""

    def __init__(self, config: ImplicitConfig | None = None) -> None:
        self.config = config if config is not None else ImplicitConfig()

    def _make(self):  # noqa: ANN202 - an implicit model
        raise NotImplementedError

    def _fit(self, dataset: Dataset, interactions: Interactions) -> None:
        from threadpoolctl import threadpool_limits

        matrix = sp.csr_matrix(model_matrix(dataset, interactions, self.config.weighting), dtype=np.float32)
        self.user_items_ = matrix
        self.model_ = self._make()
        with threadpool_limits(1), warnings.catch_warnings():
            # implicit converts internally and says so with a wall-clock time (non-reproducible output)
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            self.model_.fit(matrix, show_progress=False)

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(dataset) first")


class _FactorPeer(_ImplicitPeer):
    def score_users(self, rows: np.ndarray) -> np.ndarray:
        self._check_fitted()
        rows = np.asarray(rows, dtype=np.int64)
        users = np.asarray(self.model_.user_factors)[np.where(rows >= 0, rows, 0)]
        scores = users @ np.asarray(self.model_.item_factors).T
        scores[rows < 0] = 0.0
        return scores.astype(np.float64)


class ImplicitALS(_FactorPeer):
    """``implicit``'s ALS (conjugate gradient), ``factors`` x ``iterations``."""

    name = "implicit_als"
    reason = "Matches your purchase pattern (ALS)"

    def _make(self):  # noqa: ANN202
        AlternatingLeastSquares = import_quietly("implicit.cpu.als").AlternatingLeastSquares

        c = self.config
        return AlternatingLeastSquares(factors=c.factors, regularization=c.regularization, alpha=c.alpha,
                                       iterations=c.iterations, random_state=c.random_state, num_threads=1)


class ImplicitBPR(_FactorPeer):
    """``implicit``'s BPR (SGD over sampled triples), ``factors`` x ``iterations``."""

    name = "implicit_bpr"
    reason = "Matches your purchase pattern (BPR)"

    def __init__(self, config: ImplicitConfig | None = None) -> None:
        super().__init__(config if config is not None else ImplicitConfig(iterations=100, learning_rate=0.05))

    def _make(self):  # noqa: ANN202
        BayesianPersonalizedRanking = import_quietly("implicit.cpu.bpr").BayesianPersonalizedRanking

        c = self.config
        return BayesianPersonalizedRanking(factors=c.factors, learning_rate=c.learning_rate,
                                           regularization=c.regularization, iterations=c.iterations,
                                           random_state=c.random_state, num_threads=1)


class ImplicitItemKNN(_ImplicitPeer):
    """``implicit``'s item-item k-NN: ``CosineRecommender(K)`` (or BM25/TF-IDF)."""

    name = "implicit_knn"
    reason = "Similar to products you bought (implicit k-NN)"

    def _make(self):  # noqa: ANN202
        neighbours = import_quietly("implicit.nearest_neighbours")
        cls = {"cosine": neighbours.CosineRecommender, "bm25": neighbours.BM25Recommender,
               "tfidf": neighbours.TFIDFRecommender}[self.config.knn]
        return cls(K=self.config.neighbours, num_threads=1)

    def score_users(self, rows: np.ndarray) -> np.ndarray:
        self._check_fitted()
        rows = np.asarray(rows, dtype=np.int64)
        history = self.user_items_[np.where(rows >= 0, rows, 0)]
        scores = (history @ self.model_.similarity).toarray().astype(np.float64)
        scores[rows < 0] = 0.0
        return scores
