"""Memory-saving paths of training (issue 23): the same results, smaller buffers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.metrics import silhouette_score

from recsys.data import Dataset
from recsys.interactions import Interactions, compact_csr
from recsys.stage2 import segment_methods


def _owns_exactly(array: np.ndarray) -> bool:
    return array.base is None or array.base.nbytes == array.nbytes


def test_compact_csr_frees_the_event_buffers_and_keeps_the_values() -> None:
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, 100, 2000), rng.integers(0, 100, 2000)  # some duplicate pairs
    matrix = sp.csr_matrix((rng.random(2000), (rows, cols)), shape=(100, 100))
    matrix.sum_duplicates()
    assert not _owns_exactly(matrix.data)  # scipy keeps a view into the 2,000-entry buffer
    dense = matrix.toarray()
    assert compact_csr(matrix) is matrix
    assert _owns_exactly(matrix.data) and _owns_exactly(matrix.indices)
    assert len(matrix.data) == len(matrix.indices) == matrix.nnz
    np.testing.assert_array_equal(matrix.toarray(), dense)


def test_interactions_hold_exactly_their_entries(small_dataset: Dataset) -> None:
    inter = Interactions.from_dataset(small_dataset)
    assert inter.matrix.nnz < len(small_dataset.events)  # repeated (user, product) pairs were summed
    assert _owns_exactly(inter.matrix.data) and _owns_exactly(inter.matrix.indices)


def test_chunked_silhouette_equals_scikit_learns() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(900, 5))
    labels = rng.integers(0, 4, 900)
    for sample in (None, 400):
        expected = silhouette_score(x, labels, sample_size=sample, random_state=7)
        assert segment_methods.silhouette(x, labels, sample, 7) == expected


def test_silhouette_blocks_stay_within_the_working_memory(monkeypatch) -> None:
    import sklearn.metrics.pairwise as pairwise

    seen: list[int] = []
    original = pairwise.pairwise_distances

    def recording(X, Y=None, **kwargs):  # noqa: N803 (scikit-learn's names)
        out = original(X, Y, **kwargs)
        seen.append(out.nbytes)
        return out

    monkeypatch.setattr(pairwise, "pairwise_distances", recording)
    monkeypatch.setattr(segment_methods, "SILHOUETTE_WORKING_MEMORY_MIB", 1)
    x = np.random.default_rng(2).normal(size=(1500, 3))
    labels = np.arange(1500) % 3
    value = segment_methods.silhouette(x, labels, None, 0)
    blocks = list(seen)
    assert value == silhouette_score(x, labels)
    assert len(blocks) > 1 and max(blocks) <= 2**20  # 1,500 x 1,500 float64 (18 MB) came in blocks of <= 1 MiB


def test_selected_event_weights_equal_the_full_ones(small_dataset: Dataset) -> None:
    from recsys.interactions import dataset_event_weights

    weights = small_dataset.config.interactions
    every = dataset_event_weights(small_dataset, weights)
    select = np.flatnonzero(np.arange(len(every)) % 3 == 1)
    np.testing.assert_array_equal(dataset_event_weights(small_dataset, weights, select), every[select])


def test_binary_weighting_in_chunks_equals_one_pass(small_dataset: Dataset, monkeypatch) -> None:
    import recsys.interactions as interactions_module
    from recsys.interactions import Weighting, weighted_matrix

    users, products = pd.Index(small_dataset.users["user_id"]), pd.Index(small_dataset.products["product_id"])
    weighting = Weighting(half_life_days=30.0, repeats="binary", scheme="tfidf")
    whole = weighted_matrix(small_dataset, weighting, users, products)
    monkeypatch.setattr(interactions_module, "_CHUNK", 7)  # many chunks of positions and sorted values
    chunked = weighted_matrix(small_dataset, weighting, users, products)
    assert len(small_dataset.events) > 7 * 10
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(whole, name))


def test_released_event_index_is_recomputed_identically(small_dataset: Dataset) -> None:
    first = small_dataset.event_index()
    small_dataset.release_event_index()
    second = small_dataset.event_index()
    assert second is not first  # dropped, not kept
    for name in ("user_row", "product_col", "kind", "age_days"):
        np.testing.assert_array_equal(getattr(second, name), getattr(first, name))
    small_dataset.release_event_index()
    small_dataset.release_event_index()  # nothing cached: a no-op


def test_training_leaves_no_event_index_behind(engine) -> None:
    cache = engine.dataset_.__dict__.get("_derived_cache", {})
    assert "event_index" not in cache  # released after its last user (the deals' CandidateBuilder)
    assert engine.deals(engine.dataset_.users["user_id"].iloc[0], 3)["deals"] is not None
