"""The batch fit's fast paths (issue 23) equal their plain references: the blocked
cosine top-k against a brute-force dense cosine, the weighted matrices against a
pandas group-by, and the data set's cached per-event arrays against a fresh computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys.config import EVENT_TYPES
from recsys.data.dataset import Dataset
from recsys.interactions import Interactions, Weighting, event_weights, weighted_matrix
from recsys.models.kernels import row_flops
from recsys.models.knn import ItemKNN, KNNConfig, cosine_topk


def _brute_cosine_topk(x: np.ndarray, k: int, shrinkage: float, min_similarity: float) -> np.ndarray:
    """Dense reference: float64 ``<a, b> / (|a| |b| + s)``, self and non-positive
    entries dropped, the top ``k`` per row by (-value, column), cast to float32."""
    norms = np.sqrt((x * x).sum(axis=1))
    with np.errstate(invalid="ignore"):  # 0/0 of an all-zero row: NaN, dropped as not > 0
        sims = (x @ x.T) / (norms[:, None] * norms[None, :] + shrinkage)
    out = np.zeros(sims.shape, dtype=np.float32)
    for a in range(len(x)):
        ok = [b for b in range(len(x)) if b != a and sims[a, b] > 0 and sims[a, b] >= min_similarity]
        best = sorted(ok, key=lambda b: (-sims[a, b], b))[:k]
        out[a, best] = sims[a, best]
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("shrinkage, min_similarity", [(0.0, 0.0), (2.0, 0.0), (0.0, 0.2)])
def test_cosine_topk_equals_brute_force(seed: int, shrinkage: float, min_similarity: float) -> None:
    rng = np.random.default_rng(seed)
    x = sp.random(40, 60, density=0.15, format="csr", random_state=seed).toarray()
    x[rng.integers(0, 40, 5)] = x[rng.integers(0, 40, 5)]  # duplicate rows: exact ties among neighbours
    x = np.round(x * 4) / 4  # few distinct values: more ties
    want = _brute_cosine_topk(x, 4, shrinkage, min_similarity)
    for method in ("compiled", "scipy"):
        got = cosine_topk(sp.csr_matrix(x), sp.csr_matrix(x), 4, shrinkage, min_similarity, np.arange(40), 97, method)
        assert got.dtype == np.float32 and got.has_sorted_indices
        np.testing.assert_array_equal(got.toarray() != 0, want != 0)  # the same neighbours, ties to the lower index
        np.testing.assert_allclose(got.toarray(), want, rtol=1e-6)


def test_cosine_topk_blocks_by_multiply_adds_do_not_change_the_result(small_dataset) -> None:
    items = Interactions.from_dataset(small_dataset).matrix.T.tocsr()
    flops = row_flops(items, items.T.tocsr())
    assert flops.sum() == sum(int(np.diff(items.T.tocsr().indptr)[items.indices[items.indptr[r]:items.indptr[r + 1]]].sum())
                              for r in range(items.shape[0]))
    whole = cosine_topk(items, items, 10, self_columns=np.arange(items.shape[0]), block_entries=int(flops.sum()),
                        method="scipy")
    for budget in (1, int(flops.max()), int(flops.sum()) // 7):
        part = cosine_topk(items, items, 10, self_columns=np.arange(items.shape[0]), block_entries=budget,
                           method="scipy")
        assert np.array_equal(part.indptr, whole.indptr) and np.array_equal(part.indices, whole.indices)
        assert np.array_equal(part.data, whole.data)


def test_knn_fit_is_byte_identical_across_runs(small_dataset) -> None:
    a = ItemKNN(KNNConfig()).fit(small_dataset)
    b = ItemKNN(KNNConfig()).fit(small_dataset)
    for x, y in ((a.similarity_, b.similarity_), (a.profile_matrix_, b.profile_matrix_)):
        assert x.data.tobytes() == y.data.tobytes() and x.indices.tobytes() == y.indices.tobytes()


def _groupby_reference(dataset, weighting: Weighting) -> sp.csr_matrix:
    """What weighted_matrix computed before the cached codes: a pandas group-by over string ids."""
    events = dataset.events
    users, products = pd.Index(dataset.users["user_id"]), pd.Index(dataset.products["product_id"])
    rows, cols = users.get_indexer(events["user_id"]), products.get_indexer(events["product_id"])
    half = weighting.half_life_days if weighting.half_life_days is not None else np.inf
    from dataclasses import replace
    values = event_weights(events, dataset.as_of, replace(dataset.config.interactions, half_life_days=half))
    pairs = pd.DataFrame({"r": rows, "c": cols, "v": values}).groupby(["r", "c"], sort=True)["v"].max()
    return sp.csr_matrix((pairs.to_numpy(), (pairs.index.get_level_values(0), pairs.index.get_level_values(1))),
                         shape=(len(users), len(products)))


@pytest.mark.parametrize("half_life", [None, 30.0])
def test_binary_repeats_equal_the_group_by_maximum(small_dataset, half_life) -> None:
    inter = Interactions.from_dataset(small_dataset)
    weighting = Weighting(half_life_days=half_life, repeats="binary")
    got = weighted_matrix(small_dataset, weighting, inter.user_ids, inter.product_ids)
    want = _groupby_reference(small_dataset, weighting)
    want.eliminate_zeros()
    assert np.array_equal(got.indptr, want.indptr) and np.array_equal(got.indices, want.indices)
    assert got.data.tobytes() == want.data.astype(np.float64).tobytes()


def test_weighted_matrix_on_another_index_order(small_dataset) -> None:
    inter = Interactions.from_dataset(small_dataset)
    users, products = inter.user_ids[::-1][:30], inter.product_ids[::-1]
    weighting = Weighting(half_life_days=30.0, repeats="binary", scheme="tfidf")
    full = weighted_matrix(small_dataset, Weighting(half_life_days=30.0, repeats="binary"), inter.user_ids,
                           inter.product_ids).toarray()
    got = weighted_matrix(small_dataset, Weighting(half_life_days=30.0, repeats="binary"), users, products)
    np.testing.assert_array_equal(got.toarray(), full[::-1][:30][:, ::-1])
    assert weighted_matrix(small_dataset, weighting, users, products).shape == (30, len(products))


def test_event_index_is_cached_and_follows_the_frames(small_dataset) -> None:
    ds = Dataset(small_dataset.users, small_dataset.products, small_dataset.events, small_dataset.as_of)
    index, events = ds.event_index(), ds.events
    assert ds.event_index() is index
    np.testing.assert_array_equal(index.user_row, pd.Index(ds.users["user_id"]).get_indexer(events["user_id"]))
    np.testing.assert_array_equal(index.product_col,
                                  pd.Index(ds.products["product_id"]).get_indexer(events["product_id"]))
    np.testing.assert_array_equal(index.kind, [EVENT_TYPES.index(k) for k in events["event_type"]])
    np.testing.assert_array_equal(index.age_days, (ds.as_of - events["timestamp"]).dt.total_seconds() / 86400.0)
    assert not index.user_row.flags.writeable
    restricted = ds.restrict_events(np.arange(len(events)) % 2 == 0)
    assert len(restricted.event_index().user_row) == len(restricted.events)
    hash_before = ds.content_hash()
    assert ds.content_hash() is hash_before  # cached
    ds.events = events.iloc[::-1].reset_index(drop=True)  # a new frame: both recomputed
    assert ds.event_index() is not index and ds.content_hash() != hash_before
    assert ds.event_index().user_row[0] == index.user_row[-1]


def test_event_weights_of_an_unknown_event_type_are_zero(small_dataset) -> None:
    events = small_dataset.events.head(3).assign(event_type=["view", "bogus", "purchase"])
    weights = event_weights(events, small_dataset.as_of, small_dataset.config.interactions)
    assert weights[1] == 0.0 and weights[0] > 0 and weights[2] > weights[0]


def test_cosine_topk_of_rows_storing_only_zeros_drops_their_nan_similarities() -> None:
    x = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 0.0], [1.0, 0.0, 3.0], [0.0, 1.0, 1.0]])
    stored = sp.csr_matrix(x)  # row 0 empty; below it stores two explicit zeros (norm 0: 0/0 similarities)
    zeros = sp.csr_matrix((np.r_[0.0, 0.0, stored.data], np.r_[0, 1, stored.indices],
                           np.r_[0, stored.indptr[1:] + 2]), shape=x.shape)
    assert zeros.nnz == stored.nnz + 2
    for method in ("compiled", "scipy"):
        got = cosine_topk(zeros, zeros, 2, self_columns=np.arange(4), method=method)
        np.testing.assert_array_equal(got.toarray(), _brute_cosine_topk(x, 2, 0.0, 0.0))
        assert got[0].nnz == 0 and got[:, 0].nnz == 0


def test_a_data_set_does_not_share_writes_with_the_callers_frames(small_dataset) -> None:
    """No up-front deep copy (copy-on-write): writes to the caller's frame still do not reach the data set."""
    events = small_dataset.events.copy()
    ds = Dataset(small_dataset.users, small_dataset.products, events, small_dataset.as_of)
    before = ds.content_hash()
    events["quantity"] = events["quantity"] + 5
    events.loc[0, "user_id"] = "someone_else"
    assert ds.events["quantity"].equals(small_dataset.events["quantity"])
    assert ds.events.loc[0, "user_id"] == small_dataset.events.loc[0, "user_id"]
    assert Dataset(ds.users, ds.products, ds.events, ds.as_of).content_hash() == before


