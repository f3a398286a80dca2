"""Speed kernels of the served neighbourhood models, in one place.

Each kernel computes exactly what a plain scipy/numpy expression computes,
only faster; ``tests/test_kernels.py`` checks the equality (same entries,
same order, same float32 sums):

* :func:`sparse_product` -- ``left @ right`` through scipy's private
  ``scipy.sparse._sparsetools.csr_matmat`` (the one use of a private scipy
  API in recsys), skipping scipy's symbolic sizing pass. A scipy without
  the kernel, or whose signature changed, takes the public product.
* :func:`row_flops` -- the multiply-adds of each row of a sparse product
  (the bound :func:`sparse_product` sizes its output by; blocks of a long
  product are cut by it).
* :func:`history_scores` -- one user's ``x_u @ W`` (the ``score_one`` fast
  path of :class:`~recsys.models.knn.ItemKNN`) without sparse objects.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.models.ranking import gather_counts

try:  # scipy's own sparse-product kernel (what ``a @ b`` runs after sizing its output)
    from scipy.sparse._sparsetools import csr_matmat as _csr_matmat
except ImportError:  # pragma: no cover - a scipy without it takes the public product
    _csr_matmat = None

__all__ = ["history_scores", "row_flops", "sparse_product"]


def sparse_product(left: sp.csr_matrix, right: sp.csr_matrix) -> sp.csr_matrix:
    """``left @ right`` (CSR float32 or float64 as both operands, 32-bit indices), computed in one pass.

    scipy's product first counts the output entries exactly (a symbolic pass
    costing about a quarter of the product), then runs its numeric kernel.
    Row ``u`` of the product has at most ``sum_i |right_i|`` entries over the
    columns ``i`` of ``left_u``, a bound read off the row lengths, so this
    sizes the output by that bound and calls the same kernel once: identical
    entries, order and sums. Other or mixed dtypes (or a scipy without the
    kernel) take the public product. Indices of the result are not sorted.
    """
    n_rows, n_cols = left.shape[0], right.shape[1]
    if (
        _csr_matmat is None
        or left.dtype != right.dtype
        or left.dtype not in (np.float32, np.float64)
        or left.shape[1] != right.shape[0]
    ):
        return (left @ right).tocsr()
    bound = int(np.diff(right.indptr)[left.indices[: left.indptr[-1]]].sum(dtype=np.int64))
    if bound >= np.iinfo(np.int32).max or right.nnz >= np.iinfo(np.int32).max:
        return (left @ right).tocsr()
    i32 = np.int32
    indptr = np.empty(n_rows + 1, dtype=i32)
    indices = np.empty(bound, dtype=i32)
    data = np.empty(bound, dtype=left.dtype)
    try:
        _csr_matmat(n_rows, n_cols,
                    left.indptr.astype(i32, copy=False), left.indices.astype(i32, copy=False), left.data,
                    right.indptr.astype(i32, copy=False), right.indices.astype(i32, copy=False), right.data,
                    indptr, indices, data)
    except (TypeError, ValueError):  # a private kernel whose signature changed in another scipy release
        return (left @ right).tocsr()
    nnz = int(indptr[-1])
    out = sp.csr_matrix((data[:nnz], indices[:nnz], indptr), shape=(n_rows, n_cols), copy=False)
    out.has_sorted_indices = False
    return out


def row_flops(left: sp.csr_matrix, right: sp.csr_matrix) -> np.ndarray:
    """Multiply-adds of each row of ``left @ right`` (int64): ``sum_i |right_i|``
    over the columns ``i`` of the row, an upper bound on the row's stored entries."""
    per_entry = np.diff(right.indptr).astype(np.int64)[left.indices[: left.indptr[-1]]]
    total = np.concatenate(([0], np.cumsum(per_entry)))
    return total[left.indptr[1:]] - total[left.indptr[:-1]]


def history_scores(similarity: sp.csr_matrix, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Dense float32 ``x @ W`` for one history ``x`` (``items`` with ``weights``)
    and a CSR float32 ``W`` (``similarity``), without building sparse objects.

    Gathers the rows ``W[i]`` of the history's items and accumulates
    ``x_i * W[i, j]`` in float32 in the order scipy's sparse product does
    (item by item, in the order of ``items``), so the scores equal
    ``sparse_product(x, W)`` bit for bit.
    """
    items = np.asarray(items, dtype=np.int64)
    starts = similarity.indptr[items].astype(np.int64)
    flat, local, _ = gather_counts(starts, similarity.indptr[items + 1] - starts)
    scores = np.zeros(similarity.shape[1], dtype=np.float32)
    np.add.at(scores, similarity.indices[flat], np.asarray(weights, dtype=np.float32)[local] * similarity.data[flat])
    return scores
