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

__all__ = [
    "row_of_entries",
    "take_rows",
    "RECOMMENDATION_COLUMNS",
    "top_n_indices",
    "top_n_dense",
    "nth_largest",
    "nonzero_rc",
    "top_n_packed",
    "topk_positions",
    "keep_topk",
    "ranked_entries",
    "first_allowed",
    "entries_frame",
    "gather_counts",
    "top_n_dense_row",
    "top_n_positive",
]

#: entries in one padded scratch block of :func:`topk_positions` (bounds its memory)
_PAD_BUDGET = 1 << 22
#: sample size of the lower-bound pre-filter of :func:`topk_positions`
_SAMPLE = 256

RECOMMENDATION_COLUMNS = ["user_id", "product_id", "score", "rank", "reason"]
"""The columns of every strategy's ``recommend`` frame."""


def row_of_entries(matrix: sp.csr_matrix) -> np.ndarray:
    """The row index of every stored entry of a CSR matrix."""
    return np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))


def _csr(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, shape: tuple[int, int],
         sorted_indices: bool) -> sp.csr_matrix:
    """A CSR matrix from its arrays, with 32-bit index arrays when they fit
    (scipy otherwise widens *both* operands' indices to 64 bits in every product)."""
    if indptr[-1] < np.iinfo(np.int32).max and shape[1] < np.iinfo(np.int32).max:
        indptr, indices = indptr.astype(np.int32, copy=False), indices.astype(np.int32, copy=False)
    out = sp.csr_matrix((data, indices, indptr), shape=shape, copy=False)
    out.has_sorted_indices = sorted_indices
    return out


