"""The batch top-N paths (issue 23): the sampled-bound selection of :mod:`recsys.models.ranking`
against full sorts, the hybrid's block path against one user at a time, and PureSVD's
float32-screened top-N against ranking its dense float64 scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.data import Dataset
from recsys.models.base import Recommender, top_n_frame
from recsys.models.content import ContentRecommender
from recsys.models.demographic import DemographicRecommender
from recsys.models.hybrid import CONTRIB_COLUMNS, HybridRecommender
from recsys.models.knn import ItemKNN
from recsys.models.ranking import nth_largest, take_rows, top_n_dense, top_n_indices
from recsys.models.select import _block as select_block
from recsys.models.select import dense_top, range_top, sample_step
from recsys.models.svd import PureSVD


def _block(rng: np.random.Generator, kind: int, shape: tuple[int, int]) -> np.ndarray:
    """Random scores with the awkward cases: many ties, -inf runs, NaN, float32."""
    scores = rng.normal(size=shape)
    if kind == 1:
        scores = np.round(scores, 1)  # many ties, also at the n-th value
    elif kind == 2:
        scores[rng.random(shape) < 0.7] = -np.inf
    elif kind == 3:
        scores[rng.random(shape) < 0.05] = np.nan
        scores[rng.random(shape) < 0.3] = -np.inf
    elif kind == 4:
        scores = rng.integers(0, 3, size=shape).astype(np.float32)
    return scores


@pytest.mark.parametrize("kind", range(5))
def test_top_n_dense_matches_a_full_stable_sort(kind: int) -> None:
    rng = np.random.default_rng(kind)
    for _ in range(40):
        shape = (int(rng.integers(1, 12)), int(rng.integers(1, 2500)))
        scores = _block(rng, kind, shape)
        n = int(rng.integers(1, 150))
        cols, ok = top_n_dense(scores, n, sample=int(rng.choice([4, 64, 1024])))
        assert ok.all()
        np.testing.assert_array_equal(cols, top_n_indices(scores, min(n, shape[1])))


@pytest.mark.parametrize("kind", range(4))
def test_top_n_dense_with_floor_and_allowed_is_the_filtered_ranking(kind: int) -> None:
    """``floor``/``allowed``: the entries of the full ranking of the allowed scores that lie above the floor."""
    rng = np.random.default_rng(10 + kind)
    for _ in range(40):
        shape = (int(rng.integers(1, 12)), int(rng.integers(1, 2500)))
        scores = _block(rng, kind, shape)
        allowed = rng.random(shape) < 0.6
        floor = np.min(scores, axis=1)
        n = int(rng.integers(1, 150))
        cols, ok = top_n_dense(scores, n, floor, allowed, sample=int(rng.choice([4, 64, 1024])))
        masked = np.where(allowed, scores, -np.inf)
        ref = top_n_indices(masked, min(n, shape[1]))
        ref_ok = np.take_along_axis(masked, ref, axis=1) > floor[:, None]
        np.testing.assert_array_equal(ok[:, : ref.shape[1]], ref_ok)
        np.testing.assert_array_equal(np.where(ref_ok, cols[:, : ref.shape[1]], -1), np.where(ref_ok, ref, -1))


def test_nth_largest_matches_a_sort() -> None:
    rng = np.random.default_rng(3)
    for trial in range(60):
        shape = (int(rng.integers(1, 12)), int(rng.integers(1, 2500)))
        scores = rng.normal(size=shape).astype(np.float32)
        if trial % 2:
            scores[rng.random(shape) < 0.5] = -np.inf
        n = int(rng.integers(1, 150))
        expected = -np.sort(-scores, axis=1)[:, n - 1] if n <= shape[1] else np.full(shape[0], -np.inf)
        np.testing.assert_array_equal(nth_largest(scores, n, sample=int(rng.choice([4, 1024]))), expected)


def test_top_n_dense_names_a_mismatched_mask() -> None:
    with pytest.raises(ValueError, match="allowed"):
        top_n_dense(np.zeros((2, 5)), 3, allowed=np.ones((2, 4), dtype=bool))
    with pytest.raises(ValueError, match="floor"):
        top_n_dense(np.zeros((2, 5)), 3, floor=np.zeros(3))


@pytest.mark.parametrize("exclude", [True, False])
def test_hybrid_block_path_equals_one_user_at_a_time(ci_dataset: Dataset, ci_parts, exclude: bool) -> None:
    """Blocks of users (several per call, several calls) give each user's own single-user answer:
    same products, order, ranks and reasons; fused scores and contributions equal up to the BLAS
    rounding that differs between a one-row and a many-row product (<= 1e-12)."""
    hybrid = HybridRecommender.from_fitted(ci_parts, ci_dataset.config.fusion)
    hybrid.max_block_bytes = 37 * 8 * ci_dataset.n_products  # blocks of 37 users: several blocks
    users = list(hybrid.interactions_.user_ids[::7]) + ["someone_new"]
    block = hybrid.recommend(users, 10, exclude_purchased=exclude)
    alone = pd.concat([hybrid.recommend([u], 10, exclude_purchased=exclude) for u in users], ignore_index=True)
    assert len(block) == len(alone) >= 10 * len(users) - 10
    for column in ("user_id", "product_id", "rank", "reason"):
        assert block[column].tolist() == alone[column].tolist(), column
    for column in ["score", *CONTRIB_COLUMNS]:
        np.testing.assert_allclose(block[column], alone[column], rtol=0, atol=1e-12)
    # and the block size does not matter at all for the result (bits included) once blocks hold many rows
    hybrid.max_block_bytes = 500 * 8 * ci_dataset.n_products
    pd.testing.assert_frame_equal(hybrid.recommend(users, 10, exclude_purchased=exclude)[["user_id", "product_id", "rank"]],
                                  block[["user_id", "product_id", "rank"]])


@pytest.mark.parametrize("exclude", [True, False])
def test_puresvd_screened_top_n_equals_ranking_the_dense_scores(ci_dataset: Dataset, ci_parts, exclude: bool) -> None:
    """PureSVD's top-N (float32 screen, float64 rescoring) ranks exactly as sorting its dense
    float64 scores (ties to the lower column); scores agree to float64 rounding."""
    svd: PureSVD = ci_parts["svd"]
    users = list(svd.interactions_.user_ids) + ["someone_new"]
    got = svd.recommend(users, 10, exclude_purchased=exclude)
    rows = svd.interactions_.user_index(users)
    banned = take_rows(svd.interactions_.purchased, rows) if exclude else None
    scores = svd.score_users(rows)
    expected = top_n_frame(scores, users, svd.interactions_.product_ids, 10, svd.reasons_for(rows, scores), banned)
    for column in ("user_id", "product_id", "rank", "reason"):
        assert got[column].tolist() == expected[column].tolist(), column
    np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-12, atol=1e-12)
    assert got.loc[got["user_id"] == "someone_new", "reason"].eq(svd.unknown_reason).all()


def test_puresvd_top_n_keeps_ties_in_column_order(ci_dataset: Dataset, ci_parts) -> None:
    """Products with identical factors (e.g. never bought: zero vectors) tie exactly; they come in column order."""
    svd: PureSVD = ci_parts["svd"]
    copies = [len(svd.item_factors_) - 2, 1, 1]  # product 0 .. P-3 share one factor row
    tied = PureSVD.from_factors(svd.config, svd.dataset_, svd.interactions_, svd.user_factors_,
                                np.repeat(svd.item_factors_[:3], copies, axis=0),
                                svd.singular_values_, svd.mean_user_factors_)
    users = list(svd.interactions_.user_ids[:50])
    got = tied.recommend(users, 5, exclude_purchased=False)
    distinct = svd.user_factors_[:50] @ svd.item_factors_[:3].T  # the three values each user can score
    expected = top_n_indices(np.repeat(distinct, copies, axis=1), 5)
    cols = tied.interactions_.product_index(got["product_id"].tolist()).reshape(len(users), 5)
    np.testing.assert_array_equal(cols, expected)


@pytest.mark.parametrize("share", [0.9, 0.2, 0.01])
def test_demographic_segment_shortcuts_equal_the_dense_rules(ci_parts, share: float) -> None:
    """The demographic strategy's per-segment range and its walk down the segment ranking give
    what the base class computes from the dense block, whatever share of products is allowed
    (a small share makes the walk leave its first prefix)."""
    demo: DemographicRecommender = ci_parts["demographic"]
    rows = np.concatenate([np.arange(0, len(demo.user_segment_), 5), [-1]])
    scores = demo.score_users(rows)
    dense_range = Recommender.score_range(demo, rows, scores)
    for mine, dense in zip(demo.score_range(rows, scores), dense_range, strict=True):
        np.testing.assert_array_equal(mine, dense)
    allowed = np.random.default_rng(5).random(scores.shape) < share
    for m in (1, 10, 100):
        cols, ok = demo.top_candidates(rows, scores, m, dense_range[2], allowed)
        ref_cols, ref_ok = Recommender.top_candidates(demo, rows, scores, m, dense_range[2], allowed)
        np.testing.assert_array_equal(ok, ref_ok)
        np.testing.assert_array_equal(np.where(ok, cols, -1), np.where(ref_ok, ref_cols, -1))


@pytest.mark.parametrize("share", [0.9, 0.3])
def test_knn_sparse_shortcuts_equal_the_dense_rules(ci_parts, share: float) -> None:
    """The k-NN's range and top candidates read from its sparse scores (the ``score_block`` hint)
    equal the base class's dense computation on the same block; without a hint it falls back."""
    knn: ItemKNN = ci_parts["knn"]
    rows = np.concatenate([np.arange(0, len(knn.interactions_.user_ids), 3), [-1]])
    dense, hint = knn.score_block(rows)
    assert hint is not None
    np.testing.assert_array_equal(dense, knn.score_users(rows))
    dense_range = Recommender.score_range(knn, rows, dense)
    for mine, ref in zip(knn.score_range(rows, dense, hint), dense_range, strict=True):
        np.testing.assert_array_equal(mine, ref)
    allowed = np.random.default_rng(9).random(dense.shape) < share
    for m in (1, 10, 100):
        cols, ok = knn.top_candidates(rows, dense, m, dense_range[2], allowed, hint)
        ref_cols, ref_ok = Recommender.top_candidates(knn, rows, dense, m, dense_range[2], allowed)
        np.testing.assert_array_equal(ok, ref_ok)
        np.testing.assert_array_equal(np.where(ok, cols, -1), np.where(ref_ok, ref_cols, -1))
    one, no_hint = knn.score_block(rows[:1])
    assert no_hint is None and one.shape == (1, dense.shape[1])


