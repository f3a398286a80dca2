"""Compiled (numba) kernels of the k-NN fit: the cosine product fused with the top-``k`` selection.

:func:`~recsys.models.knn.cosine_topk` computes, for each row ``a`` of ``left``,
``sim(a, b) = <l_a, r_b> / (|l_a| |r_b| + shrinkage)`` over the rows ``b`` of
``right`` and keeps the ``k`` best. Its reference path materialises the sparse
product block by block (scipy) and selects with numpy; these kernels never
materialise it, as ``implicit``'s ``all_pairs_knn`` does:

* per row ``a``, a dense float64 accumulator gathers ``<l_a, r_b>`` for the
  touched ``b`` (``acc[b] += l_af * r_bf`` over the features ``f`` of ``a`` in
  stored order, then over ``b`` in the stored order of ``r^T``'s row ``f``:
  the very order and operations of scipy's ``csr_matmat``, hence the same bits);
* each candidate passing the filters (``sim > 0``, not NaN, ``>= min_similarity``,
  ``b`` not ``a``'s self column) goes through a bounded heap of size ``k``
  ordered by ``(value, -column)``: the best ``k`` with ties to the lower column,
  whatever the order candidates arrive in.

:func:`topk_symmetric` is the ``left is right`` case (the item-item and user-user
fits): ``<x_a, x_b> = <x_b, x_a>`` is computed once, for ``b > a`` only (half the
multiply-adds), and offered to both rows' heaps. Its sum runs over the shared
features in ascending order, which is what row ``b`` of the reference sums too
(sorted rows), and products and the denominator ``|x_a| |x_b| + s`` commute
exactly, so both halves equal the reference bit for bit. Memory: ``2 k`` slots
a row (float64 value, int32 column; the heap and parked offers), about three
times the float32 result; the general kernel ``k`` slots a row.

Memory, not arithmetic, bounds the accumulation: each (row, feature) entry
reads a scattered row of ``r^T``; the kernels prefetch those rows a few
entries ahead (:func:`_prefetch_ahead`, LLVM's prefetch hint: no value changes).

This module imports numba; :func:`~recsys.models.knn.cosine_topk` imports it
on first use (the reference path runs where numba cannot be imported). The
kernels compile once per machine (about 2 s each): ``cache=True`` stores the
machine code next to this file or, where that is read-only, in numba's
user-wide cache (``NUMBA_CACHE_DIR`` overrides); where no cache location is
writable they compile in memory on first call in each process
(:func:`_cached`). Division follows numpy (``error_model="numpy"``): ``0/0``
is NaN, dropped by the ``sim > 0`` filter, as in the reference.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["topk_general", "topk_symmetric", "warm_up"]


def _cached(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``njit(cache=True)`` of ``fn``; numba raises ``RuntimeError`` at decoration when
    no cache location is writable: then the kernel is compiled in memory (on first call)."""
    try:
        return njit(cache=True, nogil=True, error_model="numpy")(fn)
    except RuntimeError as err:  # "cannot cache function ...: no locator available for file ..."
        warnings.warn(f"numba cannot cache {fn.__name__} ({err}); compiling it in memory", RuntimeWarning,
                      stacklevel=2)
        return njit(nogil=True, error_model="numpy")(fn)


# --------------------------------------------------------------------------- the kernels (numba-compiled)
_I8_PTR = ir.IntType(8).as_pointer()
#: LLVM's prefetch intrinsic, mangled by pointer type (opaque ``ptr`` in newer LLVMs, ``i8*`` before)
_PREFETCH = "llvm.prefetch.p0" if str(_I8_PTR) == "ptr" else "llvm.prefetch.p0i8"

#: rows ahead whose ``t`` bounds (``nxt``/``t_indptr``) and then whose entries are prefetched
_AHEAD_BOUNDS, _AHEAD_ROWS = 16, 8


