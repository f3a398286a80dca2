"""The speed kernels (:mod:`recsys.models.kernels`) equal the plain scipy/numpy result they replace."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import recsys.models.kernels as kernels
from recsys.models.kernels import history_scores, sparse_product


def _random_csr(seed: int, shape: tuple[int, int], density: float = 0.05) -> sp.csr_matrix:
    return sp.random(*shape, density=density, format="csr", dtype=np.float32, random_state=seed)


@pytest.mark.parametrize("seed", range(5))
def test_sparse_product_equals_scipy(seed: int) -> None:
    left = _random_csr(seed, (30, 200), 0.05)
    right = _random_csr(seed + 7, (200, 150), 0.1)
    got, want = sparse_product(left, right), (left @ right).tocsr()
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(got.indptr, want.indptr)
    assert np.array_equal(got.indices, want.indices) and np.array_equal(got.data, want.data)
    both64 = sparse_product(left.astype(np.float64), right.astype(np.float64))
    assert np.allclose(both64.toarray(), want.toarray(), rtol=1e-6)


def test_the_private_scipy_kernel_is_used_where_present(monkeypatch) -> None:
    assert kernels._csr_matmat is not None, "this scipy has no csr_matmat: the fast path never runs"
    calls = []
    real = kernels._csr_matmat

    def spy(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(kernels, "_csr_matmat", spy)
    left, right = _random_csr(1, (40, 30)), _random_csr(2, (30, 50))
    out = sparse_product(left, right)
    assert calls == [1]
    np.testing.assert_array_equal(out.toarray(), (left @ right).toarray())


def test_a_failing_private_kernel_falls_back_to_the_public_product(monkeypatch) -> None:
    def broken(*args):
        raise TypeError("csr_matmat() takes 11 arguments (12 given)")

    monkeypatch.setattr(kernels, "_csr_matmat", broken)
    left, right = _random_csr(3, (40, 30)), _random_csr(4, (30, 50))
    np.testing.assert_array_equal(sparse_product(left, right).toarray(), (left @ right).toarray())
    monkeypatch.setattr(kernels, "_csr_matmat", None)
    np.testing.assert_array_equal(sparse_product(left, right).toarray(), (left @ right).toarray())


@pytest.mark.parametrize("seed", range(5))
def test_history_scores_equal_the_sparse_product_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    similarity = _random_csr(seed + 11, (120, 120), 0.08)
    items = rng.choice(120, size=int(rng.integers(1, 15)), replace=False).astype(np.int32)
    weights = rng.uniform(0.1, 3.0, len(items)).astype(np.float32)
    history = sp.csr_matrix((weights, items, np.array([0, len(items)])), shape=(1, 120))
    got = history_scores(similarity, items, weights)
    want = sparse_product(history, similarity).toarray().ravel()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got, (history.astype(np.float64) @ similarity.astype(np.float64)).toarray().ravel(),
                               rtol=1e-5)


def test_history_scores_of_an_empty_history_are_zero() -> None:
    similarity = _random_csr(5, (20, 20), 0.2)
    got = history_scores(similarity, np.array([], dtype=np.int64), np.array([], dtype=np.float32))
    np.testing.assert_array_equal(got, np.zeros(20, dtype=np.float32))