@pytest.mark.parametrize("kind", range(5))
def test_compiled_range_and_top_equal_the_numpy_rules(kind: int) -> None:
    """``dense_top`` is ``top_n_dense`` with a floor and a mask, and ``range_top`` is the base
    class's ``score_range`` plus that top at its floor -- ties, -inf, NaN and float32 input included."""
    rng = np.random.default_rng(30 + kind)
    for trial in range(40):
        shape = (int(rng.integers(1, 12)), int(rng.integers(1, 2500)))
        scores = _block(rng, kind, shape).astype(np.float64)
        allowed = rng.random(shape) < rng.choice([0.05, 0.6, 1.0])
        n = int(rng.integers(1, 150))
        high, low, floor = Recommender.score_range(None, None, scores)
        lifted = floor + (0.5 if trial % 5 == 0 else 0.0)  # a floor inside the scores, not only the minimum
        np.testing.assert_array_equal(np.stack(dense_top(scores, n, lifted, allowed)),
                                      np.stack(top_n_dense(scores, n, lifted, allowed)))
        sample = scores[:, ::sample_step(scores.shape[1])]  # the sample handed over instead of read
        np.testing.assert_array_equal(np.stack(dense_top(scores, n, lifted, allowed, sample)),
                                      np.stack(top_n_dense(scores, n, lifted, allowed)))
        got = range_top(scores, n, allowed)
        for mine, ref in zip(got, (high, low, floor, *top_n_dense(scores, n, floor, allowed)), strict=True):
            np.testing.assert_array_equal(mine, ref)