def test_saved_and_loaded_data_set_round_trips(small_dataset, tmp_path) -> None:
    small_dataset.save(tmp_path / "ds")
    back = Dataset.load(tmp_path / "ds")
    assert back.content_hash() == small_dataset.content_hash()
    assert back.events.dtypes.equals(small_dataset.events.dtypes)
    pd.testing.assert_frame_equal(back.events, small_dataset.events)


def test_run_batch_reuses_given_interactions_and_refuses_foreign_ones(small_dataset, tmp_path) -> None:
    from recsys.stage2.job import run_batch

    inter = Interactions.from_dataset(small_dataset)
    shared = run_batch(small_dataset, tmp_path / "a", interactions=inter)
    own = run_batch(small_dataset, tmp_path / "b")
    for name in ("svd_user_factors", "svd_item_factors", "segments", "demand", "seasonal_factors"):
        a = pd.read_parquet(shared.path / f"{name}.parquet")
        b = pd.read_parquet(own.path / f"{name}.parquet")
        pd.testing.assert_frame_equal(a, b)
    other = small_dataset.restrict_events(np.arange(len(small_dataset.events)) % 2 == 0)
    smaller = Interactions.from_dataset(Dataset(other.users.head(50), other.products, other.events[
        other.events["user_id"].isin(other.users["user_id"].head(50))], other.as_of))
    with pytest.raises(ValueError, match="do not belong to this data set"):
        run_batch(small_dataset, tmp_path / "c", interactions=smaller)
