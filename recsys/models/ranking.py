"""Top-k selection on sparse rows and ranked lists, and the result frame.

Every routine here breaks ties by the lower column index, so results do not
depend on block sizes, chunking or the order in which rows arrive. The work is
proportional to the stored entries of the rows involved, never to the number
of columns, which keeps single-user answers cheap.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.models.base import RECOMMENDATION_COLUMNS

__all__ = [
    "row_of_entries",
    "take_rows",
    "drop_entries",
    "topk_mask",
    "keep_topk",
    "ranked_entries",
    "first_allowed",
    "entries_frame",
]

#: entries in one padded scratch block of :func:`topk_mask` (bounds its memory)
_PAD_BUDGET = 1 << 22


def row_of_entries(matrix: sp.csr_matrix) -> np.ndarray:
    """The row index of every stored entry of a CSR matrix."""
    return np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))


def take_rows(matrix: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """``matrix[rows]`` where a row outside ``0..n_rows-1`` (e.g. ``-1``, unknown) is empty.

    Work is proportional to the entries of the selected rows only.
    """
    rows = np.asarray(rows, dtype=np.int64)
    valid = (rows >= 0) & (rows < matrix.shape[0])
    safe = np.where(valid, rows, 0)
    counts = np.where(valid, matrix.indptr[safe + 1] - matrix.indptr[safe], 0).astype(np.int64)
    flat, _, _ = _gather_counts(matrix.indptr[safe], counts)
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    out = sp.csr_matrix((matrix.data[flat], matrix.indices[flat], indptr), shape=(len(rows), matrix.shape[1]))
    out.has_sorted_indices = matrix.has_sorted_indices
    return out


def drop_entries(matrix: sp.csr_matrix, banned: sp.csr_matrix | None) -> sp.csr_matrix:
    """``matrix`` without the entries stored in ``banned`` (same shape), and without zeros."""
    keep = matrix.data != 0
    if banned is not None and banned.nnz and matrix.nnz:
        n_cols = np.int64(matrix.shape[1])
        keys = row_of_entries(matrix) * n_cols + matrix.indices
        keep &= ~np.isin(keys, row_of_entries(banned) * n_cols + banned.indices)
    if keep.all():
        return matrix
    rows = row_of_entries(matrix)[keep]
    indptr = np.zeros(matrix.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=matrix.shape[0]), out=indptr[1:])
    out = sp.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape)
    out.has_sorted_indices = matrix.has_sorted_indices
    return out


def _gather_counts(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entry positions for rows beginning at ``starts`` with ``counts`` entries,
    each entry's local row and its offset within that row."""
    local_row = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    first = np.cumsum(counts) - counts
    offset = np.arange(int(counts.sum()), dtype=np.int64) - first[local_row]
    return starts[local_row] + offset, local_row, offset