@pytest.mark.parametrize("kind", range(5))
def test_compiled_selection_reads_a_float32_block_as_it_is(kind: int) -> None:
    """A float32 block (the content strategy's) is selected without a float64 copy and gives what
    the same block widened to float64 gives: high, low, floor, columns and flags."""
    rng = np.random.default_rng(50 + kind)
    for _ in range(30):
        shape = (int(rng.integers(1, 12)), int(rng.integers(1, 2500)))
        scores = _block(rng, kind, shape).astype(np.float32)
        wide = scores.astype(np.float64)
        allowed = rng.random(shape) < rng.choice([0.05, 0.6, 1.0])
        n = int(rng.integers(1, 150))
        for mine, ref in zip(range_top(scores, n, allowed), range_top(wide, n, allowed), strict=True):
            np.testing.assert_array_equal(mine, ref)
        floor = range_top(wide, n, allowed)[2]
        np.testing.assert_array_equal(np.stack(dense_top(scores, n, floor, allowed)),
                                      np.stack(dense_top(wide, n, floor, allowed)))
    block = np.zeros((3, 10), dtype=np.float32)
    assert select_block(block) is block  # no copy
    assert select_block(block.astype(np.float16)).dtype == np.float64


@pytest.mark.parametrize("lift", ["near", "far"])
def test_compiled_top_survives_a_sample_that_misleads_its_bound(lift: str) -> None:
    """Rows whose strided sample sits above almost every other entry (scores that follow the
    column order): the first bound lets too few through, so the backup bound ("near": the sample
    just above the rest) or the full pass ("far") must find the rest -- still exactly ``top_n_dense``."""
    rng = np.random.default_rng(11)
    n_cols, m = 20_000, 100
    step = n_cols // 512
    scores = rng.random((3, n_cols))
    sampled = np.arange(0, n_cols, step)
    if lift == "near":
        scores[:, sampled] = 0.99 + 0.01 * rng.random((3, len(sampled)))
    else:
        scores[:, sampled[:40]] += 2.0 + rng.random((3, 40))
    allowed = rng.random(scores.shape) < 0.9
    high, low, floor = Recommender.score_range(None, None, scores)
    got = range_top(scores, m, allowed)
    for mine, ref in zip(got, (high, low, floor, *top_n_dense(scores, m, floor, allowed)), strict=True):
        np.testing.assert_array_equal(mine, ref)


