"""The compiled fusion steps (:mod:`recsys.models.fusion`) against the numpy code they replaced.

The reference functions below are the hybrid's numpy fusion as it was before the kernels (union by
sort + repeat mask + stable argsort, ``_normalize``, ``contrib.sum(axis=0)``, ``_top``, the FusedTopN
assembly); every comparison is bit for bit (float64 compared as integers, so ``-0.0`` and NaN
payloads count too).
"""

from __future__ import annotations

import numpy as np
import pytest

from recsys.models import fusion
from recsys.models.hybrid import STRATEGIES, HybridConfig, HybridRecommender


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shape, dtype and bits."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == "f":
        return np.array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}"))
    return np.array_equal(a, b)


# -- the numpy reference (the code before the kernels) ------------------------------------------
def ref_union(tops, oks, n_products):
    keyed = np.where(np.concatenate(oks, axis=1), np.concatenate(tops, axis=1), n_products)
    keyed.sort(axis=1)
    repeat = np.zeros_like(keyed, dtype=bool)
    repeat[:, 1:] = keyed[:, 1:] == keyed[:, :-1]
    valid = (keyed < n_products) & ~repeat
    width = max(int(valid.sum(axis=1).max(initial=0)), 1)
    order = np.argsort(~valid, axis=1, kind="stable")[:, :width]
    return np.take_along_axis(np.where(valid, keyed, 0), order, axis=1), np.take_along_axis(valid, order, axis=1)


def ref_fuse(raw, present, weights, valid, method="minmax"):
    contrib = np.zeros(raw.shape)
    for j in np.flatnonzero(present):
        contrib[j] = weights[:, j][:, None] * fusion.normalize(raw[j], valid, method)
    return contrib, np.where(valid, contrib.sum(axis=0), -np.inf)


def ref_top(fused, valid, n):
    order = np.argsort(-fused, axis=1, kind="stable")
    ok = np.take_along_axis(valid, order, axis=1)
    k = min(n, order.shape[1])
    out = np.where(ok[:, :k], order[:, :k], -1)
    return out if k == n else np.pad(out, ((0, 0), (0, n - k)), constant_values=-1)


def ref_assemble(pick, cand, fused, contrib):
    keep = pick >= 0
    r = np.repeat(np.arange(len(pick)), pick.shape[1]).reshape(pick.shape)[keep]
    pos = pick[keep]
    parts = contrib[:, r, pos]
    strongest = np.argmax(parts, axis=0) if parts.size else np.zeros(0, dtype=np.int64)
    return (r, cand[r, pos], fused[r, pos], np.cumsum(keep, axis=1)[keep].astype(np.int64), parts.T.copy(),
            strongest)


# -- random inputs -------------------------------------------------------------------------------
def _nominations(rng, n_rows, n_products, widths):
    tops = [rng.integers(0, n_products, size=(n_rows, w)) for w in widths]
    oks = [rng.random((n_rows, w)) < 0.7 for w in widths]
    oks[0][0] = False  # a row some strategy nominates nothing for
    if n_rows > 1:
        for ok in oks:
            ok[1] = False  # a row with no candidate at all
    return tops, oks


def _raw(rng, shape, kind):
    """Scores with ties (few levels), -inf, +inf, NaN, constant and near-constant rows."""
    raw = rng.normal(size=shape) if kind == 0 else rng.integers(0, 4, size=shape).astype(np.float64)
    odd = rng.random(shape)
    raw[odd < 0.05] = -np.inf
    raw[(odd >= 0.05) & (odd < 0.07)] = np.nan
    raw[(odd >= 0.07) & (odd < 0.08)] = np.inf
    raw[:, 2] = 0.25  # a constant row per strategy
    raw[:, 3] = 0.5 + rng.random(shape[2]) * 1e-13  # a span below 1e-12
    return raw


