"""Surprise's SVD and KNNBasic as the project's rating models.

``SurpriseSVD`` and ``SurpriseKNN`` fit Surprise's ``SVD`` and ``KNNBasic`` on
the review ratings (1..5). They are the rating models of the project, scored
with ``surprise.accuracy.rmse/mae`` on held-out ratings
(:func:`evaluate_rating_models`), and can also rank products by predicted
rating (peers of PureSVD in the comparison). Their vectorised
``score_users`` reproduces Surprise's own ``estimate`` (unclipped) from the
fitted parameters; a test checks it against ``algo.predict``. They are never
part of the engine's serving state (nothing here is saved by the engine).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import surprise
from surprise import accuracy
from surprise.prediction_algorithms.predictions import Prediction

from recsys.data.dataset import Dataset
from recsys.interactions import Interactions
from recsys.models.base import Recommender
from recsys.validation import ConfigError, check_ints, check_numbers

__all__ = [
    "SurpriseKNN",
    "SurpriseKNNConfig",
    "SurpriseSVD",
    "SurpriseSVDConfig",
    "evaluate_rating_models",
    "review_ratings",
    "split_ratings",
]

RATING_SCALE = (1.0, 5.0)


def review_ratings(dataset: Dataset) -> pd.DataFrame:
    """The review ratings as ``user_id, product_id, rating, timestamp``.

    A user who reviewed a product more than once keeps the latest review (ties:
    the later row); the number of older reviews dropped is in
    ``frame.attrs['dropped_duplicates']``.
    """
    reviews = dataset.events.loc[dataset.events["event_type"].eq("review"),
                                 ["user_id", "product_id", "rating", "timestamp"]]
    reviews = reviews.reset_index(drop=True).sort_values("timestamp", kind="stable")
    latest = reviews.drop_duplicates(["user_id", "product_id"], keep="last").sort_index()
    out = latest.reset_index(drop=True)
    out.attrs["dropped_duplicates"] = int(len(reviews) - len(latest))
    return out


def split_ratings(
    ratings: pd.DataFrame,
    test_fraction: float = 0.2,
    method: Literal["random", "temporal"] = "random",
    random_state: int = 42,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out ``test_fraction`` of the ratings: a seeded random draw, or the
    most recent ones (``temporal``: everything after the (1 - f) time quantile)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if len(ratings) < 2:
        raise ValueError(f"need at least 2 ratings to split, got {len(ratings)}")
    n_test = max(1, int(round(test_fraction * len(ratings))))
    if method == "random":
        test_idx = np.random.default_rng(random_state).permutation(len(ratings))[:n_test]
    elif method == "temporal":
        test_idx = np.argsort(ratings["timestamp"].to_numpy(), kind="stable")[-n_test:]
    else:
        raise ValueError(f"method must be 'random' or 'temporal', got {method!r}")
    is_test = np.zeros(len(ratings), dtype=bool)
    is_test[test_idx] = True
    return ratings[~is_test].reset_index(drop=True), ratings[is_test].reset_index(drop=True)


def _trainset(ratings: pd.DataFrame) -> surprise.Trainset:
    if ratings.empty:
        raise ValueError("no review ratings to fit a rating model on (no 'review' events in the data set)")
    reader = surprise.Reader(rating_scale=RATING_SCALE)
    frame = ratings[["user_id", "product_id", "rating"]].astype({"user_id": object, "product_id": object})
    return surprise.Dataset.load_from_df(frame, reader).build_full_trainset()


def _testset(ratings: pd.DataFrame) -> list[tuple[str, str, float]]:
    return list(zip(ratings["user_id"], ratings["product_id"], ratings["rating"].astype(float), strict=True))


class _SurpriseRanker(Recommender):
    """Shared plumbing: fit a Surprise algorithm on the review ratings and map
    its inner ids onto the interaction matrix's rows and columns."""

    algorithm_: Any
    trainset_: surprise.Trainset

    def _make_algorithm(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fit(self, dataset: Dataset, interactions: Interactions) -> None:
        ratings = review_ratings(dataset)
        self.n_dropped_duplicate_reviews_ = ratings.attrs["dropped_duplicates"]
        self._check_size(ratings)
        self.trainset_ = _trainset(ratings)
        self.algorithm_ = self._make_algorithm().fit(self.trainset_)
        ts = self.trainset_
        raw_users = [ts.to_raw_uid(u) for u in range(ts.n_users)]
        raw_items = [ts.to_raw_iid(i) for i in range(ts.n_items)]
        # inner index of every matrix row / column (-1: not among the rated)
        self.row_to_inner_ = pd.Index(raw_users).get_indexer(interactions.user_ids)
        self.col_to_inner_ = pd.Index(raw_items).get_indexer(interactions.product_ids)

    def _check_size(self, ratings: pd.DataFrame) -> None:
        return None

    def predict_ratings(self, ratings: pd.DataFrame) -> list[Prediction]:
        """Surprise predictions (clipped to 1..5) for ``user_id, product_id,
        rating`` rows, ready for ``surprise.accuracy``."""
        if not hasattr(self, "algorithm_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(dataset) first")
        return self.algorithm_.test(_testset(ratings))

    @property
    def global_mean_(self) -> float:
        return float(self.trainset_.global_mean)


@dataclass(frozen=True)
class SurpriseSVDConfig:
    """Surprise ``SVD`` hyper-parameters (Surprise's defaults but a seed)."""

    n_factors: int = 100
    n_epochs: int = 20
    lr_all: float = 0.005
    reg_all: float = 0.02
    random_state: int = 42

    def __post_init__(self) -> None:
        check_ints(self, "n_factors", "n_epochs")
        check_numbers(self, "lr_all", "reg_all", low=0)


class SurpriseSVD(_SurpriseRanker):
    """Surprise's biased ``SVD`` (Funk/Koren) on review ratings:
    ``r_hat_ui = mu + b_u + b_i + q_i . p_u``; an unknown user gets
    ``mu + b_i`` (and an unrated product ``mu + b_u``), as in Surprise.
    ``score_users`` ranks by the unclipped estimate."""

    name = "surprise_svd"
    reason = "Predicted to be rated highly by you"

    def __init__(self, config: SurpriseSVDConfig | None = None) -> None:
        self.config = config or SurpriseSVDConfig()

    def _make_algorithm(self) -> surprise.SVD:
        c = self.config
        return surprise.SVD(n_factors=c.n_factors, n_epochs=c.n_epochs, lr_all=c.lr_all, reg_all=c.reg_all,
                            random_state=c.random_state)

    def score_users(self, rows: np.ndarray) -> np.ndarray:
        algo, ts = self.algorithm_, self.trainset_
        rows = np.asarray(rows, dtype=np.int64)
        inner_u = np.where(rows >= 0, self.row_to_inner_[np.where(rows >= 0, rows, 0)], -1)
        inner_i = self.col_to_inner_
        known_u, known_i = inner_u >= 0, inner_i >= 0
        bu = np.where(known_u, algo.bu[np.maximum(inner_u, 0)], 0.0)
        bi = np.where(known_i, algo.bi[np.maximum(inner_i, 0)], 0.0)
        pu = algo.pu[np.maximum(inner_u, 0)] * known_u[:, None]
        qi = algo.qi[np.maximum(inner_i, 0)] * known_i[:, None]
        return ts.global_mean + bu[:, None] + bi[None, :] + pu @ qi.T


@dataclass(frozen=True)
class SurpriseKNNConfig:
    """Surprise ``KNNBasic`` settings. ``max_items`` bounds the dense
    similarity matrix Surprise keeps (item-based: n_items^2 float64, i.e.
    8 bytes x n^2: 5,000 items -> 200 MB); a larger rating set is refused."""

    k: int = 40
    min_k: int = 1
    similarity: Literal["cosine", "msd", "pearson", "pearson_baseline"] = "cosine"
    user_based: bool = False
    min_support: int = 1
    max_items: int = 5000

    def __post_init__(self) -> None:
        check_ints(self, "k", "min_k", "max_items")
        if self.similarity not in ("cosine", "msd", "pearson", "pearson_baseline"):
            raise ConfigError(f"SurpriseKNNConfig.similarity must be cosine/msd/pearson/pearson_baseline, "
                             f"got {self.similarity!r}")


class SurpriseKNN(_SurpriseRanker):
    """Surprise's ``KNNBasic`` on review ratings (item-based by default):
    ``r_hat_ui = sum_j sim(i, j) r_uj / sum_j sim(i, j)`` over the ``k`` rated
    items ``j`` most similar to ``i`` with positive similarity; Surprise's
    global mean where that is impossible (unknown user or item, or fewer than
    ``min_k`` positive neighbours). A peer ranker: Surprise keeps a dense
    n x n similarity matrix, hence ``max_items``."""

    name = "surprise_knn"
    reason = "Rated highly by you on similar items"

    def __init__(self, config: SurpriseKNNConfig | None = None) -> None:
        self.config = config or SurpriseKNNConfig()

    def _check_size(self, ratings: pd.DataFrame) -> None:
        c = self.config
        n = ratings["user_id"].nunique() if c.user_based else ratings["product_id"].nunique()
        if n > c.max_items:
            kind = "users" if c.user_based else "products"
            raise ValueError(
                f"SurpriseKNN would build a dense {n} x {n} similarity matrix over rated {kind} "
                f"({8 * n * n / 1e6:.0f} MB), above SurpriseKNNConfig.max_items={c.max_items}; "
                "use recsys.models.knn (sparse top-k) at this size"
            )

    def _make_algorithm(self) -> surprise.KNNBasic:
        c = self.config
        sim_options = {"name": c.similarity, "user_based": c.user_based, "min_support": c.min_support}
        return surprise.KNNBasic(k=c.k, min_k=c.min_k, sim_options=sim_options, verbose=False)

    def score_users(self, rows: np.ndarray) -> np.ndarray:
        if self.config.user_based:
            return self._score_user_based(rows)
        algo, ts = self.algorithm_, self.trainset_
        rows = np.asarray(rows, dtype=np.int64)
        n_cols = len(self.col_to_inner_)
        out = np.full((len(rows), n_cols), ts.global_mean, dtype=np.float64)
        known_cols = np.flatnonzero(self.col_to_inner_ >= 0)
        inner_cols = self.col_to_inner_[known_cols]
        for r, row in enumerate(rows):
            u = self.row_to_inner_[row] if row >= 0 else -1
            if u < 0 or not ts.ur[u]:
                continue
            rated, ratings = map(np.asarray, zip(*ts.ur[u], strict=True))
            out[r, known_cols] = _knn_estimate(algo.sim[np.ix_(inner_cols, rated)], ratings, algo.k, algo.min_k,
                                               ts.global_mean)
        return out

    def _score_user_based(self, rows: np.ndarray) -> np.ndarray:
        algo, ts = self.algorithm_, self.trainset_
        rows = np.asarray(rows, dtype=np.int64)
        out = np.full((len(rows), len(self.col_to_inner_)), ts.global_mean, dtype=np.float64)
        for c, i in enumerate(self.col_to_inner_):
            if i < 0 or not ts.ir[i]:
                continue
            raters, ratings = map(np.asarray, zip(*ts.ir[i], strict=True))
            known = np.flatnonzero(rows >= 0)
            users = self.row_to_inner_[rows[known]]
            ok = users >= 0
            if ok.any():
                out[known[ok], c] = _knn_estimate(algo.sim[np.ix_(users[ok], raters)], ratings, algo.k, algo.min_k,
                                                  ts.global_mean)
        return out


def _knn_estimate(sims: np.ndarray, ratings: np.ndarray, k: int, min_k: int, default: float) -> np.ndarray:
    """KNNBasic's estimate for each row of ``sims`` (candidates x rated
    neighbours): the ``k`` largest similarities, positive ones weighted."""
    if sims.shape[1] > k:
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        sims = np.take_along_axis(sims, top, axis=1)
        ratings = ratings[top]
    else:
        ratings = np.broadcast_to(ratings, sims.shape)
    positive = sims > 0
    weights = np.where(positive, sims, 0.0)
    total = weights.sum(axis=1)
    ok = positive.sum(axis=1) >= min_k
    est = np.full(sims.shape[0], default, dtype=np.float64)
    est[ok] = (weights * ratings).sum(axis=1)[ok] / total[ok]
    return est


# --------------------------------------------------------------------------- evaluation
def _global_mean_predictions(train: pd.DataFrame, test: pd.DataFrame) -> list[Prediction]:
    mu = float(train["rating"].mean())
    return [Prediction(u, i, float(r), mu, {"was_impossible": False}) for u, i, r in _testset(test)]


def evaluate_rating_models(
    dataset: Dataset,
    test_fraction: float = 0.2,
    method: Literal["random", "temporal"] = "random",
    random_state: int = 42,
    svd_config: SurpriseSVDConfig | None = None,
    knn_config: SurpriseKNNConfig | None = None,
    extra: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """RMSE and MAE (``surprise.accuracy``) of Surprise SVD and KNNBasic against
    the global mean, Surprise ``BaselineOnly`` (``mu + b_u + b_i``, ALS) and
    ``NormalPredictor`` on held-out review ratings (:func:`split_ratings`).

    Returns one row per model: ``model, rmse, mae, n_train, n_test,
    share_impossible`` (test pairs the model could not personalise, for which
    it fell back to a default). ``extra`` adds Surprise algorithms by name.
    """
    train, test = split_ratings(review_ratings(dataset), test_fraction, method, random_state)
    trainset = _trainset(train)
    testset = _testset(test)
    svd_config = svd_config or SurpriseSVDConfig(random_state=random_state)
    knn_config = knn_config or SurpriseKNNConfig()
    algos: dict[str, Any] = {
        "BaselineOnly": surprise.BaselineOnly(bsl_options={"method": "als"}, verbose=False),
        "NormalPredictor": surprise.NormalPredictor(),
        "SVD": SurpriseSVD(svd_config)._make_algorithm(),
        "KNNBasic": SurpriseKNN(knn_config)._make_algorithm(),
    }
    algos.update(extra or {})
    results = {"GlobalMean": _global_mean_predictions(train, test)}
    saved = np.random.get_state()  # NormalPredictor draws from numpy's global RNG
    try:
        for name, algo in algos.items():
            np.random.seed(random_state)
            if name == "KNNBasic":
                SurpriseKNN(knn_config)._check_size(train)
            results[name] = algo.fit(trainset).test(testset)
    finally:
        np.random.set_state(saved)
    cold = float(np.mean(~test["user_id"].isin(train["user_id"]) | ~test["product_id"].isin(train["product_id"])))
    rows = []
    for name, preds in results.items():
        rows.append({
            "model": name,
            "rmse": accuracy.rmse(preds, verbose=False),
            "mae": accuracy.mae(preds, verbose=False),
            "n_train": len(train),
            "n_test": len(test),
            "share_cold": cold,
            "share_impossible": float(np.mean([p.details.get("was_impossible", False) for p in preds])),
        })
    return pd.DataFrame(rows)