def test_compiled_selection_names_mismatched_shapes() -> None:
    scores = np.zeros((2, 5))
    with pytest.raises(ValueError, match="allowed has shape"):
        dense_top(scores, 2, np.zeros(2), np.ones((2, 4), dtype=bool))
    with pytest.raises(ValueError, match="floor needs one value per row"):
        dense_top(scores, 2, np.zeros(3), np.ones((2, 5), dtype=bool))
    with pytest.raises(ValueError, match="sampled has shape"):
        dense_top(scores, 2, np.zeros(2), np.ones((2, 5), dtype=bool), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="allowed has shape"):
        range_top(scores, 2, np.ones((1, 5), dtype=bool))


def _content_rows(content: ContentRecommender) -> np.ndarray:
    """Every other user, an unknown one (-1) and a known user without history (if the fixture has one)."""
    lengths = np.diff(content.interactions_.matrix.indptr)
    empty = np.flatnonzero(lengths == 0)[:1]
    return np.concatenate([np.arange(0, len(lengths), 2), [-1], empty]).astype(np.int64)


def test_content_float32_scores_are_within_the_rounding_bound_of_float64(ci_parts) -> None:
    """The served float32 cosine vs the float64 one (scipy's ``X @ P^T`` of the float64 profiles):
    ``|s32 - s64| <= (nnz_i + 4) 2^-24`` per product ``i`` (``nnz_i`` rounded products and sums of
    terms whose absolute sum is at most ``||x_i|| ||q_u|| = 1``, plus the rounding of ``x``, ``q``
    and the result); unknown and history-less users score exactly 0."""
    content: ContentRecommender = ci_parts["content"]
    rows = _content_rows(content)
    expected = np.asarray(content.item_vectors_ @ content.user_profiles(rows).T).T
    block, hint = content.score_block(rows)
    assert block.dtype == np.float32
    np.testing.assert_array_equal(hint.high, block.max(axis=1))  # each row's range, found while scoring
    np.testing.assert_array_equal(hint.low, block.min(axis=1))
    np.testing.assert_array_equal(hint.sampled, block[:, ::sample_step(block.shape[1])])  # and its sample
    got = content.score_users(rows)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, block)  # widened exactly
    bound = (np.diff(content.item_vectors_.indptr) + 4) * 2.0**-24
    assert (np.abs(got - expected) <= bound[None, :]).all()
    assert np.abs(got - expected).max() > 0  # really float32 arithmetic
    blank = ~content.has_profile(rows)  # -1, the history-less user, and any others
    assert blank[rows < 0].all() and (got[blank] == 0).all() and (got[~blank].max(axis=1) > 0).all()


