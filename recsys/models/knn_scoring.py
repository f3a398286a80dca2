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

from recsys.models.knn_kernels import _cached, _prefetch

__all__ = ["block_product", "range_top", "top_above", "values_at", "warm_up"]

_I32_MAX = np.iinfo(np.int32).max
#: history entries ahead whose similarity row is prefetched
_AHEAD = 4


# --------------------------------------------------------------------------- the kernels (numba-compiled)
def _product(n_rows: int, l_indptr: np.ndarray, l_indices: np.ndarray, l_data: np.ndarray,
             r_indptr: np.ndarray, r_indices: np.ndarray, r_data: np.ndarray, n_cols: int,
             out_indptr: np.ndarray, out_indices: np.ndarray, out_data: np.ndarray) -> int:
    """scipy's ``csr_matmat`` (float32): fills the output CSR, returns its entry count."""
    acc = np.zeros(n_cols, dtype=np.float32)
    mark = np.full(n_cols, -1, dtype=np.int32)
    touched = np.empty(n_cols + 1, dtype=np.int32)
    nnz = 0
    out_indptr[0] = 0
    for i in range(n_rows):
        n_touched = 0
        end = l_indptr[i + 1]
        for jj in range(l_indptr[i], end):
            if jj + _AHEAD < end:  # the right row read _AHEAD entries on: a scattered row, one miss each
                g = l_indices[jj + _AHEAD]
                lo, hi = r_indptr[g], r_indptr[g + 1]
                for o in range(lo, hi, 16):
                    _prefetch(r_indices, o)
                    _prefetch(r_data, o)
            j = l_indices[jj]
            v = l_data[jj]
            for kk in range(r_indptr[j], r_indptr[j + 1]):
                k = r_indices[kk]
                acc[k] += v * r_data[kk]
                touched[n_touched] = k  # branch-free: the slot only counts on the row's first touch of k
                n_touched += mark[k] != i
                mark[k] = i
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
def _key_space(indptr: np.ndarray, n_cols: int) -> tuple[np.ndarray, int]:
    """A key buffer as long as the longest row, and the bits a column takes in a key."""
    longest = 0
    for i in range(len(indptr) - 1):
        longest = max(longest, indptr[i + 1] - indptr[i])
    col_bits = 1
    while (np.int64(1) << col_bits) < n_cols:
        col_bits += 1
    return np.empty(longest, dtype=np.int64), col_bits


@njit(inline="always", error_model="numpy")
def _select_largest(keys: np.ndarray, n: int, m: int) -> None:
    """Reorder ``keys[:n]`` so that ``keys[n - m : n]`` are its ``m`` largest (in no order):
    quickselect, median-of-three pivot, branch-free Lomuto partition."""
    lo, hi, k = 0, n, n - m  # the rank-k position lies in [lo, hi)
    while hi - lo > 1:
        a, b, c = keys[lo], keys[(lo + hi) >> 1], keys[hi - 1]
        pivot = max(min(a, b), min(max(a, b), c))
        store = lo
        for i in range(lo, hi):  # [lo, store) < pivot <= [store, i)
            x = keys[i]
            keys[i] = keys[store]
            keys[store] = x
            store += x < pivot
        if k < store:
            hi = store
        elif store > lo:
            lo = store
        else:  # the pivot is the range's minimum: its copies go first; the rank lies among them or after
            eq = lo
            for i in range(lo, hi):
                x = keys[i]
                keys[i] = keys[eq]
                keys[eq] = x
                eq += x == pivot
            if k < eq:
                return
            lo = eq


@njit(inline="always", error_model="numpy")
def _sort_part(keys: np.ndarray, lo: int, hi: int) -> None:
    """Sort ``keys[lo:hi]`` ascending in place (insertion sort for a short part)."""
    if hi - lo > 128:
        keys[lo:hi].sort()
        return
    for a in range(lo + 1, hi):
        v = keys[a]
        b = a - 1
        while b >= lo and keys[b] > v:
            keys[b + 1] = keys[b]
            b -= 1
        keys[b + 1] = v


