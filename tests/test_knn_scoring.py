"""The k-NN's compiled block path (``recsys.models.knn_scoring``) equals its numpy/scipy path bit for bit:
the block product (scipy's ``csr_matmat``), the row ranges, the top candidates above the floor and the
scores read at candidate columns; and the models give the same answers with the kernels as without."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import recsys.models.knn as knn_module
from recsys.data.dataset import Dataset
from recsys.interactions import Interactions
from recsys.models import knn_scoring
from recsys.models.base import Recommender
from recsys.models.kernels import sparse_product
from recsys.models.knn import ItemKNN, KNNConfig, UserKNN
from recsys.models.ranking import take_rows


def _same_csr(got: sp.csr_matrix, want: sp.csr_matrix) -> None:
    """Same rows, the same entries in the same stored order, the same float32 bits."""
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    assert got.data.tobytes() == want.data.tobytes()


def _tied(rng: np.random.Generator, shape: tuple[int, int], density: float, signed: bool = False) -> sp.csr_matrix:
    """A float32 CSR with few distinct values (ties and, signed, sums cancelling to exact zeros)."""
    x = sp.random(*shape, density=density, random_state=rng, format="csr", dtype=np.float32)
    levels = np.array([-1.0, -0.5, 0.25, 0.5, 1.0, 2.0] if signed else [0.25, 0.5, 0.75, 1.0, 3.0], dtype=np.float32)
    x.data = levels[rng.integers(0, len(levels), size=x.nnz)]
    return x


@pytest.mark.parametrize("seed", range(6))
def test_block_product_is_scipys_product_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(20):
        n_rows, n_mid, n_cols = (int(v) for v in rng.integers(1, 60, size=3))
        left = _tied(rng, (n_rows, n_mid), rng.uniform(0, 0.4), signed=seed % 2 == 1)
        right = _tied(rng, (n_mid, n_cols), rng.uniform(0, 0.4), signed=seed % 2 == 1)
        left.data = (left.data * rng.uniform(0.1, 3.0, size=left.nnz)).astype(np.float32)  # real rounding too
        _same_csr(knn_scoring.block_product(left, right), sparse_product(left, right))


def test_block_product_takes_entries_in_stored_order_and_int64_indices() -> None:
    """Unsorted and duplicate history entries are summed in stored order, as scipy does; exact
    zeros (cancelling sums, stored zeros) are dropped; empty rows stay empty."""
    left = sp.csr_matrix((np.array([1.5, -1.5, 0.3, 0.0, 0.7], dtype=np.float32), np.array([2, 2, 0, 1, 0]),
                          np.array([0, 2, 2, 5])), shape=(3, 3))
    right = _tied(np.random.default_rng(3), (3, 7), 0.8)
    _same_csr(knn_scoring.block_product(left, right), sparse_product(left, right))
    wide = sp.csr_matrix((left.data, left.indices.astype(np.int64), left.indptr.astype(np.int64)), shape=left.shape)
    _same_csr(knn_scoring.block_product(wide, right), sparse_product(left, right))
    assert knn_scoring.block_product(left.astype(np.float64), right) is None  # float32 only: the caller's scipy path


def _positive_scores(rng: np.random.Generator, shape: tuple[int, int]) -> sp.csr_matrix:
    """Sparse positive float32 scores: ties, empty rows, a full row (no unstored 0)."""
    x = _tied(rng, shape, rng.uniform(0.02, 0.6))
    x.data *= np.float32(rng.choice([1.0, 1.1]))
    x = x.tolil()
    x[0, :] = 0.5  # every column stored: the row's floor is its smallest score
    if shape[0] > 2:
        x[2, :] = 0
    return sp.csr_matrix(x.tocsr(), dtype=np.float32)


def _numpy_range_top(model: ItemKNN, hint: sp.csr_matrix, m: int, allowed: np.ndarray) -> tuple:
    high, low, floor = model._score_range_numpy(None, hint.toarray().astype(np.float64), hint)
    cols, ok = model._top_candidates_numpy(None, hint.toarray().astype(np.float64), m, floor, allowed, hint)
    return high, low, floor, cols, ok


def _assert_same_top(got: tuple, want: tuple) -> None:
    cols, ok = got
    want_cols, want_ok = want
    np.testing.assert_array_equal(ok, want_ok)
    np.testing.assert_array_equal(np.where(ok, cols, -1), np.where(want_ok, want_cols, -1))


@pytest.mark.parametrize("seed", range(5))
def test_range_top_equals_the_numpy_range_and_top(seed: int) -> None:
    """Ties to the lower column, all-ineligible rows, ``m`` beyond a row and beyond the columns."""
    rng = np.random.default_rng(10 + seed)
    model = ItemKNN()
    for _ in range(15):
        shape = (int(rng.integers(3, 12)), int(rng.integers(2, 300)))
        hint = _positive_scores(rng, shape)
        allowed = rng.random(shape) < rng.choice([0.1, 0.7, 1.0])
        allowed[1] = False  # a row with nothing eligible
        for m in (1, 5, 100, shape[1] + 7):
            got = knn_scoring.range_top(hint, m, allowed)
            want = _numpy_range_top(model, hint, m, allowed)
            for mine, ref in zip(got[:3], want[:3], strict=True):
                np.testing.assert_array_equal(mine, ref)
            _assert_same_top(got[3:], want[3:])
            dense = hint.toarray().astype(np.float64)  # and the base class's dense rules themselves
            _assert_same_top(got[3:], Recommender.top_candidates(model, None, dense, m, got[2], allowed))
            lifted = got[2] + rng.choice([0.0, 0.5], size=shape[0])  # a floor inside the scores
            _assert_same_top(knn_scoring.top_above(hint, m, lifted, allowed),
                             model._top_candidates_numpy(None, dense, m, lifted, allowed, hint))


@pytest.mark.parametrize("share", [0.02, 0.3, 0.77, 1.0])
def test_range_top_on_long_rows_under_any_mask(share: float) -> None:
    """Rows of thousands of entries (the cut, the re-cuts and the whole-pool filter of a sparse mask)."""
    rng = np.random.default_rng(int(share * 100))
    hint = _positive_scores(rng, (8, 4000))
    allowed = rng.random(hint.shape) < share
    model = ItemKNN()
    for m in (1, 30, 100, 1500):
        got = knn_scoring.range_top(hint, m, allowed)
        _assert_same_top(got[3:], _numpy_range_top(model, hint, m, allowed)[3:])


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
def test_range_top_declines_scores_that_are_not_finite_and_positive(bad: float) -> None:
    """Such blocks take the numpy path (``None``); the model's answer is then the numpy one."""
    hint = _positive_scores(np.random.default_rng(1), (4, 30))
    hint.data[3] = bad
    allowed = np.ones(hint.shape, dtype=bool)
    assert knn_scoring.range_top(hint, 5, allowed) is None
    model = ItemKNN()
    got = model.range_and_top(None, hint.toarray().astype(np.float64), 5, allowed, hint)
    want = _numpy_range_top(model, hint, 5, allowed)
    for mine, ref in zip(got[:3], want[:3], strict=True):
        np.testing.assert_array_equal(mine, ref)
    _assert_same_top(got[3:], want[3:])
    if not np.isfinite(bad):
        assert knn_scoring.top_above(hint, 5, np.zeros(4), allowed) is None
    assert knn_scoring.top_above(hint, 5, np.full(4, -0.5), allowed) is None  # a floor below 0: dense rules


