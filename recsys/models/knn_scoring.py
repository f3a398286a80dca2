"""Compiled (numba) block path of the served k-NN models: scores, row ranges, top candidates, lookups.

Each function computes exactly what the numpy/scipy path of
:class:`~recsys.models.knn.NeighbourRecommender` computes (``tests/test_knn_scoring.py``
checks the equality bit for bit), without its temporaries:

* :func:`block_product` -- ``left @ right`` (CSR float32, e.g. histories times the
  similarity matrix ``W``) as scipy's ``csr_matmat`` sums it: per row, a dense float32
  accumulator ``acc[k] += x_j * W[j, k]`` over the row's entries ``j`` in stored order,
  then each ``W`` row in stored order; the row's entries come out in reverse order of
  first touch (scipy's linked list), exact zeros dropped. Same entries, order and bits
  as :func:`~recsys.models.kernels.sparse_product`.
* :func:`range_top` -- per row of such sparse scores (all stored values finite and
  positive), the range the base class reads off the dense block: ``high = max``,
  ``low = min`` over the stored values, widened to 0 where the row leaves a column
  unstored; ``floor = low``. Then the best ``m`` stored entries above that floor in an
  ``allowed`` column, value descending, ties to the lower column (a bounded heap).
* :func:`top_above` -- that top for a given ``floor >= 0`` (finite stored values).
* :func:`values_at` -- the dense block's value at ``(r, c)`` pairs (``toarray()[r, c]``):
  a float32 scratch row gets the stored entries of ``r`` (summed as ``toarray`` sums
  them), is read at the row's columns and cleared; pairs grouped by row (the fusion's
  row-major candidate matrix) scatter each row once.

Kernels compile once per machine (``cache=True``, as :mod:`recsys.models.knn_kernels`);
:func:`warm_up` compiles them for the argument types the k-NN passes.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import njit

from recsys.models.knn_kernels import _cached

__all__ = ["block_product", "range_top", "top_above", "values_at", "warm_up"]

_I32_MAX = np.iinfo(np.int32).max


# --------------------------------------------------------------------------- the kernels (numba-compiled)
def _product(n_rows: int, l_indptr: np.ndarray, l_indices: np.ndarray, l_data: np.ndarray,
             r_indptr: np.ndarray, r_indices: np.ndarray, r_data: np.ndarray, n_cols: int,
             out_indptr: np.ndarray, out_indices: np.ndarray, out_data: np.ndarray) -> int:
    """scipy's ``csr_matmat`` (float32): fills the output CSR, returns its entry count."""
    acc = np.zeros(n_cols, dtype=np.float32)
    mark = np.full(n_cols, -1, dtype=np.int64)
    touched = np.empty(n_cols, dtype=np.int64)
    nnz = 0
    out_indptr[0] = 0
    for i in range(n_rows):
        n_touched = 0
        for jj in range(l_indptr[i], l_indptr[i + 1]):
            j = l_indices[jj]
            v = l_data[jj]
            for kk in range(r_indptr[j], r_indptr[j + 1]):
                k = r_indices[kk]
                acc[k] += v * r_data[kk]
                if mark[k] != i:
                    mark[k] = i
                    touched[n_touched] = k
                    n_touched += 1
        for t in range(n_touched - 1, -1, -1):  # scipy's list runs from the last column touched
            k = touched[t]
            if acc[k] != 0:
                out_indices[nnz] = k
                out_data[nnz] = acc[k]
                nnz += 1
            acc[k] = 0
        out_indptr[i + 1] = nnz
    return nnz


@njit(inline="always", error_model="numpy")
def _worse(v1: float, c1: int, v2: float, c2: int) -> bool:
    """Entry ``(v1, c1)`` ranks below ``(v2, c2)``: a lower value, or the same value at a higher column."""
    return v1 < v2 or (v1 == v2 and c1 > c2)


@njit(inline="always", error_model="numpy")
def _sift_down(hv: np.ndarray, hc: np.ndarray, size: int, v: float, c: int) -> None:
    """Place ``(v, c)`` at the root of the heap ``hv/hc[:size]`` (worst at the root) and sift it down."""
    j = 0
    while True:
        child = 2 * j + 1
        if child >= size:
            break
        if child + 1 < size and _worse(hv[child + 1], hc[child + 1], hv[child], hc[child]):
            child += 1
        if not _worse(hv[child], hc[child], v, c):
            break
        hv[j], hc[j] = hv[child], hc[child]
        j = child
    hv[j], hc[j] = v, c