def _gather(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For CSR ``rows``: entry positions, each entry's local row and its offset in that row."""
    return _gather_counts(indptr[rows], (indptr[rows + 1] - indptr[rows]).astype(np.int64))


def topk_mask(matrix: sp.csr_matrix, k: int) -> np.ndarray:
    """Boolean mask over ``matrix.data`` keeping the ``k`` largest entries of each row.

    Among entries equal to a row's k-th largest value the lower column indices
    win (``matrix`` must have sorted indices). Rows are padded into bounded
    dense scratch blocks and cut with ``np.partition``: O(stored entries).
    """
    if not matrix.has_sorted_indices:
        raise ValueError("topk_mask needs a CSR matrix with sorted indices (call sort_indices())")
    counts = np.diff(matrix.indptr)
    keep = np.ones(matrix.nnz, dtype=bool)
    big = np.flatnonzero(counts > k)
    if len(big) == 0:
        return keep
    if k == 0:
        return np.zeros(matrix.nnz, dtype=bool)
    step = max(1, _PAD_BUDGET // int(counts[big].max()))
    for start in range(0, len(big), step):
        rows = big[start : start + step]
        flat, local_row, offset = _gather(matrix.indptr, rows)
        values = matrix.data[flat]
        width = int(counts[rows].max())
        pad = np.full((len(rows), width), -np.inf, dtype=np.float64)
        pad[local_row, offset] = values
        threshold = np.partition(pad, width - k, axis=1)[:, width - k][local_row]
        greater = values > threshold
        equal = values == threshold
        need = k - np.bincount(local_row, weights=greater, minlength=len(rows)).astype(np.int64)
        # rank of each tied entry within its row, in column order
        equal_cum = np.cumsum(equal)
        first = np.cumsum(counts[rows]) - counts[rows]
        before = np.concatenate(([0], equal_cum))[first][local_row]
        equal_rank = equal_cum - 1 - before
        keep[flat] = greater | (equal & (equal_rank < need[local_row]))
    return keep


def keep_topk(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """A copy of ``matrix`` holding only the top-``k`` entries per row (see :func:`topk_mask`)."""
    keep = topk_mask(matrix, k)
    rows = row_of_entries(matrix)[keep]
    indptr = np.zeros(matrix.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=matrix.shape[0]), out=indptr[1:])
    out = sp.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape)
    out.has_sorted_indices = True
    return out


def ranked_entries(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All stored entries ordered by (row, -value, column): ``rows, cols, values, rank`` (rank from 1)."""
    rows = row_of_entries(matrix)
    order = np.lexsort((matrix.indices, -matrix.data, rows))
    rows, cols, values = rows[order], matrix.indices[order].astype(np.int64), matrix.data[order]
    starts = np.repeat(matrix.indptr[:-1], np.diff(matrix.indptr))
    return rows, cols, values, np.arange(len(rows), dtype=np.int64) - starts + 1


def first_allowed(
    orders: np.ndarray, excluded: sp.csr_matrix | None, n: np.ndarray | int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Walk each row's ranked candidate list and take the first allowed items.

    ``orders`` is ``(rows, width)`` of column ids, best first, ``-1`` padding;
    ``excluded`` a ``(rows, n_columns)`` sparse matrix whose stored entries may
    not be taken; ``n`` how many to take per row (scalar or per row). The
    caller makes ``width`` at least ``n`` plus the row's number of exclusions.
    Returns ``rows, cols, position`` (0-based position among the taken items).
    """
    n_rows, width = orders.shape
    need = np.broadcast_to(np.asarray(n, dtype=np.int64), (n_rows,))
    allowed = orders >= 0
    if excluded is not None and excluded.nnz:
        n_cols = np.int64(excluded.shape[1])
        banned = row_of_entries(excluded) * n_cols + excluded.indices
        keys = np.arange(n_rows, dtype=np.int64)[:, None] * n_cols + orders
        allowed &= ~np.isin(keys, banned)
    position = np.cumsum(allowed, axis=1) - 1
    take = allowed & (position < need[:, None])
    rows, slots = np.nonzero(take)
    return rows.astype(np.int64), orders[rows, slots].astype(np.int64), position[rows, slots]


def entries_frame(
    user_ids: Sequence[str],
    product_ids: pd.Index,
    rows: np.ndarray,
    cols: np.ndarray,
    scores: np.ndarray,
    ranks: np.ndarray,
    reasons: str | np.ndarray,
) -> pd.DataFrame:
    """The recommendation frame (:data:`RECOMMENDATION_COLUMNS`) for entries
    already ordered by (user, rank); ``rows`` index ``user_ids``."""
    frame = pd.DataFrame(
        {
            "user_id": np.asarray(user_ids, dtype=object)[rows],
            "product_id": np.asarray(product_ids, dtype=object)[cols],
            "score": np.asarray(scores, dtype=np.float64),
            "rank": np.asarray(ranks, dtype=np.int64),
        }
    )
    frame["reason"] = reasons if isinstance(reasons, str) else np.asarray(reasons, dtype=object)
    return frame[RECOMMENDATION_COLUMNS]