def test_range_top_without_a_mask_gives_ranges_only_and_checks_its_mask() -> None:
    hint = _positive_scores(np.random.default_rng(2), (5, 40))
    high, low, floor, cols, ok = knn_scoring.range_top(hint, 0, None)
    np.testing.assert_array_equal(high, ItemKNN()._score_range_numpy(None, None, hint)[0])
    assert cols.shape == (5, 0) and not ok.any()
    assert knn_scoring.range_top(hint, 3, np.ones((5, 39), dtype=bool)) is None
    assert knn_scoring.range_top(hint, 3, np.ones((5, 40))) is None  # not a boolean mask


def test_values_at_reads_the_dense_block() -> None:
    rng = np.random.default_rng(4)
    hint = _positive_scores(rng, (6, 50))
    dup = sp.csr_matrix((np.array([1.5, 2.25], dtype=np.float32), np.array([3, 3]), np.array([0, 2])), shape=(1, 5))
    np.testing.assert_array_equal(knn_scoring.values_at(dup, np.array([0, 0]), np.array([3, 4])), [3.75, 0.0])
    cand = np.sort(rng.integers(0, 50, size=(6, 9)), axis=1)
    r = np.broadcast_to(np.arange(6)[:, None], cand.shape)
    want = hint.toarray()[r, cand].astype(np.float64)
    got = knn_scoring.values_at(hint, r, cand)
    assert got.dtype == np.float64 and got.shape == cand.shape
    np.testing.assert_array_equal(got, want)
    order = rng.permutation(r.size)  # rows in any order, revisited
    np.testing.assert_array_equal(knn_scoring.values_at(hint, r.ravel()[order], cand.ravel()[order]),
                                  want.ravel()[order])
    with pytest.raises(IndexError, match=r"entry \(6, 0\) is outside the 6 x 50 block"):
        knn_scoring.values_at(hint, np.array([0, 6]), np.array([0, 0]))
    with pytest.raises(IndexError, match=r"entry \(1, -1\)"):
        knn_scoring.values_at(hint, np.array([1]), np.array([-1]))