@njit(inline="always", error_model="numpy")
def _offer(hv: np.ndarray, hc: np.ndarray, size: int, m: int, v: float, c: int) -> int:
    """Offer ``(v, c)`` to the heap of at most ``m`` entries; returns its new size."""
    if size < m:
        j = size
        while j > 0:
            parent = (j - 1) // 2
            if not _worse(v, c, hv[parent], hc[parent]):
                break
            hv[j], hc[j] = hv[parent], hc[parent]
            j = parent
        hv[j], hc[j] = v, c
        return size + 1
    if _worse(hv[0], hc[0], v, c):
        _sift_down(hv, hc, m, v, c)
    return size


@njit(inline="always", error_model="numpy")
def _top_row(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, i: int, floor: float,
             allowed: np.ndarray, m: int, hv: np.ndarray, hc: np.ndarray, cols: np.ndarray, ok: np.ndarray) -> None:
    """Row ``i``'s best ``m`` allowed stored entries above ``floor`` into ``cols[i]``/``ok[i]``, best first."""
    size = 0
    for p in range(indptr[i], indptr[i + 1]):
        v = np.float64(data[p])
        c = indices[p]
        if v > floor and allowed[i, c]:
            size = _offer(hv, hc, size, m, v, c)
    for pos in range(size - 1, -1, -1):  # pop the worst into the last free rank
        cols[i, pos] = hc[0]
        ok[i, pos] = True
        if pos > 0:
            _sift_down(hv, hc, pos, hv[pos], hc[pos])


def _range_top(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_cols: int, m: int,
               allowed: np.ndarray, high: np.ndarray, low: np.ndarray, cols: np.ndarray, ok: np.ndarray) -> bool:
    """Rows' ranges into ``high/low`` and, for ``m > 0``, their top above ``low``; False (nothing
    selected) when a stored value is not finite and positive."""
    n_rows = len(indptr) - 1
    for i in range(n_rows):
        hi, lo = -np.inf, np.inf
        for p in range(indptr[i], indptr[i + 1]):
            v = np.float64(data[p])
            if not (v > 0 and v < np.inf):
                return False
            hi = max(hi, v)
            lo = min(lo, v)
        if indptr[i + 1] - indptr[i] < n_cols:  # an unstored 0
            hi, lo = max(hi, 0.0), min(lo, 0.0)
        high[i], low[i] = hi, lo
    if m > 0:
        hv, hc = np.empty(m), np.empty(m, dtype=np.int64)
        for i in range(n_rows):
            _top_row(indptr, indices, data, i, low[i], allowed, m, hv, hc, cols, ok)
    return True


def _top_above(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, floor: np.ndarray, m: int,
               allowed: np.ndarray, cols: np.ndarray, ok: np.ndarray) -> bool:
    """The rows' top ``m`` above ``floor``; False (nothing selected) when a stored value is not finite."""
    for p in range(len(data)):
        if not np.isfinite(data[p]):
            return False
    hv, hc = np.empty(max(m, 1)), np.empty(max(m, 1), dtype=np.int64)
    for i in range(len(indptr) - 1):
        _top_row(indptr, indices, data, i, floor[i], allowed, m, hv, hc, cols, ok)
    return True


def _values_at(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_cols: int,
               r: np.ndarray, c: np.ndarray, out: np.ndarray) -> None:
    """``out[t] = dense[r[t], c[t]]`` of the CSR block (its row summed in float32 as ``toarray``)."""
    scratch = np.zeros(n_cols, dtype=data.dtype)
    current = -1
    for t in range(len(r)):
        i = r[t]
        if i != current:
            if current >= 0:
                for p in range(indptr[current], indptr[current + 1]):
                    scratch[indices[p]] = 0
            for p in range(indptr[i], indptr[i + 1]):
                scratch[indices[p]] += data[p]
            current = i
        out[t] = np.float64(scratch[c[t]])


_product_kernel = _cached(_product)
_range_top_kernel = _cached(_range_top)
_top_above_kernel = _cached(_top_above)
_values_at_kernel = _cached(_values_at)