def take_rows(matrix: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """``matrix[rows]`` where a row outside ``0..n_rows-1`` (e.g. ``-1``, unknown) is empty.

    Work is proportional to the entries of the selected rows only.
    """
    rows = np.asarray(rows, dtype=np.int64)
    valid = (rows >= 0) & (rows < matrix.shape[0])
    safe = np.where(valid, rows, 0)
    counts = np.where(valid, matrix.indptr[safe + 1] - matrix.indptr[safe], 0).astype(np.int64)
    flat, _, _ = gather_counts(matrix.indptr[safe], counts)
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return _csr(matrix.data[flat], matrix.indices[flat], indptr, (len(rows), matrix.shape[1]),
                matrix.has_sorted_indices)


def gather_counts(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entry positions for rows beginning at ``starts`` with ``counts`` entries,
    each entry's local row and its offset within that row."""
    local_row = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    first = np.cumsum(counts) - counts
    offset = np.arange(int(counts.sum()), dtype=np.int64) - first[local_row]
    return starts[local_row] + offset, local_row, offset


def _kth_smallest(pad: np.ndarray, kth: np.ndarray) -> np.ndarray:
    """``kth[r]``-th smallest (0-based) value of each row of ``pad``; one
    ``np.partition`` pass per distinct ``kth``."""
    out = np.empty(pad.shape[0], dtype=pad.dtype)
    for value in np.unique(kth):
        rows = np.flatnonzero(kth == value)
        block = pad if len(rows) == pad.shape[0] else pad[rows]
        out[rows] = np.partition(block, value, axis=1)[:, value]
    return out


def topk_positions(matrix: sp.csr_matrix, k: int | np.ndarray) -> np.ndarray:
    """Sorted positions in ``matrix.data`` of the ``k`` largest entries of each row.

    ``k`` is one int or one per row. Among entries equal to a row's k-th
    largest value the lower column indices win, so the result does not
    depend on the storage order of a row. Long rows are first pruned with an
    exact lower bound (the k-th largest of a strided sample of the row is at
    most the row's k-th largest), then cut with ``np.partition`` in bounded
    padded blocks: O(stored entries) in a few vectorised passes.
    """
    n_rows = matrix.shape[0]
    counts = np.diff(matrix.indptr).astype(np.int64)
    k = np.broadcast_to(np.asarray(k, dtype=np.int64), (n_rows,))
    if (k < 0).any():
        raise ValueError(f"k must be >= 0, got {int(k.min())}")
    if not (counts > k).any():
        return np.arange(matrix.nnz, dtype=np.int64)
    pre = np.flatnonzero((counts > k) & (counts >= 2 * _SAMPLE) & (4 * k <= _SAMPLE) & (k > 0))
    if len(pre):
        slots = np.arange(_SAMPLE, dtype=np.int64)
        positions = matrix.indptr[pre][:, None] + (slots[None, :] * counts[pre][:, None]) // _SAMPLE
        bound = np.full(n_rows, -np.inf, dtype=matrix.data.dtype)
        bound[pre] = _kth_smallest(matrix.data[positions], _SAMPLE - k[pre])
        cand = np.flatnonzero(matrix.data >= np.repeat(bound, counts))
        cand_row = np.searchsorted(matrix.indptr, cand, side="right") - 1
    else:
        cand = np.arange(matrix.nnz, dtype=np.int64)
        cand_row = row_of_entries(matrix)
    chosen = _exact_topk(matrix.data[cand], cand_row, matrix.indices[cand], k)
    return cand[chosen]




def _exact_topk(values: np.ndarray, rows: np.ndarray, cols: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Top-``k[row]`` mask for entries grouped by ascending ``rows`` (ties: lower ``cols``)."""
    chosen = np.ones(len(values), dtype=bool)
    if len(values) == 0:
        return chosen
    first = np.concatenate(([0], np.flatnonzero(np.diff(rows)) + 1))
    row_ids = rows[first]
    counts = np.diff(np.append(first, len(rows)))
    chosen[k[rows] == 0] = False
    over = (counts > k[row_ids]) & (k[row_ids] > 0)
    if not over.any():
        return chosen
    # widest rows first; a padded block holds rows at least half as wide as its first
    pending = np.flatnonzero(over)
    pending = pending[np.argsort(-counts[pending], kind="stable")]
    negative_width = -counts[pending]
    start = 0
    while start < len(pending):
        width = int(counts[pending[start]])
        stop = min(start + max(1, _PAD_BUDGET // width),
                   int(np.searchsorted(negative_width, -(width // 2), side="right")))
        which = pending[start : max(stop, start + 1)]
        start += len(which)
        row_k = k[row_ids[which]]
        flat, local, offset = gather_counts(first[which], counts[which])
        vals = values[flat]
        width = int(counts[which].max())
        pad = np.full((len(which), width), -np.inf, dtype=vals.dtype)
        pad[local, offset] = vals
        threshold = _kth_smallest(pad, width - row_k)[local]
        greater = vals > threshold
        need = row_k - np.bincount(local, weights=greater, minlength=len(which)).astype(np.int64)
        mask = greater
        equal = np.flatnonzero(vals == threshold)
        if len(equal):
            order = np.lexsort((cols[flat[equal]], local[equal]))
            eq_local = local[equal][order]
            rank = np.arange(len(order)) - np.searchsorted(eq_local, eq_local, side="left")
            mask[equal[order[rank < need[eq_local]]]] = True
        chosen[flat] = mask
    return chosen


def keep_topk(matrix: sp.csr_matrix, k: int | np.ndarray) -> sp.csr_matrix:
    """A copy of ``matrix`` holding only the top-``k`` entries per row (see :func:`topk_positions`)."""
    keep = topk_positions(matrix, k)
    rows = np.searchsorted(matrix.indptr, keep, side="right") - 1
    indptr = np.zeros(matrix.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=matrix.shape[0]), out=indptr[1:])
    return _csr(matrix.data[keep], matrix.indices[keep], indptr, matrix.shape, matrix.has_sorted_indices)


def ranked_entries(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All stored entries ordered by (row, -value, column): ``rows, cols, values, rank`` (rank from 1)."""
    rows = row_of_entries(matrix)
    order = np.lexsort((matrix.indices, -matrix.data, rows))
    rows, cols, values = rows[order], matrix.indices[order].astype(np.int64), matrix.data[order]
    starts = np.repeat(matrix.indptr[:-1], np.diff(matrix.indptr))
    return rows, cols, values, np.arange(len(rows), dtype=np.int64) - starts + 1


def top_n_indices(scores: np.ndarray, n: int) -> np.ndarray:
    """Column indices of the ``n`` best scores per row of a dense block, best
    first; ties broken by the lower column index (stable sort on ``-score``).
    A block of at most 4096 entries is sorted whole; otherwise ``np.partition``
    finds each row's ``n``-th best value and only the entries at or above it
    (ties included) are sorted."""
    if n >= scores.shape[1]:
        return np.argsort(-scores, axis=1, kind="stable")
    # a candidate set that surely holds the top n including every tie at the n-th value
    kth = np.partition(-scores, n - 1, axis=1)[:, n - 1 : n]
    order = np.argsort(-scores, axis=1, kind="stable") if scores.shape[0] * scores.shape[1] <= 4096 else None
    if order is not None:
        return order[:, :n]
    out = np.empty((scores.shape[0], n), dtype=np.int64)
    for i in range(scores.shape[0]):
        cand = np.flatnonzero(-scores[i] <= kth[i, 0])
        best = cand[np.argsort(-scores[i, cand], kind="stable")]
        out[i] = best[:n]
    return out


def nonzero_rc(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a C-contiguous 2-D mask, through the faster 1-D ``np.flatnonzero``."""
    flat = np.flatnonzero(mask)
    return np.divmod(flat, mask.shape[1])


def _compact(mask: np.ndarray, values: np.ndarray,
             columns: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The ``mask`` entries of each row packed left, in order, into a padded block: their
    ``cols`` (``columns[r, c]``, or ``c`` itself), ``vals`` (padding ``-inf``, col 0),
    ``counts`` per row and each entry's ``offset``; one ``np.flatnonzero`` pass."""
    r, c = nonzero_rc(mask)
    counts = np.bincount(r, minlength=mask.shape[0])
    offset = np.arange(len(r), dtype=np.int64) - (np.cumsum(counts) - counts)[r]
    width = max(int(counts.max(initial=0)), 1)
    vals = np.full((mask.shape[0], width), -np.inf, dtype=values.dtype)
    cols = np.zeros((mask.shape[0], width), dtype=np.int64)
    vals[r, offset] = values[r, c]
    cols[r, offset] = c if columns is None else columns[r, c]
    return cols, vals, counts, offset


def _sample_bound(scores: np.ndarray, allowed: np.ndarray | None, j: np.ndarray | int, sample: int) -> np.ndarray:
    """Per row the ``j``-th largest allowed entry of a strided sample of about ``sample``
    columns (``-inf`` if the sample has fewer); NaN never counts."""
    step = max(1, scores.shape[1] // sample)
    picked = scores[:, ::step] if allowed is None else np.where(allowed[:, ::step], scores[:, ::step], -np.inf)
    width = picked.shape[1]
    j = np.broadcast_to(np.asarray(j, dtype=np.int64), (scores.shape[0],))
    bound = np.full(scores.shape[0], -np.inf, dtype=scores.dtype)
    for value in np.unique(j[j <= width]):
        which = np.flatnonzero(j == value)
        block = picked if len(which) == len(j) else picked[which]
        bound[which] = np.partition(block, width - value, axis=1)[:, width - value]
    bound[np.isnan(bound)] = -np.inf  # NaN sorts as the largest in np.partition: no bound from it
    return bound


def _candidates(scores: np.ndarray, n: int, floor: np.ndarray | None, allowed: np.ndarray | None,
                sample: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Packed ``cols, vals, counts`` of a superset of each row's top ``n`` qualifying entries
    (all ties at the ``n``-th included): the entries ``>=`` a bound ``b`` taken from a strided sample.

    The ``n``-th largest of the sample never exceeds the row's ``n``-th largest (the sample is
    a subset), so it is a safe ``b``. A sharper guess, the sample's ``j``-th largest with ``j``
    set for about ``2.5 n`` candidates, is kept for the rows where at least ``n`` entries reach
    it (then the row's ``n``-th largest is ``>= b`` too); the other rows are redone with the safe
    bound. ``floor``: only entries above it count (``x > f`` is ``x >= nextafter(f)``)."""
    n_rows, n_cols = scores.shape
    above = None if floor is None else np.nextafter(np.asarray(floor, dtype=scores.dtype), np.inf)

    def packed(rows: np.ndarray | None, bound: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        block = scores if rows is None else scores[rows]
        if above is not None:
            low = above if rows is None else above[rows]
            bound = np.where(bound > low, bound, low)
        mask = block >= bound[:, None]
        if allowed is not None:
            mask &= allowed if rows is None else allowed[rows]
        cols, vals, counts, _ = _compact(mask, block)
        return cols, vals, counts

    width = len(range(0, n_cols, max(1, n_cols // sample)))
    guess = min(n, max(1, -(-5 * n * width // (2 * n_cols))))
    cols, vals, counts = packed(None, _sample_bound(scores, allowed, guess, sample))
    redo = np.flatnonzero(counts < n) if guess < n else np.zeros(0, dtype=np.int64)
    if len(redo):
        sub = None if allowed is None else allowed[redo]
        r_cols, r_vals, r_counts = packed(redo, _sample_bound(scores[redo], sub, n, sample))
        w = max(cols.shape[1], r_cols.shape[1])
        cols, vals = _widen(cols, w, 0), _widen(vals, w, -np.inf)
        cols[redo], vals[redo], counts[redo] = _widen(r_cols, w, 0), _widen(r_vals, w, -np.inf), r_counts
    return cols, vals, counts


def _widen(block: np.ndarray, width: int, fill: float) -> np.ndarray:
    """``block`` padded on the right with ``fill`` to ``width`` columns."""
    if block.shape[1] >= width:
        return block
    return np.pad(block, ((0, 0), (0, width - block.shape[1])), constant_values=fill)


def top_n_dense(scores: np.ndarray, n: int, floor: np.ndarray | None = None, allowed: np.ndarray | None = None,
                sample: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best entries per row of a dense block, best first, ties to the lower column.

    With ``floor`` (one value per row) only entries strictly above it count,
    with ``allowed`` (bool, shaped like ``scores``) only allowed ones;
    without either, every entry does, ordered as :func:`top_n_indices`
    orders them (``-inf`` after the finite scores, NaN last). Returns
    ``cols`` (rows x n, int64) and ``ok`` (False: padding, the row has fewer
    qualifying entries; its column is 0).

    Exact, in a few vectorised passes: a superset of the top ``n`` from a
    sampled bound (:func:`_candidates`), cut at its exact ``n``-th largest
    value ``t`` (all ties at ``t`` kept) with one ``np.partition``, and the
    few left ordered with one stable sort. Rows without ``floor`` or
    ``allowed`` that end up short (NaNs) are sorted whole.
    """
    n_rows, n_cols = scores.shape
    n = min(int(n), n_cols)
    if allowed is not None and np.shape(allowed) != scores.shape:
        raise ValueError(f"top_n_dense: allowed has shape {np.shape(allowed)}, the scores {scores.shape}")
    if floor is not None and np.shape(floor) != (n_rows,):
        raise ValueError(f"top_n_dense: floor needs one value per row ({n_rows}), got shape {np.shape(floor)}")
    filtered = floor is not None or allowed is not None
    cols, vals, counts = _candidates(scores, n, floor, allowed, sample)
    out, ok = top_n_packed(cols, vals, counts, n)
    short = np.zeros(0, dtype=np.int64) if filtered else np.flatnonzero(counts < n)
    if len(short):
        out[short] = np.argsort(-scores[short], axis=1, kind="stable")[:, :n]
        ok[short] = True
    return out, ok


def top_n_packed(cols: np.ndarray, vals: np.ndarray, counts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best of packed candidates (row ``i``: ``counts[i]`` entries ``vals``/``cols``
    first, in any order, then padding), best first, ties to the lower column: ``cols, ok`` as
    :func:`top_n_dense`. The exact ``n``-th largest value ``t`` (one ``np.partition``) cuts
    them, all ties at ``t`` kept; one sort by (value desc, column asc) orders the rest."""
    real = np.arange(vals.shape[1])[None, :] < counts[:, None]
    if vals.shape[1] > n:
        kth = vals.shape[1] - n
        cut = np.partition(np.where(real, vals, -np.inf), kth, axis=1)[:, kth : kth + 1]
        cols, vals, counts, _ = _compact(real & (vals >= cut), vals, cols)
        real = np.arange(vals.shape[1])[None, :] < counts[:, None]
    # padding sorts after every candidate (even a -inf one): value +inf, column past the last
    order = np.lexsort((np.where(real, cols, np.iinfo(np.int64).max), np.where(real, -vals, np.inf)), axis=1)[:, :n]
    out = np.take_along_axis(cols, order, axis=1)
    ok = order < counts[:, None]
    if out.shape[1] < n:
        out = np.pad(out, ((0, 0), (0, n - out.shape[1])))
        ok = np.pad(ok, ((0, 0), (0, n - ok.shape[1])))
    return out, ok


def nth_largest(scores: np.ndarray, n: int, sample: int = 1024) -> np.ndarray:
    """The ``n``-th largest non-NaN entry of each row of a dense block (``-inf`` where a
    row has fewer): a superset of the row's top ``n`` from a sampled bound
    (:func:`_candidates`), cut with one ``np.partition``."""
    _, vals, counts = _candidates(scores, n, None, None, sample)
    out = np.full(scores.shape[0], -np.inf, dtype=scores.dtype)
    if vals.shape[1] >= n:
        out = np.partition(vals, vals.shape[1] - n, axis=1)[:, vals.shape[1] - n]
        out[counts < n] = -np.inf
    return out


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


def top_n_dense_row(scores: np.ndarray, n: int) -> np.ndarray:
    """Columns of the ``n`` largest positive entries of one dense score row,
    best first, ties to the lower column (the single-user twin of
    :func:`topk_positions` + :func:`ranked_entries`)."""
    cand = np.flatnonzero(scores > 0)
    if len(cand) > n:
        values = scores[cand]
        cand = cand[values >= np.partition(values, len(cand) - n)[len(cand) - n]]
    order = np.lexsort((cand, -scores[cand]))
    return cand[order[:n]]


def _order_keys(values: np.ndarray, cols: np.ndarray, col_bits: int, n_cols: int) -> np.ndarray:
    """int64 keys ordering positive float32 ``values`` descending, then
    ``cols`` ascending: the larger key is the better entry, every key > 0.
    (A positive float's bit pattern, read as an integer, orders like the
    float; the column's complement fills the low ``col_bits`` bits.)"""
    bits = np.asarray(values, dtype=np.float32).view(np.int32).astype(np.int64)
    return (bits << col_bits) | (n_cols - 1 - np.asarray(cols, dtype=np.int64))


def _decode_keys(keys: np.ndarray, col_bits: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """``cols, values`` (float32) back from :func:`_order_keys`."""
    cols = n_cols - 1 - (keys & ((1 << col_bits) - 1))
    return cols, (keys >> col_bits).astype(np.int32).view(np.float32)


def _sampled_bounds(data: np.ndarray, indptr: np.ndarray, counts: np.ndarray, k_cut: np.ndarray,
                    sample: int) -> np.ndarray:
    """Per row, a float32 lower bound of its ``k_cut``-th largest entry (:func:`top_n_positive`):
    the ``k_cut``-th largest of ``sample`` strided distinct entries of the row where the row is
    longer than ``k_cut`` and ``k_cut <= sample``, else 0; never below the smallest positive float32."""
    bound = np.zeros(len(counts), dtype=np.float32)
    cut = np.flatnonzero((counts > k_cut) & (k_cut <= sample))
    if len(cut):
        shift = sample.bit_length() - 1
        small = int(counts.max()) * sample < 1 << 31  # 32-bit positions: half the memory traffic
        idx = np.int32 if small else np.int64
        step = np.arange(sample, dtype=idx)[None, :] * counts[cut].astype(idx)[:, None]
        picked = data[indptr[cut].astype(idx)[:, None] + (step >> shift)]
        short = np.flatnonzero(counts[cut] < sample)
        if len(short):  # a row shorter than the sample repeats positions: keep each entry once
            offsets = step[short] >> shift
            repeated = np.zeros(offsets.shape, dtype=bool)
            repeated[:, 1:] = offsets[:, 1:] == offsets[:, :-1]
            rows_short = picked[short]
            rows_short[repeated] = -np.inf
            picked[short] = rows_short
        bound[cut] = np.maximum(_kth_smallest(picked, sample - k_cut[cut]), 0)
    # at least the smallest positive float32: ">= bound" then also means "> 0"
    np.maximum(bound, np.finfo(np.float32).smallest_subnormal, out=bound)
    return bound


def top_n_positive(
    scores: sp.csr_matrix, banned: sp.csr_matrix | None, n: int, sample: int = 256
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """The ``n`` best positive entries of each row of float32 ``scores``, never a ``banned`` one.

    Ties break by the lower column. Returns ``rows, cols, values, rank``
    ordered by (row, rank), or ``None`` when this route does not apply (not
    float32, or 2**31 columns or more); callers then use :func:`keep_topk`
    and :func:`ranked_entries`.

    Row ``r`` needs its ``k_r = n + |banned_r|`` best entries. The ``k_r``-th
    largest (``k_r`` rounded up) of ``sample`` distinct entries of the row
    (strided; the whole row if shorter) bounds the row's ``k_r``-th largest
    from below, so only the entries at or above it stay candidates. Each
    candidate becomes one integer key (value descending, column ascending:
    :func:`_order_keys`), and rows padded into blocks of similar width are
    cut with one ``np.partition`` and ordered with one ``np.sort`` each -- no
    per-row Python loop, no lexsort over all entries. ``sample`` is a power of two.
    """
    if sample < 1 or sample & (sample - 1):
        raise ValueError(f"sample must be a power of two, got {sample!r}")
    n_rows, n_cols = scores.shape
    if scores.dtype != np.float32 or n_cols >= 1 << 31 or scores.nnz >= 1 << 31:
        return None
    data, indptr = scores.data, scores.indptr
    counts = np.diff(indptr).astype(np.int64)
    n_banned = np.diff(banned.indptr).astype(np.int64) if banned is not None else np.zeros(n_rows, dtype=np.int64)
    k = n + n_banned
    # rounding k up to n + 2^j keeps the bound valid and needs few partition passes
    k_cut = n + np.where(n_banned > 0, 1 << np.ceil(np.log2(np.maximum(n_banned, 1))).astype(np.int64), 0)
    bound = _sampled_bounds(data, indptr, counts, k_cut, sample)
    cand = np.flatnonzero(data >= np.repeat(bound, counts))
    cand_counts = np.diff(np.searchsorted(cand, indptr))
    col_bits = max(1, (n_cols - 1).bit_length())
    keys = _order_keys(data[cand], scores.indices[cand], col_bits, n_cols)
    cand_start = np.cumsum(cand_counts) - cand_counts
    # rows grouped by candidate count (powers of two, at least 32): padding at most doubles a block
    width_class = np.ceil(np.log2(np.maximum(cand_counts, 32))).astype(np.int64)
    has = cand_counts > 0
    parts = []
    for cls in np.unique(width_class[has]):
        which = np.flatnonzero(has & (width_class == cls))
        width = int(cand_counts[which].max())
        flat, local, offset = gather_counts(cand_start[which], cand_counts[which])
        pad = np.broadcast_to(-1 - np.arange(width, dtype=np.int64), (len(which), width)).copy()
        pad[local, offset] = keys[flat]
        top_k = min(width, int(k[which].max()))
        if top_k < width:
            pad = np.partition(pad, width - top_k, axis=1)[:, width - top_k :]
        pad = np.sort(pad, axis=1)[:, ::-1]
        r, slot = np.nonzero(pad > 0)
        parts.append((which[r], pad[r, slot]))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32), empty
    rows = np.concatenate([p[0] for p in parts])
    top_keys = np.concatenate([p[1] for p in parts])
    if len(parts) > 1:
        order = np.argsort(rows, kind="stable")
        rows, top_keys = rows[order], top_keys[order]
    cols, values = _decode_keys(top_keys, col_bits, n_cols)
    if banned is not None and banned.nnz:
        n_c = np.int64(n_cols)
        banned_keys = np.sort(row_of_entries(banned) * n_c + banned.indices)
        keys = rows * n_c + cols
        at = np.minimum(np.searchsorted(banned_keys, keys), len(banned_keys) - 1)
        allowed = banned_keys[at] != keys
        rows, cols, values = rows[allowed], cols[allowed], values[allowed]
    per_row = np.bincount(rows, minlength=n_rows)
    rank = np.arange(len(rows), dtype=np.int64) - (np.cumsum(per_row) - per_row)[rows] + 1
    take = rank <= n
    return rows[take], cols[take], values[take], rank[take]