@pytest.mark.parametrize("seed", range(6))
def test_union_equals_the_numpy_union(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_products = [5, 40, 1000][seed % 3]
    tops, oks = _nominations(rng, 9, n_products, [7, 3, 7, 1][: 1 + seed % 4])
    cand, valid = fusion.union(tops, oks, n_products)
    want_c, want_v = ref_union(tops, oks, n_products)
    assert _same(cand, want_c) and _same(valid, want_v)
    empty = fusion.union([np.zeros((0, 3), dtype=np.int64)], [np.zeros((0, 3), dtype=bool)], 4)
    assert all(_same(a, b) for a, b in zip(empty, ref_union([np.zeros((0, 3), dtype=np.int64)],
                                                            [np.zeros((0, 3), dtype=bool)], 4), strict=True))


@pytest.mark.parametrize(("seed", "kind"), [(s, k) for s in range(4) for k in (0, 1)])
def test_minmax_fusion_equals_normalize_and_sum(seed: int, kind: int) -> None:
    rng = np.random.default_rng(seed)
    n_rows, n_products = 12, 30
    tops, oks = _nominations(rng, n_rows, n_products, [8, 8, 8, 8])
    cand, valid = fusion.union(tops, oks, n_products)
    raw = _raw(rng, (len(STRATEGIES), *cand.shape), kind)
    present = np.array([True, seed % 2 == 0, True, seed != 3])
    weights = rng.dirichlet(np.ones(4), size=n_rows) * (rng.random((n_rows, 4)) < 0.8)
    contrib, fused = fusion.fuse_minmax(raw, present, weights, valid)
    want_contrib, want_fused = ref_fuse(raw, present, weights, valid)
    assert _same(contrib, want_contrib) and _same(fused, want_fused)


def test_numpy_adds_the_strategy_planes_in_order() -> None:
    """The kernel's ``((c0 + c1) + c2) + c3`` is what ``sum(axis=0)`` does over four planes."""
    rng = np.random.default_rng(0)
    planes = rng.random((4, 50, 60)) * np.array([1e16, 1.0, -1e16, 3.0])[:, None, None]
    assert _same(planes.sum(axis=0), ((planes[0] + planes[1]) + planes[2]) + planes[3])


@pytest.mark.parametrize("seed", range(5))
def test_top_positions_equal_the_stable_sort(seed: int) -> None:
    rng = np.random.default_rng(seed)
    fused = rng.integers(0, 5, size=(15, 25)).astype(np.float64) / 4  # many ties
    valid = rng.random(fused.shape) < 0.8
    valid[0] = False
    fused[3, ::3] = np.nan  # NaN after every number
    fused[4, ::2] = -np.inf
    fused = np.where(valid | (rng.random(fused.shape) < 0.5), fused, -np.inf)
    for n in (1, 3, 10, 25, 40):
        assert _same(fusion.top_positions(fused, valid, n), ref_top(fused, valid, n))


def test_capped_top_keeps_the_greedy_rule() -> None:
    rng = np.random.default_rng(1)
    valid = rng.random((10, 30)) < 0.9
    fused = np.where(valid, rng.integers(0, 6, size=valid.shape), -np.inf)  # the fusion's invalid entries
    codes = rng.integers(0, 3, size=fused.shape)
    pick = fusion.capped_top(fused, valid, codes, 8, 2)
    for i in range(len(pick)):
        kept = pick[i][pick[i] >= 0]
        ranking = [p for p in ref_top(fused[i:i + 1], valid[i:i + 1], 30)[0] if p >= 0]
        counts: dict[int, int] = {}
        want = []
        for p in ranking:
            if counts.get(codes[i, p], 0) < 2 and len(want) < 8:
                counts[codes[i, p]] = counts.get(codes[i, p], 0) + 1
                want.append(p)
        assert list(kept) == want and np.bincount(codes[i, kept], minlength=3).max(initial=0) <= 2


@pytest.mark.parametrize("seed", range(4))
def test_assemble_equals_the_numpy_assembly(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tops, oks = _nominations(rng, 11, 50, [9, 9])
    cand, valid = fusion.union(tops, oks, 50)
    contrib = rng.integers(0, 3, size=(4, *cand.shape)).astype(np.float64)  # ties for the strongest
    contrib[:, 5, :] = 0.0
    if seed == 3:
        contrib[2, 6, :] = np.nan  # argmax: the first NaN
    fused = np.where(valid, contrib.sum(axis=0), -np.inf)
    pick = fusion.top_positions(fused, valid, 6)
    got, want = fusion.assemble(pick, cand, fused, contrib), ref_assemble(pick, cand, fused, contrib)
    assert all(_same(a, b) for a, b in zip(got, want, strict=True))
    none = np.full((3, 4), -1)
    assert [len(x) for x in fusion.assemble(none, cand[:3], fused[:3], contrib[:, :3])] == [0] * 6


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_take_at_reads_like_numpy_indexing(dtype) -> None:
    rng = np.random.default_rng(2)
    table = rng.normal(size=(7, 20)).astype(dtype)
    table[2, 3] = -np.inf
    cand = rng.integers(-20, 20, size=(5, 9))
    r = np.broadcast_to(np.arange(5)[:, None], cand.shape)
    assert _same(fusion.take_at(table, r, cand), table[r, cand].astype(np.float64))
    rowmap = np.array([6, 0, 2, 2, -1])
    assert _same(fusion.take_at(table, r, cand, rowmap=rowmap), table[rowmap[r], cand].astype(np.float64))
    flat_r, flat_c = rng.integers(0, 7, 13), rng.integers(0, 20, 13)  # any shape: numpy's answer
    assert _same(fusion.take_at(table, flat_r, flat_c), table[flat_r, flat_c].astype(np.float64))
    assert _same(fusion.take_at(table, np.arange(5)[:, None], cand), table[np.arange(5)[:, None], cand].astype(float))
    with pytest.raises(IndexError):
        fusion.take_at(table, r, np.full(cand.shape, 20))
    with pytest.raises(IndexError):
        fusion.take_at(table, r, cand, rowmap=np.array([0, 1, 7, 0, 0]))


def test_fuse_minmax_names_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="fuse_minmax"):
        fusion.fuse_minmax(np.zeros((4, 2, 3)), np.ones(4, bool), np.zeros((3, 4)), np.ones((2, 3), bool))


# -- the hybrid on the ci fixture -------------------------------------------------------------------
def _reference_fuse_rows(hybrid: HybridRecommender, rows: np.ndarray, n: int) -> tuple:
    """The hybrid's block as the numpy path computed it: dense blocks read by fancy indexing."""
    blocks, hints, weights, tops, oks, n_products = hybrid._nominate(rows, n, True)
    cand, valid = ref_union(tops, oks, n_products)
    r = np.broadcast_to(np.arange(len(rows))[:, None], cand.shape)
    raw = np.zeros((len(STRATEGIES), *cand.shape))
    for j, s in enumerate(STRATEGIES):
        comp = hybrid.components_[s]
        if s == "knn":
            raw[j] = hints[s].toarray()[r, cand] if blocks[s] is None else blocks[s][r, cand]
        elif s == "demographic":
            raw[j] = comp.segment_scores_[comp.segments_of_rows(rows)[r], cand]
        else:
            raw[j] = blocks[s][r, cand]
    contrib, fused = ref_fuse(raw, np.ones(4, bool), weights, valid, hybrid.config.normalization)
    if hybrid.config.category_cap is None:
        pick = ref_top(fused, valid, n)
    else:
        pick = fusion.capped_top(fused, valid, hybrid.category_codes_[cand], n, hybrid.config.category_cap)
    return ref_assemble(pick, cand, fused, contrib), raw


@pytest.mark.parametrize("config", [HybridConfig(), HybridConfig(normalization="rank"),
                                    HybridConfig(category_cap=2), HybridConfig(candidates_per_strategy=5)])
def test_hybrid_fuse_rows_equal_the_numpy_path(ci_parts, config: HybridConfig) -> None:
    hybrid = HybridRecommender.from_fitted(ci_parts, config=config)
    n_users = len(hybrid.interactions_.user_ids)
    rows = np.concatenate([np.arange(0, n_users, 3), [-1]])
    for n in (10, 40):
        top = hybrid.fuse_rows(rows, n)
        (r, col, score, rank, parts, strongest), raw = _reference_fuse_rows(hybrid, rows, n)
        assert _same(top.row, r) and _same(top.col, col) and _same(top.score, score) and _same(top.rank, rank)
        assert _same(top.contributions, parts)
        for j, s in enumerate(STRATEGIES):
            assert _same(top.component_scores.at_candidates[s], raw[j])
    none = hybrid.fuse_rows(np.zeros(0, dtype=np.int64), 10)
    assert len(none.row) == len(none.col) == len(none.reason) == 0 and none.contributions.shape == (0, 4)
