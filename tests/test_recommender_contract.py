"""The contract every ``Recommender`` of the package keeps (in the manner of
LensKit's ``BasicComponentTests`` and implicit's ``RecommenderBaseTestMixin``):
valid top-n frames for many users at once, deterministic output and ties,
unknown users, ``exclude_purchased``, bounds on ``n``. A new public
subclass without an entry in ``FACTORIES`` fails :func:`test_every_recommender_is_covered`.
"""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from stage1_helpers import assert_valid_top_n, purchased_pairs

import recsys
from recsys.evaluation.comparison import PrecomputedScores
from recsys.evaluation.peers.implicit_peers import ImplicitALS, ImplicitBPR, ImplicitConfig, ImplicitItemKNN
from recsys.evaluation.peers.purchase_ratings import PurchaseRatingSVD
from recsys.evaluation.peers.surprise_models import SurpriseKNN, SurpriseKNNConfig, SurpriseSVD, SurpriseSVDConfig
from recsys.models.base import MAX_N, Recommender
from recsys.models.baselines import Popularity, RandomRecommender
from recsys.models.content import ContentRecommender
from recsys.models.demographic import DemographicRecommender
from recsys.models.ease import EASE, EASEConfig
from recsys.models.hybrid import HybridRecommender, default_components
from recsys.models.knn import ItemKNN, UserKNN
from recsys.models.learned_fusion import LearnedFusion, LearnedFusionConfig, train_ranker
from recsys.models.realtime import RealtimeRecommender
from recsys.models.rp3beta import RP3beta, RP3betaConfig
from recsys.models.svd import PureSVD, SVDConfig


class _PrecomputedPureSVD:
    """Fits a PureSVD, then wraps it in :class:`PrecomputedScores` for every user row
    (the wrapper is built around an already fitted model, not fitted itself)."""

    def fit(self, dataset) -> PrecomputedScores:
        model = PureSVD(SVDConfig(n_factors=8)).fit(dataset)
        return PrecomputedScores(model, np.arange(dataset.n_users))


class _TrainedLearnedFusion:
    """Trains a small LambdaRank ranker on the data set's last 14 days, then fits the learned fusion."""

    def fit(self, dataset) -> LearnedFusion:
        from recsys.research.tuning import fit_hybrid_components

        ranker = train_ranker(dataset, fit_hybrid_components, dataset.config.fusion,
                              config=LearnedFusionConfig(n_estimators=10, validation_days=14.0, max_users=200))
        return LearnedFusion(ranker.model, components=default_components).fit(dataset)


FACTORIES = {
    "ItemKNN": ItemKNN,
    "UserKNN": UserKNN,
    "DemographicRecommender": DemographicRecommender,
    "Popularity": Popularity,
    "RandomRecommender": lambda: RandomRecommender(seed=3),
    "PureSVD": lambda: PureSVD(SVDConfig(n_factors=8)),
    "SurpriseSVD": lambda: SurpriseSVD(SurpriseSVDConfig(n_factors=8, n_epochs=5)),
    "SurpriseKNN": lambda: SurpriseKNN(SurpriseKNNConfig(k=10)),
    "PurchaseRatingSVD": lambda: PurchaseRatingSVD(SurpriseSVDConfig(n_factors=8, n_epochs=5)),
    "ContentRecommender": ContentRecommender,
    "HybridRecommender": lambda: HybridRecommender(components=default_components),
    "RealtimeRecommender": RealtimeRecommender,
    "EASE": lambda: EASE(EASEConfig(l2=50.0)),
    "RP3beta": lambda: RP3beta(RP3betaConfig(k=50)),
    "ImplicitALS": lambda: ImplicitALS(ImplicitConfig(factors=8, iterations=3)),
    "ImplicitBPR": lambda: ImplicitBPR(ImplicitConfig(factors=8, iterations=3)),
    "ImplicitItemKNN": lambda: ImplicitItemKNN(ImplicitConfig(neighbours=10)),
    "PrecomputedScores": _PrecomputedPureSVD,
    "LearnedFusion": _TrainedLearnedFusion,
}


def _subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _subclasses(sub)
    return out


