"""Stage 1 strategies: k-NN, demographic, baselines, and the sparse top-k routines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.metrics.pairwise import cosine_similarity
from stage1_helpers import assert_valid_top_n, purchased_pairs, tiny_dataset

from recsys.config import ConfigError
from recsys.interactions import Interactions
from recsys.models.base import Recommender
from recsys.models.baselines import Popularity, PopularityConfig, RandomRecommender
from recsys.models.demographic import REASONS, DemographicConfig, DemographicRecommender
from recsys.models.knn import ItemKNN, KNNConfig, UserKNN
from recsys.models.ranking import first_allowed, top_n_positive, topk_positions

STRATEGIES = [
    pytest.param(lambda: ItemKNN(), id="item_knn"),
    pytest.param(lambda: UserKNN(), id="user_knn"),
    pytest.param(lambda: DemographicRecommender(), id="demographic"),
    pytest.param(lambda: Popularity(), id="popularity"),
    pytest.param(lambda: RandomRecommender(seed=3), id="random"),
]


# -- top-k on sparse rows -------------------------------------------------------------------------------------------
def _reference_topk(matrix: sp.csr_matrix, k: np.ndarray) -> np.ndarray:
    keep = np.zeros(matrix.nnz, dtype=bool)
    for r in range(matrix.shape[0]):
        a, b = matrix.indptr[r], matrix.indptr[r + 1]
        order = np.lexsort((matrix.indices[a:b], -matrix.data[a:b]))
        keep[a + order[: k[r]]] = True
    return keep


def _shuffle_row_storage(matrix: sp.csr_matrix, rng: np.random.Generator) -> None:
    """Permute the stored entries within each CSR row (same matrix, unsorted indices)."""
    for r in range(matrix.shape[0]):
        a, b = matrix.indptr[r], matrix.indptr[r + 1]
        perm = rng.permutation(b - a)
        matrix.indices[a:b], matrix.data[a:b] = matrix.indices[a:b][perm], matrix.data[a:b][perm]
    matrix.has_sorted_indices = False


@pytest.mark.parametrize("seed", range(40))
def test_topk_positions_match_sorting_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_rows, n_cols = int(rng.integers(1, 12)), int(rng.integers(1, 1500))
    matrix = sp.random(n_rows, n_cols, density=rng.uniform(0.02, 1.0), format="csr", random_state=seed)
    matrix.data = np.round(matrix.data * rng.integers(1, 30)) + 1.0  # many ties
    if seed % 2:  # storage order within rows must not matter
        _shuffle_row_storage(matrix, rng)
    k = rng.integers(0, 60, size=n_rows) if seed % 3 else np.full(n_rows, int(rng.integers(0, 60)))
    mask = np.zeros(matrix.nnz, dtype=bool)
    mask[topk_positions(matrix, k)] = True
    assert (mask == _reference_topk(matrix, k)).all()


def test_first_allowed_skips_excluded_and_padding() -> None:
    orders = np.array([[3, 1, 2, 0], [2, -1, 0, 1]])
    excluded = sp.csr_matrix(np.array([[0, 1, 0, 1], [0, 0, 0, 0]], dtype=bool))
    rows, cols, pos = first_allowed(orders, excluded, np.array([2, 3]))
    assert rows.tolist() == [0, 0, 1, 1, 1]
    assert cols.tolist() == [2, 0, 2, 0, 1]
    assert pos.tolist() == [0, 1, 0, 1, 2]


# -- cosine k-NN ----------------------------------------------------------------------------------------------------
@pytest.fixture()
def hand_dataset():
    """X = [[1, 5, 0], [1, 0, 1], [0, 3, 1]] (view 1, cart 3, purchase 5, no decay)."""
    return tiny_dataset([("u0", "p0", "view"), ("u0", "p1", "purchase"), ("u1", "p0", "view"),
                         ("u1", "p2", "view"), ("u2", "p1", "cart"), ("u2", "p2", "view")])


def test_item_cosine_on_hand_computed_matrix(hand_dataset) -> None:
    model = ItemKNN(KNNConfig.plain(k=5)).fit(hand_dataset)
    s01, s02, s12 = 5 / np.sqrt(2 * 34), 1 / 2, 3 / np.sqrt(34 * 2)
    expected = np.array([[0, s01, s02], [s01, 0, s12], [s02, s12, 0]])
    assert model.similarity_.dtype == np.float32 and sp.isspmatrix_csr(model.similarity_)
    np.testing.assert_allclose(model.similarity_.toarray(), expected, rtol=1e-6)
    # score(u, .) = x_u @ W
    x = np.array([[1, 5, 0], [1, 0, 1], [0, 3, 1]], dtype=float)
    np.testing.assert_allclose(model.score_users(np.arange(3)), x @ expected, rtol=1e-6)


def test_shrinkage_and_top_k(hand_dataset) -> None:
    shrunk = ItemKNN(KNNConfig.plain(k=5, shrinkage=1.0)).fit(hand_dataset).similarity_.toarray()
    assert shrunk[0, 1] == pytest.approx(5 / (np.sqrt(2 * 34) + 1), rel=1e-6)
    assert shrunk[1, 2] == pytest.approx(3 / (np.sqrt(34 * 2) + 1), rel=1e-6)
    top1 = ItemKNN(KNNConfig.plain(k=1)).fit(hand_dataset).similarity_
    assert np.diff(top1.indptr).tolist() == [1, 1, 1]
    assert top1.indices.tolist() == [1, 0, 0]  # p2's best neighbour is p0 (0.5 > 0.364)


def test_user_cosine_on_hand_computed_matrix(hand_dataset) -> None:
    model = UserKNN(KNNConfig.plain(k=5)).fit(hand_dataset)
    x = np.array([[1, 5, 0], [1, 0, 1], [0, 3, 1]], dtype=float)
    expected = cosine_similarity(x)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(model.similarity_.toarray(), expected, rtol=1e-6)


@pytest.mark.parametrize("model_cls", [ItemKNN, UserKNN])
def test_neighbour_lists_hold_only_the_top_k(small_dataset, model_cls) -> None:
    k = 7
    model = model_cls(KNNConfig.plain(k=k)).fit(small_dataset)
    x = model.interactions_.matrix
    full = cosine_similarity(x.T if model_cls is ItemKNN else x)
    np.fill_diagonal(full, 0.0)
    sim = model.similarity_
    assert (np.diff(sim.indptr) <= k).all()
    for row in range(sim.shape[0]):
        kept = sim.indices[sim.indptr[row] : sim.indptr[row + 1]]
        positive = np.flatnonzero(full[row] > 1e-12)
        assert len(kept) == min(k, len(positive))
        if len(kept):
            dropped = np.setdiff1d(positive, kept)
            np.testing.assert_allclose(sim[row, kept].toarray().ravel(), full[row, kept], rtol=1e-5)
            if len(dropped):
                assert full[row, kept].min() >= full[row, dropped].max() - 1e-6


@pytest.mark.parametrize("model_cls", [ItemKNN, UserKNN])
def test_one_user_scores_equal_the_block_scores(small_dataset, model_cls) -> None:
    """``score_users`` of one row (the request path, via ``score_one``) equals that row of a block."""
    model = model_cls(KNNConfig()).fit(small_dataset)
    rows = np.array([0, 3, 11, -1, 25])
    block = model.score_users(rows)
    for i, row in enumerate(rows):
        np.testing.assert_array_equal(model.score_users(np.array([row])), block[i : i + 1])


def test_block_size_does_not_change_the_neighbours(small_dataset) -> None:
    big = ItemKNN(KNNConfig(k=10)).fit(small_dataset).similarity_
    small = ItemKNN(KNNConfig(k=10, block_entries=1000)).fit(small_dataset).similarity_
    assert (big != small).nnz == 0


def test_user_knn_recomputed_neighbours_equal_fitted_ones(small_dataset) -> None:
    model = UserKNN(KNNConfig.plain(k=10)).fit(small_dataset)
    rows = np.arange(40)
    history = model.interactions_.matrix[rows]
    fitted = model.score_history(history, rows, np.zeros(40, dtype=bool)).toarray()
    fresh = model.score_history(history, rows, np.ones(40, dtype=bool)).toarray()
    np.testing.assert_allclose(fresh, fitted, rtol=1e-5, atol=1e-6)


def test_item_neighbours_frame(small_dataset) -> None:
    model = ItemKNN(KNNConfig(k=5)).fit(small_dataset)
    frame = model.neighbours("product_0")
    assert list(frame.columns) == ["product_id", "neighbour_id", "similarity", "rank"]
    assert len(frame) <= 5 and frame["similarity"].is_monotonic_decreasing
    assert "product_0" not in set(frame["neighbour_id"])
    with pytest.raises(ValueError, match="unknown product id 'nope'"):
        model.neighbours("nope")


# -- every strategy: valid, deterministic top-n frames ----------------------------------------------------------------
@pytest.mark.parametrize("make", STRATEGIES)
def test_valid_top_n_for_many_users(small_dataset, make) -> None:
    model = make().fit(small_dataset)
    users = list(small_dataset.users["user_id"]) + ["stranger_1"]
    frame = model.recommend(users, n=10)
    assert_valid_top_n(frame, users, 10, small_dataset.n_products, purchased_pairs(small_dataset))
    again = make().fit(small_dataset).recommend(users, n=10)
    pd.testing.assert_frame_equal(frame, again)


@pytest.mark.parametrize("make", STRATEGIES[:4])
@pytest.mark.parametrize("n", [1, 10, 500])
@pytest.mark.parametrize("exclude", [True, False])
def test_fast_paths_equal_the_dense_base_path(small_dataset, make, n, exclude) -> None:
    model = make().fit(small_dataset)
    users = list(small_dataset.users["user_id"][::3]) + ["stranger_1"]
    fast = model.recommend(users, n=n, exclude_purchased=exclude)
    dense = Recommender.recommend(model, users, n=n, exclude_purchased=exclude)
    pd.testing.assert_frame_equal(fast, dense)


def test_exclude_purchased_false_keeps_bought_items_possible(hand_dataset) -> None:
    model = ItemKNN().fit(hand_dataset)
    assert "p1" not in set(model.recommend(["u0"], n=3)["product_id"])
    assert "p1" in set(model.recommend(["u0"], n=3, exclude_purchased=False)["product_id"])


# -- demographic --------------------------------------------------------------------------------------------------------
def test_demographic_scores_blend_and_reasons(small_dataset) -> None:
    model = DemographicRecommender(DemographicConfig(price_filter=False)).fit(small_dataset)
    scores = model.segment_scores_
    assert np.isfinite(scores).all() and scores.min() >= 0 and scores.max() <= 1 + 1e-12
    frame = model.recommend_for_profile(region="Asia", age=20, n=20)
    cats = small_dataset.products.set_index("product_id").loc[frame["product_id"], "category"].to_numpy()
    asia = small_dataset.config.region("Asia").categories
    young = small_dataset.config.age_group("young").categories
    for cat, reason in zip(cats, frame["reason"], strict=True):
        expected = REASONS[0] if cat in asia and cat in young else REASONS[1] if cat in asia else (
            REASONS[2] if cat in young else REASONS[3])
        assert reason == expected
    nobody = model.recommend_for_profile(n=5)
    assert set(nobody["reason"]) == {"Popular with all shoppers"}


def test_demographic_category_weight_zero_is_shrunk_segment_popularity(small_dataset) -> None:
    """With a = 0 and m = 0 the all-shoppers ranking is plain popularity."""
    demo = DemographicRecommender(DemographicConfig(category_weight=0.0, prior_users=0.0, price_filter=False))
    demo.fit(small_dataset)
    pop = Popularity().fit(small_dataset)
    np.testing.assert_allclose(demo.segment_scores_[0], pop.popularity_, rtol=1e-12)


def test_spending_tier_price_filter(small_dataset) -> None:
    model = DemographicRecommender().fit(small_dataset)
    products = small_dataset.products.set_index("product_id")
    limit = products.groupby("category")["price"].quantile(0.6)  # budget tier's max_price_quantile
    frame = model.recommend_for_profile(spending_tier="budget", n=50)
    chosen = products.loc[frame["product_id"]]
    assert (chosen["price"].to_numpy() <= limit.loc[chosen["category"]].to_numpy() + 1e-9).all()
    premium = model.recommend_for_profile(spending_tier="premium", n=small_dataset.n_products)
    assert len(premium) == small_dataset.n_products
    unfiltered = DemographicRecommender(DemographicConfig(price_filter=False)).fit(small_dataset)
    assert np.isfinite(unfiltered.score_users(np.arange(5))).all()


def test_demographic_unknown_user_gets_all_shoppers_ranking(small_dataset) -> None:
    model = DemographicRecommender().fit(small_dataset)
    frame = model.recommend(["stranger"], n=5)
    profile = model.recommend_for_profile(n=5)
    assert frame["product_id"].tolist() == profile["product_id"].tolist()


def test_demographic_bad_profiles(small_dataset) -> None:
    model = DemographicRecommender().fit(small_dataset)
    with pytest.raises(ValueError, match="unknown region value.*Mars"):
        model.recommend_for_profile(region="Mars")
    with pytest.raises(ValueError, match="unknown spending_tier"):
        model.recommend_for_profile(spending_tier="gold")
    with pytest.raises(ValueError, match="fall in no configured age group"):
        model.recommend_for_profile(age=7)
    with pytest.raises(ConfigError, match="category_weight"):
        DemographicConfig(category_weight=1.5)
    with pytest.raises(ConfigError, match="prior_users"):
        DemographicConfig(prior_users=-1)


def test_segment_table_lists_full_segments(small_dataset) -> None:
    table = DemographicRecommender().fit(small_dataset).segment_table()
    cfg = small_dataset.config
    assert len(table) == len(cfg.regions) * len(cfg.age_groups) * len(cfg.spending_tiers)
    assert table["users_with_history"].sum() == (np.diff(Interactions.from_dataset(small_dataset).matrix.indptr) > 0).sum() - (
        small_dataset.users["age"].isna().sum())


# -- baselines ----------------------------------------------------------------------------------------------------------
def test_popularity_measures(hand_dataset) -> None:
    weight = Popularity().fit(hand_dataset)
    np.testing.assert_allclose(weight.popularity_, np.array([2, 8, 2]) / 8)
    users = Popularity(PopularityConfig(measure="users")).fit(hand_dataset)
    np.testing.assert_allclose(users.popularity_, [1, 1, 1])
    assert users.order_.tolist() == [0, 1, 2]  # ties: column order
    with pytest.raises(ConfigError, match="measure"):
        PopularityConfig(measure="clicks")


def test_random_is_seeded_and_batch_independent(small_dataset) -> None:
    a = RandomRecommender(seed=1).fit(small_dataset)
    rows = np.arange(30)
    block = a.score_users(rows)
    np.testing.assert_array_equal(block[5:6], a.score_users(rows[5:6]))
    assert ((block >= 0) & (block < 1)).all()
    b = RandomRecommender(seed=2).fit(small_dataset)
    assert not np.array_equal(block, b.score_users(rows))
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        RandomRecommender(seed=-1)


# -- bad input ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", STRATEGIES)
@pytest.mark.parametrize("bad_n", [0, -3, 2.5, True, "10", None])
def test_bad_n_is_a_value_error(small_dataset, make, bad_n) -> None:
    model = make().fit(small_dataset)
    with pytest.raises(ValueError, match="n must be a positive int"):
        model.recommend(["user_0"], n=bad_n)


@pytest.mark.parametrize("make", STRATEGIES)
@pytest.mark.parametrize("bad_id", ["", "user 0", 17, None, "x" * 200])
def test_malformed_user_id_is_a_value_error(small_dataset, make, bad_id) -> None:
    model = make().fit(small_dataset)
    with pytest.raises(ValueError, match="malformed user id"):
        model.recommend(["user_0", bad_id], n=5)


@pytest.mark.parametrize("make", STRATEGIES[:4])
def test_data_set_without_events_is_a_value_error(make) -> None:
    empty = tiny_dataset([])
    with pytest.raises(ValueError, match="no events"):
        make().fit(empty)


@pytest.mark.parametrize("make", STRATEGIES)
def test_data_set_without_users_is_a_value_error(make) -> None:
    users = tiny_dataset([]).users.iloc[:0]
    empty = tiny_dataset([], users=users)
    with pytest.raises(ValueError, match="empty data set"):
        make().fit(empty)


def test_knn_config_validation() -> None:
    for bad in ({"k": 0}, {"k": 2.5}, {"shrinkage": -1.0}, {"min_similarity": 2.0}, {"block_entries": 0}):
        with pytest.raises(ConfigError):
            KNNConfig(**bad)


def _reference_top_n(matrix: sp.csr_matrix, banned: sp.csr_matrix, n: int) -> list[list[tuple[int, float]]]:
    dense, ban = matrix.toarray(), banned.toarray()
    out = []
    for r in range(matrix.shape[0]):
        cols = [c for c in np.lexsort((np.arange(dense.shape[1]), -dense[r])) if dense[r, c] > 0 and not ban[r, c]]
        out.append([(int(c), float(dense[r, c])) for c in cols[:n]])
    return out


@pytest.mark.parametrize("seed", range(30))
def test_top_n_positive_matches_sorting_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_rows, n_cols = int(rng.integers(1, 40)), int(rng.integers(1, 3000))
    matrix = sp.random(n_rows, n_cols, density=rng.uniform(0.01, 0.9), format="csr", random_state=seed,
                       dtype=np.float32)
    matrix.data = (np.round(matrix.data * rng.integers(1, 40)) - rng.integers(0, 3)).astype(np.float32)  # ties, <= 0
    if seed % 2:  # storage order within rows must not matter
        _shuffle_row_storage(matrix, rng)
    banned = sp.random(n_rows, n_cols, density=rng.uniform(0, 0.05), format="csr", random_state=seed + 1) > 0
    n = int(rng.integers(1, 50))
    rows, cols, values, rank = top_n_positive(matrix, banned.tocsr(), n, sample=int(rng.choice([8, 64, 256])))
    got = [[] for _ in range(n_rows)]
    for r, c, v, k in zip(rows, cols, values, rank, strict=True):
        assert k == len(got[r]) + 1
        got[r].append((int(c), float(v)))
    assert got == _reference_top_n(matrix, banned, n)
    assert values.dtype == np.float32


def test_top_n_positive_declines_float64() -> None:
    assert top_n_positive(sp.csr_matrix(np.ones((2, 3))), None, 2) is None