def test_content_scores_have_the_same_bits_for_any_block_size(ci_parts) -> None:
    """One arithmetic for every block: each user alone (the service), and blocks of 3, 8, 32 and
    100 users (also with other ``profile_block`` settings) give exactly the same float32 scores."""
    content: ContentRecommender = ci_parts["content"]
    rows = _content_rows(content)
    reference = content.score_block(rows)[0]
    for size in (1, 3, 8, 32, 100):
        pieces = [content.score_block(rows[start : start + size]) for start in range(0, len(rows), size)]
        np.testing.assert_array_equal(np.concatenate([block for block, _ in pieces]), reference,
                                      err_msg=f"blocks of {size}")
        for j in (0, 1, 2):  # the range and the sample too
            np.testing.assert_array_equal(np.concatenate([hint[j] for _, hint in pieces]),
                                          (reference.max(axis=1), reference.min(axis=1),
                                           reference[:, ::sample_step(reference.shape[1])])[j])
    none, (high, low, _) = content.score_block(np.zeros(0, dtype=np.int64))
    assert none.shape == (0, reference.shape[1]) and none.dtype == np.float32 and high.shape == low.shape == (0,)
    for users in (1, 5, 7, 9, 40):
        content.profile_block = users
        try:
            np.testing.assert_array_equal(content.score_block(rows)[0], reference, err_msg=f"profile_block {users}")
        finally:
            del content.profile_block


def test_content_profiles_table_is_the_float64_profiles_rounded(ci_parts) -> None:
    """The compiled profile builder: terms x users float32, ``user_profiles`` (scipy, float64)
    rounded to float32 (within one float32 ulp: the two sum in different orders before rounding);
    zero columns for unknown and history-less users."""
    content: ContentRecommender = ci_parts["content"]
    rows = _content_rows(content)
    table = content.profiles_table(rows)
    assert table.dtype == np.float32 and table.shape == (content.vocabulary_size_, len(rows))
    assert table.flags.c_contiguous
    np.testing.assert_allclose(table, content.user_profiles(rows).T, rtol=2.0**-22, atol=0)
    has = content.has_profile(rows)
    assert (table[:, ~has] == 0).all() and (np.linalg.norm(table[:, has].astype(np.float64), axis=0) > 0.999).all()


def test_content_block_answers_the_fusion_in_float64(ci_parts) -> None:
    """The float32 block goes through the compiled selection as it is, its range read from the
    hint; ``dense_block`` and ``scores_at`` hand the fusion the same values as float64."""
    content: ContentRecommender = ci_parts["content"]
    rows = _content_rows(content)[:50]
    block, hint = content.score_block(rows)
    wide = content.dense_block(rows, block, hint)
    assert wide.dtype == np.float64
    np.testing.assert_array_equal(wide, block)
    np.testing.assert_array_equal(content.dense_block(rows, None), block)
    r, c = np.arange(len(rows)), np.arange(len(rows)) * 7 % block.shape[1]
    at = content.scores_at(rows, r, c, block, hint)
    assert at.dtype == np.float64
    np.testing.assert_array_equal(at, block[r, c])
    np.testing.assert_array_equal(content.scores_at(rows, r, c, None), block[r, c])
    allowed = np.random.default_rng(4).random(block.shape) < 0.8
    expected = range_top(wide, 100, allowed)
    for given in (hint, None):  # the range from the hint, or computed
        for mine, ref in zip(content.range_and_top(rows, block, 100, allowed, given), expected, strict=True):
            np.testing.assert_array_equal(mine, ref)
            assert mine.dtype == ref.dtype


def test_hybrid_reads_knn_and_demographic_without_their_dense_blocks(ci_parts) -> None:
    """The k-NN block stays sparse and the demographic one is never built, yet the scores the fusion
    reads at its candidates and the blocks it hands out on request are the dense ones."""
    hybrid = HybridRecommender.from_fitted(ci_parts)
    rows = np.concatenate([np.arange(0, len(hybrid.interactions_.user_ids), 4), [-1]])
    blocks, hints = hybrid._component_blocks(rows)
    assert blocks["knn"] is None and blocks["demographic"] is None
    top = hybrid.fuse_rows(rows, 10)
    for name in ("knn", "demographic", "svd", "content"):
        dense = np.asarray(ci_parts[name].score_users(rows), dtype=np.float64)
        np.testing.assert_array_equal(top.component_scores[name], dense)
        assert top.component_scores[name].dtype == np.float64  # the content block is float32 until asked for
        cand = top.component_scores.at_candidates[name]
        assert cand.shape[0] == len(rows)
    demo = ci_parts["demographic"]
    r, c = np.arange(len(rows)), np.arange(len(rows)) % demo.segment_scores_.shape[1]
    np.testing.assert_array_equal(demo.scores_at(rows, r, c, None, hints["demographic"]),
                                  demo.score_users(rows)[r, c])
