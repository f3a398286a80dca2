"""Stage 3 strategies: TF-IDF content recommender and the hybrid fusion.

Tiny hand-built worlds keep these tests independent of the generator; the
Stage 1-2 strategies are replaced by two small transparent stand-ins so the
fusion arithmetic can be checked exactly.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from recsys import Dataset
from recsys.config import ConfigError, FusionWeights
from recsys.evaluation.sweep import simplex_grid, weight_sweep
from recsys.interactions import Interactions
from recsys.models.base import Recommender
from recsys.models.content import ContentConfig, ContentRecommender, split_labels
from recsys.models.hybrid import (
    CONTRIB_COLUMNS,
    STRATEGIES,
    HybridConfig,
    HybridRecommender,
    check_weights,
)
from recsys.research.analysis import example_users, overlap_at_k

CATS = ["Electronics", "Books", "Fashion", "Travel"]
AS_OF = pd.Timestamp("2024-01-15")


def make_world(n_users: int = 30, n_products: int = 60, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    products = pd.DataFrame(
        {
            "product_id": [f"product_{i}" for i in range(n_products)],
            "name": [f"{CATS[i % 4]} item {i}" for i in range(n_products)],
            "category": [CATS[i % 4] for i in range(n_products)],
            "description": [f"a {CATS[i % 4].lower()} thing of style{i % 5} with feature{i % 7}" for i in range(n_products)],
            "tags": [f"{CATS[i % 4].lower()}|tag{i % 3}" for i in range(n_products)],
            "price": np.round(rng.uniform(5, 500, n_products), 2),
            "cost": np.round(rng.uniform(1, 4, n_products), 2),
            "stock": np.where(np.arange(n_products) % 11 == 5, 0, 20),
            "peak_season": ["none"] * n_products,
        }
    )
    users = pd.DataFrame(
        {
            "user_id": [f"user_{i}" for i in range(n_users)],
            "age": rng.uniform(18, 70, n_users).round(),
            "region": [["EU", "NA", "Asia", "Other"][i % 4] for i in range(n_users)],
            "spending_tier": [["budget", "mid", "premium"][i % 3] for i in range(n_users)],
            "price_sensitivity": rng.uniform(0.3, 0.9, n_users),
        }
    )
    rows = []
    for u in range(n_users - 3):  # the last three users have no history
        favourite = u % 4
        for j in range(int(rng.integers(4, 12))):
            cat = favourite if rng.random() < 0.8 else int(rng.integers(0, 4))
            p = cat + 4 * int(rng.integers(0, n_products // 4))
            kind = str(rng.choice(["view", "view", "view", "favorite", "cart", "purchase"]))
            rows.append(
                {
                    "user_id": f"user_{u}", "product_id": f"product_{p}", "event_type": kind,
                    "timestamp": AS_OF - pd.Timedelta(hours=int(rng.integers(1, 24 * 90))),
                    "session_id": f"s{u}_{j}", "quantity": 1,
                    "value": float(products.price[p]) if kind == "purchase" else np.nan, "rating": np.nan,
                }
            )
    return Dataset(users, products, pd.DataFrame(rows), as_of=AS_OF)


class CoCount(Recommender):
    """Transparent item-item stand-in: scores = history row @ (X^T X)."""

    name = "knn"
    reason = "Similar users also liked this"

    def _fit(self, dataset, interactions):
        x = interactions.matrix
        self.sim_ = (x.T @ x).toarray()
        np.fill_diagonal(self.sim_, 0.0)

    def score_users(self, rows):
        x = self.interactions_.matrix
        safe = np.where(rows >= 0, rows, 0)
        out = x[safe].toarray() @ self.sim_
        out[rows < 0] = 0.0
        return out


class Pop(Recommender):
    """Popularity stand-in for the demographic strategy: always answers."""

    name = "demographic"
    reason = "Popular in your region"

    def _fit(self, dataset, interactions):
        self.pop_ = np.asarray(interactions.matrix.sum(axis=0)).ravel() + np.linspace(0, 1e-3, interactions.shape[1])

    def score_users(self, rows):
        return np.tile(self.pop_, (len(rows), 1))


@pytest.fixture(scope="module")
def world() -> Dataset:
    return make_world()


@pytest.fixture(scope="module")
def content(world) -> ContentRecommender:
    return ContentRecommender().fit(world)


def components(world):
    inter = Interactions.from_dataset(world)
    return {
        "knn": CoCount().fit(world, inter),
        "content": ContentRecommender().fit(world, inter),
        "demographic": Pop().fit(world, inter),
    }


@pytest.fixture(scope="module")
def fitted(world):
    return components(world)


WEIGHTS = FusionWeights(knn=0.5, svd=0.0, content=0.3, demographic=0.2)


# --------------------------------------------------------------------------- content
def test_content_vectors_are_unit_rows_with_label_tokens(content):
    norms = np.sqrt(np.asarray(content.item_vectors_.multiply(content.item_vectors_).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms, 1.0)
    labels = content.vectorizer_.named_transformers_["labels"].vocabulary_
    assert "electronics" in labels and "tag0" in labels
    assert split_labels(" Home & Garden|a| |B ") == ["home & garden", "a", "b"]


def test_content_profile_is_weighted_mean_cosine(world, content):
    inter = content.interactions_
    row = 0
    w = inter.matrix[row].toarray().ravel()
    x = content.item_vectors_.toarray()
    profile = w @ x / w.sum()
    expected = x @ profile / np.linalg.norm(profile)
    bound = (np.diff(content.item_vectors_.indptr) + 4) * 2.0**-24  # float32 scoring (test_batch_topk)
    assert (np.abs(content.score_users(np.array([row]))[0] - expected) <= bound).all()
    assert content.score_users(np.array([row])).max() <= 1 + 1e-6


def test_content_scores_are_float32_sums_in_stored_order(world, content):
    """Each score is the float32 profile times the float32 item vector, multiplied and added in
    float32 over the row's stored entries in order from 0 (no fused multiply-add): a plain loop
    over numpy float32 scalars gives the same bits, one user alone and in a block of 9."""
    x = content.scoring_vectors()
    assert x.dtype == np.float32 and content.item_vectors_.dtype == np.float64
    np.testing.assert_array_equal(x.indices, content.item_vectors_.indices)
    rows = np.arange(9)
    table = content.profiles_table(rows)
    block = content.score_block(rows)[0]
    for u in (0, 4):
        expected = np.zeros(x.shape[0], dtype=np.float32)
        for i in range(x.shape[0]):
            total = np.float32(0)
            for jj in range(x.indptr[i], x.indptr[i + 1]):
                total = np.float32(total + np.float32(x.data[jj] * table[x.indices[jj], u]))
            expected[i] = total
        np.testing.assert_array_equal(block[u], expected)
        np.testing.assert_array_equal(content.score_block(rows[u : u + 1])[0][0], expected)


def test_content_prefers_the_users_category(world, content):
    recs = content.recommend([f"user_{u}" for u in range(8)], n=5)
    cats = recs.merge(world.products[["product_id", "category"]], on="product_id")
    share = (cats.category == cats.user_id.str.split("_").str[1].astype(int).map(lambda u: CATS[u % 4])).mean()
    assert share >= 0.8


def test_content_unknown_and_historyless_users_score_zero(world, content):
    rows = content.interactions_.user_index(["user_29", "nobody"])
    assert not content.has_profile(rows).any()
    assert np.all(content.score_users(rows) == 0.0)
    assert content.has_profile(content.interactions_.user_index(["user_0"])).all()


def test_similar_products_and_similarity(content):
    sim = content.similar_products(["product_0", "product_1"], k=3)
    assert list(sim.columns) == ["product_id", "similar_product_id", "similarity", "rank"]
    assert len(sim) == 6 and (sim.product_id != sim.similar_product_id).all()
    for _, group in sim.groupby("product_id"):
        assert group.similarity.is_monotonic_decreasing
    square = content.product_similarity(["product_0", "product_4", "product_1"])
    np.testing.assert_allclose(np.diag(square), 1.0)
    np.testing.assert_allclose(square.to_numpy(), square.to_numpy().T)
    assert square.loc["product_0", "product_4"] > square.loc["product_0", "product_1"]  # same category
    one = content.similarity_to(np.array([0]))
    np.testing.assert_allclose(one, (content.item_vectors_ @ content.item_vectors_[0].T).toarray().ravel())
    assert one[0] == pytest.approx(1.0) and one[4] == pytest.approx(square.loc["product_0", "product_4"])


def test_content_bad_input(content):
    with pytest.raises(ValueError, match="unknown product id"):
        content.similar_products(["product_0", "nope"])
    with pytest.raises(ValueError, match="k must be a positive int"):
        content.similar_products("product_0", k=0)
    with pytest.raises(ValueError, match="n must be a positive int"):
        content.recommend("user_0", n=-1)
    with pytest.raises(ConfigError, match="text_weight"):
        ContentConfig(text_weight=-1)
    with pytest.raises(ConfigError, match="both be 0"):
        ContentConfig(text_weight=0, label_weight=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        ContentRecommender().similar_products("product_0")


def test_content_pickles_and_answers_identically(content):
    clone = pickle.loads(pickle.dumps(content))
    rows = np.arange(5)
    np.testing.assert_array_equal(clone.score_users(rows), content.score_users(rows))
    older = pickle.loads(pickle.dumps(content))
    del older.item_vectors32_  # a model pickled before the float32 scoring copy existed
    np.testing.assert_array_equal(older.score_users(rows), content.score_users(rows))
    assert older.item_vectors32_.dtype == np.float32  # rebuilt on first use


# --------------------------------------------------------------------------- weights and config
@pytest.mark.parametrize(
    "bad",
    [dict(knn=0.5, svd=0.5, content=0.5, demographic=0.0), dict(knn=-0.1, svd=0.5, content=0.5, demographic=0.1),
     dict(knn=float("nan"), svd=0.5, content=0.5, demographic=0.0)],
)
def test_invalid_weights_are_refused(bad, fitted):
    with pytest.raises(ConfigError, match="FusionWeights"):
        FusionWeights(**bad)
    with pytest.raises(ConfigError):
        HybridRecommender(bad)
    with pytest.raises(ConfigError):
        HybridRecommender.from_fitted(fitted, bad)


def test_weight_mapping_is_checked():
    assert check_weights({"knn": 1.0}) == FusionWeights(1.0, 0.0, 0.0, 0.0)
    with pytest.raises(ConfigError, match="unknown fusion strategies"):
        check_weights({"knn": 0.5, "popularity": 0.5})
    with pytest.raises(ConfigError, match="weights must be"):
        check_weights([0.4, 0.3, 0.2, 0.1])


@pytest.mark.parametrize(
    "kwargs, field",
    [({"candidates_per_strategy": 0}, "candidates_per_strategy"), ({"normalization": "zscore"}, "normalization"),
     ({"category_cap": 0}, "category_cap"), ({"candidates_per_strategy": True}, "candidates_per_strategy")],
)
def test_invalid_hybrid_config(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        HybridConfig(**kwargs)


def test_components_are_checked(world, fitted):
    with pytest.raises(ValueError, match="positive weight but no component"):
        HybridRecommender.from_fitted({"knn": fitted["knn"]}, WEIGHTS)
    with pytest.raises(ValueError, match="not fitted"):
        HybridRecommender.from_fitted({"knn": CoCount(), "content": fitted["content"]}, {"knn": 0.5, "content": 0.5})
    other = make_world(n_users=20, seed=1)
    with pytest.raises(ValueError, match="another user/product index"):
        HybridRecommender.from_fitted({"knn": fitted["knn"], "content": ContentRecommender().fit(other)},
                                      {"knn": 0.5, "content": 0.5})
    with pytest.raises(ValueError, match="unknown strategy keys"):
        HybridRecommender.from_fitted({"pop": fitted["demographic"]}, {"demographic": 1.0})
    with pytest.raises(RuntimeError, match="not fitted"):
        HybridRecommender(WEIGHTS).recommend("user_0")


# --------------------------------------------------------------------------- fusion
@pytest.fixture(scope="module")
def hybrid(fitted) -> HybridRecommender:
    return HybridRecommender.from_fitted(fitted, WEIGHTS)


def test_output_shape_contributions_and_reasons(hybrid, world):
    users = [f"user_{u}" for u in range(world.n_users)] + ["stranger"]
    recs = hybrid.recommend(users, n=5)
    assert list(recs.columns) == ["user_id", "product_id", "score", "rank", "reason", *CONTRIB_COLUMNS]
    assert recs.groupby("user_id").size().eq(5).all() and recs.user_id.nunique() == len(users)
    np.testing.assert_allclose(recs[CONTRIB_COLUMNS].sum(axis=1), recs.score, atol=1e-12)
    assert recs.score.between(0, 1 + 1e-12).all() and (recs[CONTRIB_COLUMNS] >= 0).all().all()
    assert (recs.groupby("user_id").score.apply(lambda s: s.is_monotonic_decreasing)).all()
    assert (recs.groupby("user_id")["rank"].apply(lambda r: list(r) == [1, 2, 3, 4, 5])).all()
    strongest = recs[CONTRIB_COLUMNS].to_numpy().argmax(axis=1)
    reason_of = {0: CoCount.reason, 2: ContentRecommender.reason, 3: Pop.reason}
    assert list(recs.reason) == [reason_of[s] for s in strongest]


def test_history_less_user_moves_weight_to_demographic(hybrid):
    w = hybrid.effective_weights(["user_0", "user_29", "stranger"]).set_index("user_id")
    assert w.loc["user_0"].to_dict() == pytest.approx({"knn": 0.5, "svd": 0.0, "content": 0.3, "demographic": 0.2})
    for user in ("user_29", "stranger"):
        assert w.loc[user].to_dict() == pytest.approx({"knn": 0.0, "svd": 0.0, "content": 0.0, "demographic": 1.0})
    recs = hybrid.recommend(["stranger"], n=5)
    assert (recs.reason == Pop.reason).all()
    np.testing.assert_allclose(recs.contrib_demographic, recs.score)


def test_weight_redistribution_is_proportional(fitted, world):
    """A strategy that answers nobody (constant scores) passes its weight on pro rata."""

    class Flat(Recommender):
        name = "svd"

        def _fit(self, dataset, interactions):
            pass

        def score_users(self, rows):
            return np.ones((len(rows), len(self.interactions_.product_ids)))

    comps = dict(fitted, svd=Flat().fit(world, fitted["knn"].interactions_))
    model = HybridRecommender.from_fitted(comps)  # defaults: 40/30/20/10
    w = model.effective_weights(["user_0"]).iloc[0]
    assert w[list(STRATEGIES)].to_dict() == pytest.approx({"knn": 4 / 7, "svd": 0.0, "content": 2 / 7,
                                                           "demographic": 1 / 7})


def test_fallback_of_a_history_strategy_does_not_count_for_new_users(fitted, world):
    """A history-based component with its own popularity fallback for unknown
    users (like PureSVD's mean user) does not answer them in the fusion."""

    class MeanUser(Pop):
        name = "svd"

    comps = dict(fitted, svd=MeanUser().fit(world, fitted["knn"].interactions_))
    model = HybridRecommender.from_fitted(comps)
    w = model.effective_weights(["user_0", "stranger", "user_29"]).set_index("user_id")
    assert w.loc["user_0", "svd"] == pytest.approx(0.3)
    assert w.loc["stranger"].to_dict() == pytest.approx({"knn": 0, "svd": 0, "content": 0, "demographic": 1})
    assert w.loc["user_29"].to_dict() == pytest.approx({"knn": 0, "svd": 0, "content": 0, "demographic": 1})
    opened = HybridRecommender.from_fitted(comps, config=HybridConfig(history_strategies=("knn", "content")))
    assert opened.effective_weights(["stranger"]).iloc[0]["svd"] == pytest.approx(0.75)
    with pytest.raises(ConfigError, match="history_strategies"):
        HybridConfig(history_strategies=("knn", "bpr"))


def test_single_strategy_weight_reproduces_that_strategy(fitted, world):
    plain = HybridConfig(exclude_out_of_stock=False, spending_tier_filter=False)
    users = [f"user_{u}" for u in range(10)]
    for norm in ("minmax", "rank"):
        alone = HybridRecommender.from_fitted(fitted, {"content": 1.0}, HybridConfig(**{**plain.__dict__,
                                                                                        "normalization": norm}))
        got = alone.recommend(users, n=6)
        want = fitted["content"].recommend(users, n=6)
        assert list(got.product_id) == list(want.product_id)


def test_business_rules(hybrid, world):
    users = [f"user_{u}" for u in range(world.n_users)]
    recs = hybrid.recommend(users, n=8).merge(world.products, on="product_id")
    assert (recs.stock > 0).all()
    bought = world.events[world.events.event_type == "purchase"][["user_id", "product_id"]].drop_duplicates()
    assert recs.merge(bought, on=["user_id", "product_id"]).empty
    recs = recs.merge(world.users[["user_id", "spending_tier"]], on="user_id")
    for tier in world.config.spending_tiers:
        limit = world.products.groupby("category").price.quantile(tier.max_price_quantile)
        sub = recs[recs.spending_tier == tier.name]
        assert (sub.price <= sub.category.map(limit) + 1e-9).all(), tier.name
    # without the exclusion, some user gets a product back that they bought
    again = hybrid.recommend(users, n=8, exclude_purchased=False)
    assert not again.merge(bought, on=["user_id", "product_id"]).empty


def test_category_cap(fitted, world):
    capped = HybridRecommender.from_fitted(fitted, WEIGHTS, HybridConfig(category_cap=2))
    recs = capped.recommend([f"user_{u}" for u in range(world.n_users)], n=6).merge(world.products, on="product_id")
    assert recs.groupby(["user_id", "category"]).size().max() <= 2
    assert recs.groupby("user_id").size().eq(6).all()
    assert (recs.groupby("user_id")["rank"].max() == 6).all()


def test_fit_equals_from_fitted_and_with_weights_does_not_refit(world, hybrid):
    fresh = HybridRecommender(WEIGHTS, components=lambda: components(world)).fit(world)
    users = [f"user_{u}" for u in range(12)]
    pd.testing.assert_frame_equal(fresh.recommend(users, n=5), hybrid.recommend(users, n=5))
    other = hybrid.with_weights({"knn": 0.2, "content": 0.2, "demographic": 0.6})
    assert all(other.components_[s] is hybrid.components_[s] for s in hybrid.components_)
    assert not other.recommend(users, n=5).product_id.equals(hybrid.recommend(users, n=5).product_id)


def test_minus_inf_component_scores_normalise_to_zero(fitted, world):
    """A component's own filter (-inf) neither breaks the normalisation nor
    silences that component for the user."""

    class Filtered(Pop):
        def score_users(self, rows):
            out = super().score_users(rows)
            out[:, 1::2] = -np.inf
            return out

    comps = dict(fitted, demographic=Filtered().fit(world, fitted["knn"].interactions_))
    for norm in ("minmax", "rank"):
        config = HybridConfig(normalization=norm, exclude_out_of_stock=False, spending_tier_filter=False)
        recs = HybridRecommender.from_fitted(comps, WEIGHTS, config).recommend([f"user_{u}" for u in range(10)], n=8)
        assert np.isfinite(recs[CONTRIB_COLUMNS].to_numpy()).all()
        assert recs.contrib_demographic.between(0, WEIGHTS.demographic + 1e-12).all()
        assert (recs.contrib_demographic > 0).any()


def test_fewer_eligible_than_n_returns_fewer(fitted, world):
    model = HybridRecommender.from_fitted(fitted, WEIGHTS, HybridConfig(candidates_per_strategy=3))
    recs = model.recommend(["user_0"], n=200)
    assert 0 < len(recs) < world.n_products and list(recs["rank"]) == list(range(1, len(recs) + 1))


def test_score_users_marks_non_candidates(hybrid):
    scores = hybrid.score_users(np.array([0, -1]))
    assert scores.shape == (2, len(hybrid.interactions_.product_ids))
    finite = np.isfinite(scores)
    assert finite.any(axis=1).all() and (~finite).any()
    assert scores[finite].min() >= 0 and scores[finite].max() <= 1 + 1e-12


def test_bad_input(hybrid):
    with pytest.raises(ValueError, match="n must be a positive int"):
        hybrid.recommend("user_0", n=0)
    with pytest.raises(ValueError, match="malformed user id"):
        hybrid.recommend(["user 0"])


def test_hybrid_pickles(hybrid):
    clone = pickle.loads(pickle.dumps(hybrid))
    pd.testing.assert_frame_equal(clone.recommend(["user_0", "x"], n=4), hybrid.recommend(["user_0", "x"], n=4))
    assert hybrid.describe()["weights"] == {"knn": 0.5, "svd": 0.0, "content": 0.3, "demographic": 0.2}


# --------------------------------------------------------------------------- analysis helpers
def test_simplex_grid_weights():
    grid = [FusionWeights(**row) for row in simplex_grid(0.25).to_dict("records")]
    assert len(grid) == 35 and len(set(grid)) == 35  # C(4 + 3, 3)
    assert FusionWeights(1.0, 0.0, 0.0, 0.0) in grid and FusionWeights(0.0, 0.0, 0.0, 1.0) in grid
    finer = [FusionWeights(**row) for row in simplex_grid(0.1).to_dict("records")]
    assert FusionWeights() in finer and len(finer) == 286
    for bad in (0, 0.3, 1.5, True):
        with pytest.raises(ValueError, match="step"):
            simplex_grid(bad)


def test_overlap_at_k():
    a = pd.DataFrame({"user_id": ["u", "u", "v", "v"], "product_id": ["p1", "p2", "p1", "p3"], "rank": [1, 2, 1, 2]})
    b = pd.DataFrame({"user_id": ["u", "u", "v"], "product_id": ["p2", "p9", "p4"], "rank": [1, 2, 1]})
    assert overlap_at_k(a, a, 2) == 1.0
    assert overlap_at_k(a, b, 2) == pytest.approx((1 / 2 + 0 / 2) / 2)
    assert overlap_at_k(a, b, 1) == 0.0
    with pytest.raises(ValueError, match="k must be"):
        overlap_at_k(a, b, 0)


def test_weight_sweep_and_example_users(hybrid, world):
    users = [f"user_{u}" for u in range(world.n_users)]
    grid = [WEIGHTS, FusionWeights(0, 0, 0, 1), FusionWeights(1, 0, 0, 0)]
    calls = []
    sweep = weight_sweep(hybrid, users, grid, n=5, metrics={"rows": lambda r: calls.append(1) or len(r)},
                         reference=hybrid.recommend(users, 5))
    assert list(sweep.columns) == [*STRATEGIES, "overlap_at_5", "rows"] and len(calls) == 3
    assert sweep.overlap_at_5.iloc[0] == 1.0 and sweep.overlap_at_5.between(0, 1).all()
    assert sweep.overlap_at_5.iloc[1] < 1.0
    as_frame = weight_sweep(hybrid, users, pd.DataFrame([w.as_dict() for w in grid]), n=5,
                            metrics={"rows": len}, reference=hybrid.recommend(users, 5))
    pd.testing.assert_frame_equal(as_frame, sweep)
    picked = example_users(hybrid.interactions_)
    lengths = hybrid.interactions_.history_lengths()
    assert picked["heavy"] == f"user_{int(np.argmax(lengths))}"
    assert picked["new"] == "user_27"  # the first of the three users without events
    assert lengths[hybrid.interactions_.user_index([picked["niche"]])[0]] >= 5
    with pytest.raises(ValueError, match="min_history"):
        example_users(hybrid.interactions_, min_history=10_000)


def test_blocking_does_not_change_results(fitted, world):
    users = [f"user_{u}" for u in range(world.n_users)] + ["stranger"]
    whole = HybridRecommender.from_fitted(fitted, WEIGHTS).recommend(users, n=6)
    small = HybridRecommender.from_fitted(fitted, WEIGHTS)
    small.max_block_bytes = 1  # one user per block
    pd.testing.assert_frame_equal(small.recommend(users, n=6), whole)