@intrinsic
def _prefetch(typingctx: Any, array: Any, index: Any) -> Any:
    """A read prefetch hint for ``array[index]`` (LLVM ``llvm.prefetch``; never faults, changes no
    value): the user rows the accumulation reads next are scattered, one cache miss each."""
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [_I8_PTR] + [ir.IntType(32)] * 3), _PREFETCH)
        i32 = ir.IntType(32)
        builder.call(fn, [builder.bitcast(builder.gep(data, [args[1]]), _I8_PTR),
                          ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen


@njit(inline="always", error_model="numpy")
def _prefetch_ahead(indices: np.ndarray, p: int, end: int, starts: np.ndarray, t_indptr: np.ndarray,
                    t_indices: np.ndarray, t_data: np.ndarray) -> None:
    """Prefetch the ``t`` row bounds of the entry ``p + _AHEAD_BOUNDS`` (rows follow each other in
    ``indices``: ahead may be the next row's) and the whole ``t`` row (its part from ``starts``:
    ``t_indptr`` or ``nxt``; up to 256 entries) of the entry ``p + _AHEAD_ROWS``."""
    if p + _AHEAD_BOUNDS < end:
        g = indices[p + _AHEAD_BOUNDS]
        _prefetch(starts, g)
        _prefetch(t_indptr, g + 1)
    if p + _AHEAD_ROWS < end:
        g = indices[p + _AHEAD_ROWS]
        s = starts[g]
        stop = min(t_indptr[g + 1], s + 256)
        for o in range(s, stop, 16):
            _prefetch(t_indices, o)
        for o in range(s, stop, 8):
            _prefetch(t_data, o)


@njit(inline="always", error_model="numpy")
def _worse(v1: float, i1: int, v2: float, i2: int) -> bool:
    """Entry ``(v1, i1)`` ranks below ``(v2, i2)``: a lower value, or the same value at a higher column."""
    return v1 < v2 or (v1 == v2 and i1 > i2)


@njit(inline="always", error_model="numpy")
def _push(hv: np.ndarray, hi: np.ndarray, base: int, size: int, k: int, v: float, i: int) -> int:
    """Offer ``(v, i)`` to the heap ``hv/hi[base : base + k]`` holding ``size`` entries, worst
    at the root; returns the new size. A full heap swaps its root for a better entry."""
    if size < k:
        j = size
        while j > 0:
            parent = (j - 1) // 2
            if not _worse(v, i, hv[base + parent], hi[base + parent]):
                break
            hv[base + j], hi[base + j] = hv[base + parent], hi[base + parent]
            j = parent
        hv[base + j], hi[base + j] = v, i
        return size + 1
    if not _worse(hv[base], hi[base], v, i):
        return size
    j = 0
    while True:
        child = 2 * j + 1
        if child >= k:
            break
        if child + 1 < k and _worse(hv[base + child + 1], hi[base + child + 1], hv[base + child], hi[base + child]):
            child += 1
        if not _worse(hv[base + child], hi[base + child], v, i):
            break
        hv[base + j], hi[base + j] = hv[base + child], hi[base + child]
        j = child
    hv[base + j], hi[base + j] = v, i
    return size


@njit(inline="always", error_model="numpy")
def _finish(hv: np.ndarray, hi: np.ndarray, base: int, size: int) -> None:
    """Sort one heap's ``size`` entries by column (insertion sort: ``size <= k`` is small)."""
    for j in range(base + 1, base + size):
        v, i = hv[j], hi[j]
        m = j - 1
        while m >= base and hi[m] > i:
            hv[m + 1], hi[m + 1] = hv[m], hi[m]
            m -= 1
        hv[m + 1], hi[m + 1] = v, i


@njit(inline="always", error_model="numpy")
def _accumulate(acc: np.ndarray, mark: np.ndarray, touched: np.ndarray, a: int, v: float,
                t_indices: np.ndarray, t_data: np.ndarray, lo: int, hi: int, n_touched: int) -> int:
    """``acc[b] += v * t_data[q]`` for ``q`` in ``[lo, hi)`` (``b = t_indices[q]``), listing each
    ``b`` first touched by row ``a`` in ``touched``; returns the new count. Branch-free: ``b``
    is always written to the next slot, which only counts when ``mark[b]`` was not ``a`` yet."""
    for q in range(lo, hi):
        b = t_indices[q]
        touched[n_touched] = b
        n_touched += mark[b] != a
        mark[b] = a
        acc[b] += v * t_data[q]
    return n_touched


def _general(l_indptr: np.ndarray, l_indices: np.ndarray, l_data: np.ndarray, l_norm: np.ndarray,
             t_indptr: np.ndarray, t_indices: np.ndarray, t_data: np.ndarray, r_norm: np.ndarray,
             k: int, shrinkage: float, min_similarity: float, self_columns: np.ndarray,
             hv: np.ndarray, hi: np.ndarray, sizes: np.ndarray) -> None:
    """Top-``k`` of each row of ``left`` against the rows of ``right`` (``t = right^T``, CSR)
    into ``hv/hi[a * k : a * k + sizes[a]]``, sorted by column."""
    n_right = len(r_norm)
    acc = np.zeros(n_right)
    mark = np.full(n_right, -1, dtype=np.int32)  # int32: the per-row arrays stay in L2
    touched = np.empty(n_right + 1, dtype=np.int32)
    nnz = l_indptr[-1]
    for a in range(len(l_indptr) - 1):
        n_touched, stamp = 0, np.int32(a)
        for p in range(l_indptr[a], l_indptr[a + 1]):
            _prefetch_ahead(l_indices, p, nnz, t_indptr, t_indptr, t_indices, t_data)
            f = l_indices[p]
            n_touched = _accumulate(acc, mark, touched, stamp, l_data[p], t_indices, t_data, t_indptr[f],
                                    t_indptr[f + 1], n_touched)
        base, size, norm, own, floor = a * k, 0, l_norm[a], self_columns[a], -np.inf
        for t in range(n_touched):
            b = touched[t]
            sim = acc[b] / (norm * r_norm[b] + shrinkage)
            acc[b] = 0.0
            if sim > 0.0 and sim >= min_similarity and sim >= floor and b != own:
                size = _push(hv, hi, base, size, k, sim, b)
                if size == k:
                    floor = hv[base]
        _finish(hv, hi, base, size)
        sizes[a] = size


@njit(inline="always", error_model="numpy")
def _flush(hv: np.ndarray, hi: np.ndarray, base: int, size: int, k: int, pending: int) -> int:
    """Push the ``pending`` entries parked after a full heap (slots ``base + k ...``) into it."""
    for j in range(base + k, base + k + pending):
        size = _push(hv, hi, base, size, k, hv[j], hi[j])
    return size


def _symmetric(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, norm: np.ndarray,
               t_indptr: np.ndarray, t_indices: np.ndarray, t_data: np.ndarray,
               k: int, shrinkage: float, min_similarity: float,
               hv: np.ndarray, hi: np.ndarray, sizes: np.ndarray) -> None:
    """Top-``k`` of each row of ``x`` against the other rows of ``x`` (``t = x^T``, CSR, both with
    sorted indices): each pair ``a < b`` once, offered to the heaps of ``a`` and of ``b``.

    Row ``r`` owns ``2 k`` slots from ``2 k r``: its heap, then up to ``k`` parked candidates.
    An offer to a later row ``b`` (a cache miss away) is parked once ``b``'s heap is full and
    pushed in a batch when the parking fills or when row ``b`` itself comes up (all its offers
    from rows ``a < b`` are in by then). ``floor[r]``: the root (worst kept value) of row ``r``'s
    full heap, ``-inf`` until it fills; an offer below it is dropped at once. Any order of
    offers gives the same top ``k`` (the heap order is total)."""
    n = len(indptr) - 1
    acc = np.zeros(n)
    mark = np.full(n, -1, dtype=np.int32)  # int32: the per-row arrays stay in L2
    touched = np.empty(n + 1, dtype=np.int32)
    floor = np.full(n, -np.inf)
    parked = np.zeros(n, dtype=np.int64)
    nxt = t_indptr[:-1].astype(np.int64)  # per feature f: the position of row a in t's row f
    width, nnz = 2 * k, indptr[-1]
    for a in range(n):
        n_touched, stamp = 0, np.int32(a)
        for p in range(indptr[a], indptr[a + 1]):
            _prefetch_ahead(indices, p, nnz, nxt, t_indptr, t_indices, t_data)
            f = indices[p]
            start = nxt[f]
            nxt[f] = start + 1  # the rows b > a sharing f follow a in t's row f
            n_touched = _accumulate(acc, mark, touched, stamp, data[p], t_indices, t_data, start + 1,
                                    t_indptr[f + 1], n_touched)
        base, norm_a = a * width, norm[a]
        size = _flush(hv, hi, base, sizes[a], k, parked[a])
        low = hv[base] if size == k else -np.inf
        for t in range(n_touched):
            b = touched[t]
            sim = acc[b] / (norm_a * norm[b] + shrinkage)
            acc[b] = 0.0
            if not (sim > 0.0 and sim >= min_similarity):
                continue
            if sim >= low:
                size = _push(hv, hi, base, size, k, sim, b)
                if size == k:
                    low = hv[base]
            if sim >= floor[b]:
                other = b * width
                if sizes[b] < k:
                    sizes[b] = _push(hv, hi, other, sizes[b], k, sim, a)
                    if sizes[b] == k:
                        floor[b] = hv[other]
                else:
                    slot = other + k + parked[b]
                    hv[slot], hi[slot] = sim, a
                    parked[b] += 1
                    if parked[b] == k:
                        sizes[b] = _flush(hv, hi, other, sizes[b], k, k)
                        parked[b] = 0
                        floor[b] = hv[other]
        sizes[a] = size
        _finish(hv, hi, base, size)


_general_kernel = _cached(_general)
_symmetric_kernel = _cached(_symmetric)


# --------------------------------------------------------------------------- numpy-side drivers
def _result(hv: np.ndarray, hi: np.ndarray, sizes: np.ndarray, width: int, shape: tuple[int, int]) -> sp.csr_matrix:
    """The CSR float32 result from the per-row heaps (``width`` slots a row, the first ``sizes`` used)."""
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(sizes, out=indptr[1:])
    used = (np.arange(width, dtype=np.int64)[None, :] < sizes[:, None]).ravel()
    out = sp.csr_matrix((hv[used].astype(np.float32), hi[used], indptr), shape=shape)
    out.has_sorted_indices = True
    return out


def _heaps(n_rows: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row slots (values float64, columns int32; ``width`` a row) and the used counts."""
    return np.empty(n_rows * width), np.empty(n_rows * width, dtype=np.int32), np.zeros(n_rows, dtype=np.int64)


def topk_general(left: sp.csr_matrix, right_t: sp.csr_matrix, left_norm: np.ndarray, right_norm: np.ndarray,
                 k: int, shrinkage: float, min_similarity: float, self_columns: np.ndarray) -> sp.csr_matrix:
    """CSR float32 top-``k`` of ``left``'s rows against ``right``, given as ``right_t = right^T``
    (both canonical CSR float64), with the rows' norms and self columns (-1: none)."""
    k = min(k, len(right_norm))
    hv, hi, sizes = _heaps(left.shape[0], k)
    if k > 0:
        _general_kernel(left.indptr, left.indices, left.data, left_norm, right_t.indptr, right_t.indices,
                        right_t.data, right_norm, k, float(shrinkage), float(min_similarity),
                        np.asarray(self_columns, dtype=np.int64), hv, hi, sizes)
    return _result(hv, hi, sizes, k, (left.shape[0], len(right_norm)))


def topk_symmetric(x: sp.csr_matrix, x_t: sp.csr_matrix, norm: np.ndarray, k: int, shrinkage: float,
                   min_similarity: float) -> sp.csr_matrix:
    """CSR float32 top-``k`` of each row of ``x`` against the other rows (``x_t = x^T``; both
    canonical CSR float64: sorted indices, no duplicates), with the rows' norms."""
    k = min(k, max(x.shape[0] - 1, 0))
    hv, hi, sizes = _heaps(x.shape[0], 2 * k)
    if k > 0:
        _symmetric_kernel(x.indptr, x.indices, x.data, norm, x_t.indptr, x_t.indices, x_t.data, k,
                          float(shrinkage), float(min_similarity), hv, hi, sizes)
    return _result(hv, hi, sizes, 2 * k, (x.shape[0], x.shape[0]))


def warm_up() -> None:
    """Compile both kernels, or load them from numba's cache, for the argument types
    :func:`~recsys.models.knn.cosine_topk` passes (a one-time cost per process), and the
    serving block path's (:func:`recsys.models.knn_scoring.warm_up`)."""
    from recsys.models import knn_scoring
    from recsys.models.knn import cosine_topk

    knn_scoring.warm_up()

    x = sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 1.0]]))
    cosine_topk(x, x, 1, self_columns=np.arange(2), method="compiled")
    cosine_topk(x, x, 1, method="compiled")