@njit(inline="always", error_model="numpy")
def _top_row(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, bits: np.ndarray, i: int, floor: float,
             allowed: np.ndarray, m: int, keys: np.ndarray, best: np.ndarray, col_bits: int, n_cols: int,
             cols: np.ndarray, ok: np.ndarray) -> None:
    """Row ``i``'s best ``m`` allowed stored entries above ``floor`` (>= 0) into ``cols[i]``/``ok[i]``,
    best first.

    Each entry above the floor becomes one int64 key (a positive float32's bit pattern orders like
    the value, then the column's complement: larger key, better entry; as ``ranking._order_keys``).
    The mask is read only where needed: a quickselect cuts the best ``2 need + 16`` keys still in
    the pool (``need``: ``m`` less the allowed ones kept so far), the best ``need`` of its allowed
    keys are kept (every better allowed key is in this cut or was kept before), the rest of the
    pool is cut again. After three cuts the pool is filtered by the mask at once. A sort orders the kept keys.
    """
    n = 0
    for p in range(indptr[i], indptr[i + 1]):
        keys[n] = (np.int64(bits[p]) << col_bits) | (n_cols - 1 - indices[p])
        n += np.float64(data[p]) > floor
    mask = (np.int64(1) << col_bits) - 1
    kept, cuts = 0, 0
    while kept < m and n > 0:
        need = m - kept
        if cuts == 3:  # a row with many masked entries: drop them all at once
            rest = 0
            for t in range(n):
                keys[rest] = keys[t]
                rest += allowed[i, n_cols - 1 - (keys[t] & mask)]
            n = rest
        take = need if cuts >= 3 else 2 * need + 16
        cut = 0  # the pool's part below the cut: keys[:cut]
        if n > take:
            _select_largest(keys, n, take)
            cut = n - take
        if cuts < 3:  # the cut's mask entries are scattered over the row: fetch them all at once
            base = i * n_cols + n_cols - 1
            for t in range(cut, n):
                _prefetch(allowed, base - (keys[t] & mask))
        got = cut  # the cut's allowed keys to keys[cut:got]
        for t in range(cut, n):
            key = keys[t]
            keys[got] = key
            got += cuts >= 3 or allowed[i, n_cols - 1 - (key & mask)]
        first = cut
        if got - cut > need:
            _select_largest(keys[cut:got], got - cut, need)
            first = got - need
        for t in range(first, got):
            best[kept] = keys[t]
            kept += 1
        n = cut
        cuts += 1
    _sort_part(best, 0, kept)
    for pos in range(kept):
        cols[i, pos] = n_cols - 1 - (best[kept - 1 - pos] & mask)
        ok[i, pos] = True


def _range_top(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, bits: np.ndarray, n_cols: int, m: int,
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
        keys, col_bits = _key_space(indptr, n_cols)
        best = np.empty(m, dtype=np.int64)
        for i in range(n_rows):
            _top_row(indptr, indices, data, bits, i, low[i], allowed, m, keys, best, col_bits, n_cols, cols, ok)
    return True


def _top_above(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, bits: np.ndarray, n_cols: int,
               floor: np.ndarray, m: int, allowed: np.ndarray, cols: np.ndarray, ok: np.ndarray) -> bool:
    """The rows' top ``m`` above ``floor``; False (nothing selected) when a stored value is not finite."""
    for p in range(len(data)):
        if not np.isfinite(data[p]):
            return False
    if m == 0:
        return True
    keys, col_bits = _key_space(indptr, n_cols)
    best = np.empty(m, dtype=np.int64)
    for i in range(len(indptr) - 1):
        _top_row(indptr, indices, data, bits, i, floor[i], allowed, m, keys, best, col_bits, n_cols, cols, ok)
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
    if n_rows >= _I32_MAX:
        return None
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
    if hint.dtype != np.float32:
        return None
    if allowed is None:
        allowed, m = np.ones((0, 0), dtype=bool), 0
    elif allowed.shape != hint.shape or allowed.dtype != np.bool_:
        return None
    allowed = np.ascontiguousarray(allowed)
    m, cols, ok = _selection(n_rows, n_cols, m)
    high, low = np.empty(n_rows), np.empty(n_rows)
    if not _range_top_kernel(hint.indptr, hint.indices, hint.data, hint.data.view(np.int32), n_cols, m, allowed,
                             high, low, cols, ok):
        return None
    return high, low, low.copy(), cols, ok


def top_above(hint: sp.csr_matrix, m: int, floor: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``cols, ok``: each row's best ``min(m, columns)`` stored entries ``> floor`` (>= 0) in an
    ``allowed`` column, best first, ties to the lower column; None when a stored value is not
    finite (or the arguments do not apply)."""
    n_rows, n_cols = hint.shape
    floor = np.asarray(floor, dtype=np.float64)
    if (hint.dtype != np.float32 or allowed is None or allowed.shape != hint.shape or allowed.dtype != np.bool_
            or floor.shape != (n_rows,) or (floor < 0).any() or np.isnan(floor).any()):
        return None
    m, cols, ok = _selection(n_rows, n_cols, m)
    allowed = np.ascontiguousarray(allowed)
    if not _top_above_kernel(hint.indptr, hint.indices, hint.data, hint.data.view(np.int32), n_cols, floor, m,
                             allowed, cols, ok):
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
    """Compile the kernels, or load them from numba's cache, for the types the k-NN passes
    (float32 data, int32 indices: what its block scoring builds); others compile on first use."""
    x = sp.csr_matrix(np.array([[1.0, 0.0], [0.5, 2.0]], dtype=np.float32))
    product = block_product(x, x)
    allowed = np.ones(x.shape, dtype=bool)
    range_top(product, 1, allowed)
    top_above(product, 1, np.zeros(2), allowed)
    values_at(product, np.arange(2), np.arange(2))
