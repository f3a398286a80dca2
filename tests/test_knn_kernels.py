"""The compiled cosine top-k kernels (:mod:`recsys.models.knn_kernels`) equal the scipy
reference path of :func:`~recsys.models.knn.cosine_topk` bit for bit: same neighbours,
same float32 values, same order, on matrices with ties, empty rows and columns, explicit
zeros (NaN similarities), infinities, shrinkage and a similarity floor."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import recsys.models.knn_kernels as knn_kernels
from recsys.interactions import Interactions
from recsys.models.knn import ItemKNN, KNNConfig, UserKNN, _canonical, _row_norms, _transposed, cosine_topk


def _tied_matrix(seed: int, shape: tuple[int, int], density: float) -> sp.csr_matrix:
    """Few distinct values, duplicated rows (exact ties among neighbours), an empty row and an empty column."""
    rng = np.random.default_rng(seed)
    x = sp.random(*shape, density=density, format="csr", random_state=seed).toarray()
    x = np.round(x * 3) / 3
    x[rng.integers(0, shape[0], 4)] = x[rng.integers(0, shape[0], 4)]
    x[rng.integers(0, shape[0])] = 0.0
    x[:, rng.integers(0, shape[1])] = 0.0
    return sp.csr_matrix(x)


def _assert_same(got: sp.csr_matrix, want: sp.csr_matrix) -> None:
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    assert got.has_sorted_indices and want.has_sorted_indices
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    assert got.data.tobytes() == want.data.tobytes()


def _both(left, right, k, shrinkage=0.0, min_similarity=0.0, self_columns=None) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    got = cosine_topk(left, right, k, shrinkage, min_similarity, self_columns, method="compiled")
    want = cosine_topk(left, right, k, shrinkage, min_similarity, self_columns, block_entries=97, method="scipy")
    return got, want


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("k", [1, 3, 10, 500])
@pytest.mark.parametrize("shrinkage, min_similarity", [(0.0, 0.0), (1.5, 0.0), (0.0, 0.25)])
def test_symmetric_kernel_equals_the_scipy_path(seed: int, k: int, shrinkage: float, min_similarity: float) -> None:
    x = _tied_matrix(seed, (60, 40), 0.12)
    _assert_same(*_both(x, x, k, shrinkage, min_similarity, np.arange(60)))


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("self_columns", ["none", "arange", "some"])
def test_general_kernel_equals_the_scipy_path(seed: int, self_columns: str) -> None:
    left, right = _tied_matrix(seed, (25, 40), 0.15).tolil(), _tied_matrix(seed + 100, (70, 40), 0.1)
    left[3] = right[5]  # an exact copy: similarity 1
    left = left.tocsr()
    own = {"none": None, "arange": np.arange(25),
           "some": np.random.default_rng(seed).integers(-1, 70, 25)}[self_columns]
    for k in (1, 4, 100):
        _assert_same(*_both(left, right, k, 0.5, 0.0, own))


def test_the_symmetric_kernel_equals_the_general_one_row_by_row() -> None:
    x = _canonical(_tied_matrix(3, (80, 50), 0.1))
    norm = _row_norms(x)
    sym = knn_kernels.topk_symmetric(x, _transposed(x), norm, 7, 0.0, 0.0)
    gen = knn_kernels.topk_general(x, _transposed(x), norm, norm, 7, 0.0, 0.0, np.arange(80))
    _assert_same(sym, gen)


def test_equal_but_distinct_operands_take_the_symmetric_kernel(monkeypatch) -> None:
    x = _tied_matrix(5, (30, 20), 0.2)
    calls = []
    real = knn_kernels.topk_symmetric
    monkeypatch.setattr(knn_kernels, "topk_symmetric", lambda *a: calls.append(1) or real(*a))
    _assert_same(cosine_topk(x, x.copy(), 4, self_columns=np.arange(30)),
                 cosine_topk(x, x, 4, self_columns=np.arange(30), method="scipy"))
    assert calls == [1]
    cosine_topk(x, x, 4, self_columns=None)  # self included: not the symmetric case
    assert calls == [1]


def test_explicit_zeros_infinities_and_nan_are_dropped_as_in_the_reference() -> None:
    x = _tied_matrix(11, (40, 30), 0.15).tolil()
    x[0, 0], x[0, 1] = 0.0, 0.0  # a row storing only zeros: 0/0 similarities
    x[1] = 0.0
    x[1, 2] = np.inf  # inf / inf
    x[2, 3] = np.nan
    x = sp.csr_matrix(x)
    x.data[x.indptr[0]:x.indptr[1]] = 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        _assert_same(*_both(x, x, 5, 0.0, 0.0, np.arange(40)))
        _assert_same(*_both(x[:10], x, 5, 0.0, 0.0, np.arange(10)))


def test_unsorted_indices_and_duplicate_entries_are_taken_in_canonical_form() -> None:
    x = _tied_matrix(2, (30, 25), 0.2)
    counts = np.diff(x.indptr)
    # every row stored twice over, halves, columns in descending order: unsorted, with duplicates
    bounds = list(zip(x.indptr[:-1], x.indptr[1:], strict=True))
    indices = np.concatenate([np.tile(x.indices[s:e][::-1], 2) for s, e in bounds])
    data = np.concatenate([np.tile(x.data[s:e][::-1] / 2, 2) for s, e in bounds])
    dup = sp.csr_matrix((data, indices, np.r_[0, np.cumsum(2 * counts)]), shape=x.shape)
    assert not dup.has_canonical_format and dup.nnz == 2 * x.nnz
    _assert_same(*_both(dup, dup, 4, 0.0, 0.0, np.arange(30)))
    _assert_same(cosine_topk(dup, dup, 4, self_columns=np.arange(30)),
                 cosine_topk(x, x, 4, self_columns=np.arange(30)))
    assert dup.nnz == 2 * x.nnz  # the caller's matrix is left as it was


def test_empty_inputs_and_k_beyond_the_rows() -> None:
    empty = sp.csr_matrix((0, 5))
    assert cosine_topk(empty, empty, 3, self_columns=np.arange(0)).shape == (0, 0)
    one = sp.csr_matrix(np.ones((1, 4)))
    assert cosine_topk(one, one, 3, self_columns=np.arange(1)).nnz == 0  # its only neighbour is itself
    _assert_same(*_both(sp.csr_matrix((6, 4)), sp.csr_matrix((3, 4)), 2))


def test_an_unknown_method_is_refused() -> None:
    x = sp.csr_matrix(np.eye(3))
    with pytest.raises(ValueError, match="method must be 'auto', 'compiled' or 'scipy', got 'numpy'"):
        cosine_topk(x, x, 2, method="numpy")


def test_fitted_neighbourhood_models_equal_the_reference_fit(small_dataset, monkeypatch) -> None:
    inter = Interactions.from_dataset(small_dataset)
    compiled = [ItemKNN(KNNConfig(k=8)).fit(small_dataset, inter), UserKNN(KNNConfig(k=8)).fit(small_dataset, inter)]
    import recsys.models.knn as knn

    real = knn.cosine_topk
    monkeypatch.setattr(knn, "cosine_topk", lambda *a, **kw: real(*a, **kw, method="scipy"))
    reference = [ItemKNN(KNNConfig(k=8)).fit(small_dataset, inter), UserKNN(KNNConfig(k=8)).fit(small_dataset, inter)]
    for got, want in zip(compiled, reference, strict=True):
        assert got.similarity_.data.tobytes() == want.similarity_.data.tobytes()
        assert np.array_equal(got.similarity_.indices, want.similarity_.indices)
    users = np.arange(min(40, inter.shape[0]))
    fresh = np.ones(len(users), dtype=bool)  # every history recomputed: the general kernel
    history = compiled[1]._profiles()[users]
    np.testing.assert_array_equal(compiled[1].score_history(history, users, fresh).toarray(),
                                  reference[1].score_history(history, users, fresh).toarray())


def test_a_cache_location_that_cannot_be_written_compiles_in_memory(monkeypatch) -> None:
    calls = []

    def njit(**options):
        calls.append(options)
        if options.get("cache"):
            raise RuntimeError("cannot cache function 'f': no locator available for file '/ro/f.py'")
        return lambda fn: ("compiled", fn)

    monkeypatch.setattr(knn_kernels, "njit", njit)

    def f() -> None: ...

    with pytest.warns(RuntimeWarning, match="numba cannot cache f .*no locator available.*compiling it in memory"):
        assert knn_kernels._cached(f) == ("compiled", f)
    assert [c.get("cache", False) for c in calls] == [True, False]
    assert all(c["error_model"] == "numpy" for c in calls)


def test_without_numba_the_scipy_path_runs_and_compiled_is_refused(monkeypatch) -> None:
    import sys

    x = _tied_matrix(4, (30, 20), 0.2)
    want = cosine_topk(x, x, 3, self_columns=np.arange(30), method="scipy")
    monkeypatch.setitem(sys.modules, "recsys.models.knn_kernels", None)  # the import now raises ImportError
    _assert_same(cosine_topk(x, x, 3, self_columns=np.arange(30)), want)
    with pytest.raises(RuntimeError, match="needs numba, which cannot be imported"):
        cosine_topk(x, x, 3, self_columns=np.arange(30), method="compiled")
