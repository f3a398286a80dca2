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
exactly, so both halves equal the reference bit for bit. Memory: the heaps,
``n x k`` (float64, int32), about 1.5 times the result.

numba is imported lazily (first fit) and the kernels are compiled once per
machine: ``cache=True`` stores the machine code next to this file or, where
that is read-only, in numba's user-wide cache; when no cache location is
writable the kernels compile in memory on each first call
(:func:`_compile`). ``available()`` is False without numba; the reference path
then runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
from numba import njit

__all__ = ["topk_general", "topk_symmetric"]


def _cached(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``njit(cache=True)`` of ``fn``; numba raises ``RuntimeError`` at decoration when
    no cache location is writable: then the kernel is compiled in memory (on first call)."""
    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError as err:  # "cannot cache function ...: no locator available for file ..."
        warnings.warn(f"numba cannot cache {fn.__name__} ({err}); compiling it in memory", RuntimeWarning,
                      stacklevel=2)
        return njit(nogil=True)(fn)


# --------------------------------------------------------------------------- the kernels (numba-compiled)
@njit(inline="always")
def _worse(v1: float, i1: int, v2: float, i2: int) -> bool:
    """Entry ``(v1, i1)`` ranks below ``(v2, i2)``: a lower value, or the same value at a higher column."""
    return v1 < v2 or (v1 == v2 and i1 > i2)


@njit(inline="always")
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


@njit(inline="always")
def _finish(hv: np.ndarray, hi: np.ndarray, base: int, size: int) -> None:
    """Sort one heap's ``size`` entries by column (insertion sort: ``size <= k`` is small)."""
    for j in range(base + 1, base + size):
        v, i = hv[j], hi[j]
        m = j - 1
        while m >= base and hi[m] > i:
            hv[m + 1], hi[m + 1] = hv[m], hi[m]
            m -= 1
        hv[m + 1], hi[m + 1] = v, i


@njit(inline="always")
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
    mark = np.full(n_right, -1, dtype=np.int64)
    touched = np.empty(n_right + 1, dtype=np.int64)
    for a in range(len(l_indptr) - 1):
        n_touched = 0
        for p in range(l_indptr[a], l_indptr[a + 1]):
            f = l_indices[p]
            n_touched = _accumulate(acc, mark, touched, a, l_data[p], t_indices, t_data, t_indptr[f],
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


def _symmetric(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, norm: np.ndarray,
               t_indptr: np.ndarray, t_indices: np.ndarray, t_data: np.ndarray,
               k: int, shrinkage: float, min_similarity: float,
               hv: np.ndarray, hi: np.ndarray, sizes: np.ndarray) -> None:
    """Top-``k`` of each row of ``x`` against the other rows of ``x`` (``t = x^T``, CSR, both with
    sorted indices): each pair ``a < b`` once, offered to the heaps of ``a`` and of ``b``.
    ``floor[r]``: the root (worst kept value) of row ``r``'s full heap, ``-inf`` until it fills;
    a candidate below it is rejected without touching the heap."""
    n = len(indptr) - 1
    acc = np.zeros(n)
    mark = np.full(n, -1, dtype=np.int64)
    touched = np.empty(n + 1, dtype=np.int64)
    floor = np.full(n, -np.inf)
    nxt = t_indptr[:-1].astype(np.int64)  # per feature f: the position of row a in t's row f
    for a in range(n):
        n_touched = 0
        for p in range(indptr[a], indptr[a + 1]):
            f = indices[p]
            start = nxt[f]
            nxt[f] = start + 1  # the rows b > a sharing f follow a in t's row f
            n_touched = _accumulate(acc, mark, touched, a, data[p], t_indices, t_data, start + 1,
                                    t_indptr[f + 1], n_touched)
        base, size, norm_a = a * k, sizes[a], norm[a]
        for t in range(n_touched):
            b = touched[t]
            sim = acc[b] / (norm_a * norm[b] + shrinkage)
            acc[b] = 0.0
            if sim > 0.0 and sim >= min_similarity:
                if sim >= floor[a]:
                    size = _push(hv, hi, base, size, k, sim, b)
                    if size == k:
                        floor[a] = hv[base]
                if sim >= floor[b]:
                    sizes[b] = _push(hv, hi, b * k, sizes[b], k, sim, a)
                    if sizes[b] == k:
                        floor[b] = hv[b * k]
        sizes[a] = size
        _finish(hv, hi, base, size)


_general_kernel = _cached(_general)
_symmetric_kernel = _cached(_symmetric)


# --------------------------------------------------------------------------- numpy-side drivers
def _result(hv: np.ndarray, hi: np.ndarray, sizes: np.ndarray, k: int, shape: tuple[int, int]):
    """The CSR float32 result from the per-row heaps (``k`` slots a row, ``sizes`` used)."""
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(sizes, out=indptr[1:])
    used = (np.arange(k, dtype=np.int64)[None, :] < sizes[:, None]).ravel()
    out = sp.csr_matrix((hv[used].astype(np.float32), hi[used], indptr), shape=shape)
    out.has_sorted_indices = True
    return out


def _heaps(n_rows: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.empty(n_rows * k), np.empty(n_rows * k, dtype=np.int32), np.zeros(n_rows, dtype=np.int64)


def topk_general(left, right_t, left_norm: np.ndarray, right_norm: np.ndarray, k: int, shrinkage: float,
                 min_similarity: float, self_columns: np.ndarray):
    """CSR float32 top-``k`` of ``left``'s rows against ``right`` (given as ``right_t = right^T``, CSR float64)."""
    k = min(k, len(right_norm))
    hv, hi, sizes = _heaps(left.shape[0], k)
    if k > 0:
        _general_kernel(left.indptr, left.indices, left.data, left_norm, right_t.indptr, right_t.indices,
                           right_t.data, right_norm, k, float(shrinkage), float(min_similarity),
                           np.asarray(self_columns, dtype=np.int64), hv, hi, sizes)
    return _result(hv, hi, sizes, k, (left.shape[0], len(right_norm)))


def topk_symmetric(x, x_t, norm: np.ndarray, k: int, shrinkage: float, min_similarity: float):
    """CSR float32 top-``k`` of each row of ``x`` against the other rows (``x_t = x^T``; both CSR
    float64 with sorted indices, no duplicates)."""
    k = min(k, max(x.shape[0] - 1, 0))
    hv, hi, sizes = _heaps(x.shape[0], k)
    if k > 0:
        _symmetric_kernel(x.indptr, x.indices, x.data, norm, x_t.indptr, x_t.indices, x_t.data, k,
                             float(shrinkage), float(min_similarity), hv, hi, sizes)
    return _result(hv, hi, sizes, k, (x.shape[0], x.shape[0]))