def test_every_recommender_is_covered():
    for module in pkgutil.walk_packages(recsys.__path__, "recsys."):
        importlib.import_module(module.name)
    public = {c.__name__ for c in _subclasses(Recommender)
              if c.__module__.startswith("recsys.") and not c.__name__.startswith("_")
              and not getattr(c, "__abstractmethods__", None)}
    assert public == set(FACTORIES), f"add a factory for {sorted(public - set(FACTORIES))}"


_FITTED: dict[str, Recommender] = {}


@pytest.fixture(params=sorted(FACTORIES))
def fitted(request, small_dataset) -> tuple[str, Recommender]:
    name = request.param
    if name not in _FITTED:
        _FITTED[name] = FACTORIES[name]().fit(small_dataset)
    return name, _FITTED[name]


def _users(dataset) -> list[str]:
    return list(dataset.users["user_id"]) + ["stranger_1", "stranger_2"]


def test_valid_top_n_for_many_users(fitted, small_dataset):
    name, model = fitted
    users = _users(small_dataset)
    frame = model.recommend(users, n=10)
    assert_valid_top_n(frame, users, 10, small_dataset.n_products, purchased_pairs(small_dataset), full=False)
    counts = frame.groupby("user_id", sort=False).size()
    assert (counts >= 1).all(), name


def test_deterministic_including_ties(fitted, small_dataset):
    name, model = fitted
    users = _users(small_dataset)[::7]
    frame = model.recommend(users, n=15)
    again = FACTORIES[name]().fit(small_dataset).recommend(users, n=15)
    pd.testing.assert_frame_equal(frame, again)
    columns = pd.Index(small_dataset.products["product_id"]).get_indexer(frame["product_id"])
    for _, block in frame.assign(col=columns).groupby("user_id", sort=False):
        score, col = block["score"].to_numpy(), block["col"].to_numpy()
        assert (np.diff(score) <= 1e-12).all(), name
        if name not in ("RealtimeRecommender",):  # realtime: scores are per path (k-NN, then fallback)
            tied = np.isclose(score[1:], score[:-1], rtol=0, atol=0)
            assert (col[1:][tied] > col[:-1][tied]).all(), name  # ties by catalogue order


def test_unknown_and_malformed_users(fitted):
    name, model = fitted
    frame = model.recommend(["never_seen_before"], n=5)
    assert set(frame["user_id"]) <= {"never_seen_before"} and len(frame) <= 5
    for bad in (["has space"], [""], [None], [3], ["x" * 200]):
        with pytest.raises(ValueError, match="user id"):
            model.recommend(bad, n=5)


def test_exclude_purchased(fitted, small_dataset):
    name, model = fitted
    bought = small_dataset.events[small_dataset.events["event_type"] == "purchase"]
    users = bought["user_id"].drop_duplicates().head(20).tolist()
    n = small_dataset.n_products
    kept = model.recommend(users, n=n, exclude_purchased=True)
    assert not set(zip(kept["user_id"], kept["product_id"], strict=True)) & purchased_pairs(small_dataset)
    everything = model.recommend(users, n=n, exclude_purchased=False)
    assert len(everything) >= len(kept), name


@pytest.mark.parametrize("n", [0, -1, 2.5, True, None, "3", 2**70, MAX_N + 1])
def test_bad_n_is_a_value_error(fitted, n):
    _, model = fitted
    with pytest.raises(ValueError, match=r"\bn\b"):
        model.recommend(["user_0"], n=n)


def test_huge_n_is_bounded_by_the_catalogue(fitted, small_dataset):
    name, model = fitted
    frame = model.recommend(["user_0", "user_1", "stranger_1"], n=MAX_N)
    assert frame.groupby("user_id").size().max() <= small_dataset.n_products, name


def test_top_n_sparse_takes_float64_scores_as_float32():
    from recsys.models.knn import top_n_sparse

    scores = sp.csr_matrix(np.array([[0.0, 2.0, 1.0]]), dtype=np.float64)  # converted to float32, same answer
    r, c, v, rank = top_n_sparse(scores, None, 2)
    assert c.tolist() == [1, 2] and rank.tolist() == [1, 2]