@pytest.fixture(scope="module")
def ci_knn(ci_dataset: Dataset) -> tuple[ItemKNN, UserKNN]:
    inter = Interactions.from_dataset(ci_dataset)
    return ItemKNN().fit(ci_dataset, inter), UserKNN(KNNConfig(k=20)).fit(ci_dataset, inter)


def test_ci_models_score_and_select_as_without_the_kernels(ci_knn, monkeypatch) -> None:
    """On the ci fixture: item and user k-NN block scores (known, unknown and changed users), the
    hybrid's calls (range and top in one visit, scores at candidates) and ``recommend`` are those of
    the numpy/scipy path."""
    item, user = ci_knn
    n_users = len(item.interactions_.user_ids)
    rows = np.concatenate([np.arange(0, n_users, 3), [-1, n_users + 5]])
    fresh = np.zeros(len(rows), dtype=bool)
    fresh[::4] = True
    allowed = np.random.default_rng(5).random((len(rows), item.interactions_.shape[1])) < 0.8
    m = 100
    history = take_rows(item._profiles(), rows)  # as the hybrid passes it: unknown users have no history

    def answers() -> tuple:
        item_scores = item.score_history(history, rows)
        user_scores = user.score_history(history, rows, fresh)
        ranged = item.range_and_top(rows, None, m, allowed, item_scores.tocsr())
        cand = np.sort(np.concatenate([np.where(ranged[4], ranged[3], 0), allowed[:, :20] * 7], axis=1), axis=1)
        r = np.broadcast_to(np.arange(len(rows))[:, None], cand.shape)
        at = item.scores_at(rows, r, cand, None, item_scores)
        return item_scores, user_scores, ranged, at, item.recommend(list(item.interactions_.user_ids[:50]), 10)

    compiled = answers()
    monkeypatch.setattr(knn_module, "_scoring_kernels", lambda: None)
    reference = answers()
    _same_csr(compiled[0], reference[0])
    _same_csr(compiled[1], reference[1])
    for mine, ref in zip(compiled[2][:3], reference[2][:3], strict=True):
        np.testing.assert_array_equal(mine, ref)
    _assert_same_top(compiled[2][3:], reference[2][3:])
    np.testing.assert_array_equal(compiled[3], reference[3])
    assert compiled[4].equals(reference[4])