# --------------------------------------------------------------------------- numpy-side drivers
def block_product(left: sp.csr_matrix, right: sp.csr_matrix) -> sp.csr_matrix | None:
    """``left @ right`` for CSR float32 operands, identical to
    :func:`~recsys.models.kernels.sparse_product` (entries, their order, float32 sums; indices
    unsorted); None where that bound does not fit int32 indices or the operands do not apply."""
    if left.dtype != np.float32 or right.dtype != np.float32 or left.shape[1] != right.shape[0]:
        return None
    n_rows, n_cols = left.shape[0], right.shape[1]
    bound = int(np.diff(right.indptr)[left.indices[: left.indptr[-1]]].sum(dtype=np.int64))
    if bound >= _I32_MAX or right.nnz >= _I32_MAX:
        return None
    indptr = np.empty(n_rows + 1, dtype=np.int32)
    indices = np.empty(bound, dtype=np.int32)
    data = np.empty(bound, dtype=np.float32)
    nnz = _product_kernel(n_rows, left.indptr, left.indices, left.data, right.indptr, right.indices, right.data,
                          n_cols, indptr, indices, data)
    out = sp.csr_matrix((data[:nnz], indices[:nnz], indptr), shape=(n_rows, n_cols), copy=False)
    out.has_sorted_indices = False
    return out


def _selection(n_rows: int, n_cols: int, m: int) -> tuple[int, np.ndarray, np.ndarray]:
    m = min(m, n_cols)
    return m, np.zeros((n_rows, m), dtype=np.int64), np.zeros((n_rows, m), dtype=bool)


def range_top(hint: sp.csr_matrix, m: int, allowed: np.ndarray | None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """``high, low, floor, cols, ok`` of sparse scores whose stored values are all finite and
    positive (None otherwise): the rows' ranges with the implicit 0 of a partial row, and their
    top ``min(m, columns)`` allowed entries above ``floor = low`` (``allowed=None``, ``m=0``: ranges only)."""
    n_rows, n_cols = hint.shape
    if allowed is None:
        allowed, m = np.ones((0, 0), dtype=bool), 0
    elif allowed.shape != hint.shape or allowed.dtype != np.bool_:
        return None
    m, cols, ok = _selection(n_rows, n_cols, m)
    high, low = np.empty(n_rows), np.empty(n_rows)
    if not _range_top_kernel(hint.indptr, hint.indices, hint.data, n_cols, m, allowed, high, low, cols, ok):
        return None
    return high, low, low.copy(), cols, ok


def top_above(hint: sp.csr_matrix, m: int, floor: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``cols, ok``: each row's best ``min(m, columns)`` stored entries ``> floor`` (>= 0) in an
    ``allowed`` column, best first, ties to the lower column; None when a stored value is not
    finite (or the arguments do not apply)."""
    n_rows, n_cols = hint.shape
    floor = np.asarray(floor, dtype=np.float64)
    if (allowed is None or allowed.shape != hint.shape or allowed.dtype != np.bool_
            or floor.shape != (n_rows,) or (floor < 0).any() or np.isnan(floor).any()):
        return None
    m, cols, ok = _selection(n_rows, n_cols, m)
    if not _top_above_kernel(hint.indptr, hint.indices, hint.data, floor, m, allowed, cols, ok):
        return None
    return cols, ok


def values_at(hint: sp.csr_matrix, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float64 ``hint.toarray()[r, c]`` (``r``, ``c`` broadcast together) without the dense block.
    Indices outside the block raise ``IndexError`` naming the offending pair."""
    r, c = np.broadcast_arrays(np.asarray(r), np.asarray(c))
    shape = r.shape
    r = np.ascontiguousarray(r, dtype=np.int64).ravel()
    c = np.ascontiguousarray(c, dtype=np.int64).ravel()
    n_rows, n_cols = hint.shape
    if len(r) and (r.min() < 0 or r.max() >= n_rows or c.min() < 0 or c.max() >= n_cols):
        bad = int(np.flatnonzero((r < 0) | (r >= n_rows) | (c < 0) | (c >= n_cols))[0])
        raise IndexError(f"values_at: entry ({r[bad]}, {c[bad]}) is outside the {n_rows} x {n_cols} block")
    out = np.empty(len(r))
    _values_at_kernel(hint.indptr, hint.indices, hint.data, n_cols, r, c, out)
    return out.reshape(shape)


def warm_up() -> None:
    """Compile the kernels, or load them from numba's cache, for the types the k-NN passes."""
    x = sp.csr_matrix(np.array([[1.0, 0.0], [0.5, 2.0]], dtype=np.float32))
    for index in (np.int32, np.int64):
        y = sp.csr_matrix((x.data, x.indices.astype(index), x.indptr.astype(index)), shape=x.shape)
        product = block_product(y, y)
        allowed = np.ones(x.shape, dtype=bool)
        range_top(product, 1, allowed)
        top_above(product, 1, np.zeros(2), allowed)
        values_at(product, np.arange(2), np.arange(2))
