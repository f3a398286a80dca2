"""Compiled (numba) top-``m`` of a dense score block, the hybrid's candidate step.

:func:`dense_top` returns exactly what :func:`~recsys.models.ranking.top_n_dense`
returns with a ``floor`` and an ``allowed`` mask -- per row the ``m`` best
allowed entries strictly above the row's floor, best first, ties to the lower
column, ``ok`` False on padding -- in one pass over each row instead of
numpy's several full-block passes (mask, compare, compact, partition):

1. **bounds.** ``s`` strided entries of the row (every ``n / s``-th column)
   that qualify (allowed, ``> floor``), their ``4k`` largest kept in a small
   sorted buffer, with ``k = ceil(2.5 m s / n)``. The ``k``-th largest, ``b``,
   is at most the row's ``k``-th largest qualifying value, so at least ``k``
   entries reach it (about ``2.5 m`` expected when the sample is
   representative); the ``4k``-th, ``b'``, backs it up. Fewer qualifying
   samples, or ``4k`` above a quarter of the sample (short rows, large
   ``m``): ``-inf``.
2. **pass.** The qualifying entries ``>= b`` are collected in column order;
   if fewer than ``m`` came through (a row whose scores follow the column
   order defeats a strided sample), the pass is redone with ``b'``, then with
   ``-inf`` (every qualifying entry), so no top-``m`` entry is ever missed.
3. **order.** A stable sort of the collected entries by descending score
   keeps the lower column first among ties; the first ``m`` are the answer.

The row's range (largest and smallest finite value, plain minimum) is one
pass with four independent lanes; a row holding an infinity is redone by the
plain per-entry rule.

NaN never qualifies (``x > floor`` is false), nor does anything when the
floor itself is NaN, as in numpy.

A float32 block (the content strategy's) is read as it is, no float64 copy:
numba compiles one specialisation per dtype and every value read is widened
to float64 exactly, so the answer is that of the block widened first.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["dense_top", "range_top", "sample_step"]

#: strided samples per row for the bound of step 1
_SAMPLES = 512
#: room for the sampled values kept (``4k`` is sampled only while at most a quarter of the samples)
_DEEPEST = _SAMPLES // 2


@numba.njit(cache=True, nogil=True)
def sample_step(n: int) -> int:
    """The stride of step 1's sample in a row of ``n`` entries: the sample is ``x[::sample_step(n)]``."""
    return max(1, n // _SAMPLES)


@numba.njit(cache=True, nogil=True)
def _keep_largest(top: np.ndarray, filled: int, capacity: int, v: float) -> int:
    """Insert ``v`` into ``top[:filled]`` (descending, at most ``capacity`` kept); the new fill."""
    if filled == capacity:
        if not v > top[capacity - 1]:
            return filled
        i = capacity - 1
    else:
        i = filled
        filled += 1
    while i > 0 and top[i - 1] < v:
        top[i] = top[i - 1]
        i -= 1
    top[i] = v
    return filled


@numba.njit(cache=True, nogil=True)
def _collect(x: np.ndarray, ok_col: np.ndarray, floor: float, bound: float, buf_v: np.ndarray,
             buf_c: np.ndarray) -> int:
    """Entries ``>= bound``, ``> floor`` and allowed, in column order, into ``buf_v`` / ``buf_c``; their count."""
    count = 0
    for j in range(x.shape[0]):
        v = x[j]
        if v >= bound and v > floor and ok_col[j]:
            buf_v[count] = v
            buf_c[count] = j
            count += 1
    return count


@numba.njit(cache=True, nogil=True)
def _row_top(x: np.ndarray, ok_col: np.ndarray, floor: float, m: int, buf_v: np.ndarray,
             buf_c: np.ndarray, out_c: np.ndarray, out_ok: np.ndarray, top: np.ndarray, sampled: np.ndarray) -> None:
    n = x.shape[0]
    step = sample_step(n)
    n_pos = (n + step - 1) // step
    given = sampled.shape[0] == n_pos  # the sample, read while the row was written (else from the row)
    k = max(1, -(-5 * m * n_pos // (2 * n)))
    deep = 4 * k
    filled = 0
    if deep <= n_pos // 4:  # else the sample is too small to bound anything: every qualifying entry
        for s in range(n_pos):
            j = s * step
            v = sampled[s] if given else x[j]
            if v > floor and ok_col[j]:
                filled = _keep_largest(top, filled, deep, v)
    bounds = (top[k - 1] if filled >= k else -np.inf, top[deep - 1] if filled >= deep else -np.inf, -np.inf)
    count = 0
    for bound in bounds:
        count = _collect(x, ok_col, floor, bound, buf_v, buf_c)
        if count >= m or bound == -np.inf:
            break
    if count > m:  # cut at the m-th largest value t (all ties at t kept), in column order
        t = np.partition(buf_v[:count], count - m)[count - m]
        kept = 0
        for i in range(count):
            if buf_v[i] >= t:
                buf_v[kept] = buf_v[i]
                buf_c[kept] = buf_c[i]
                kept += 1
        count = kept
    order = np.argsort(-buf_v[:count], kind="mergesort")  # stable: ties keep the lower column first
    for i in range(min(m, count)):
        out_c[i] = buf_c[order[i]]
        out_ok[i] = True


@numba.njit(cache=True, nogil=True)
def _row_range_plain(x: np.ndarray) -> tuple[float, float, float]:
    """Largest and smallest finite value (-inf / inf if none) and the plain minimum (NaN if any)."""
    high, low, plain, nan = -np.inf, np.inf, np.inf, False
    for j in range(x.shape[0]):
        v = x[j]
        if v != v:
            nan = True
        else:
            if v < plain:
                plain = v
            if v != np.inf and v != -np.inf:
                if v > high:
                    high = v
                if v < low:
                    low = v
    return high, low, (np.nan if nan or x.shape[0] == 0 else plain)


@numba.njit(cache=True, nogil=True)
def _row_range(x: np.ndarray) -> tuple[float, float, float]:
    """:func:`_row_range_plain` in four independent lanes (NaN fails every comparison, so it is
    skipped and counted); a row whose largest or smallest non-NaN value is infinite, or that has
    none, is redone by the plain rule."""
    n = x.shape[0]
    h0 = h1 = h2 = h3 = -np.inf
    l0 = l1 = l2 = l3 = np.inf
    nans = 0
    n4 = n - n % 4
    for j in range(0, n4, 4):
        a, b, c, d = x[j], x[j + 1], x[j + 2], x[j + 3]
        h0 = a if a > h0 else h0
        h1 = b if b > h1 else h1
        h2 = c if c > h2 else h2
        h3 = d if d > h3 else h3
        l0 = a if a < l0 else l0
        l1 = b if b < l1 else l1
        l2 = c if c < l2 else l2
        l3 = d if d < l3 else l3
        nans += (a != a) + (b != b) + (c != c) + (d != d)
    for j in range(n4, n):
        a = x[j]
        h0 = a if a > h0 else h0
        l0 = a if a < l0 else l0
        nans += a != a
    high, low = max(max(h0, h1), max(h2, h3)), min(min(l0, l1), min(l2, l3))
    if not (np.isfinite(high) and np.isfinite(low)):
        return _row_range_plain(x)
    return high, low, (np.nan if nans else low)


@numba.njit(cache=True, nogil=True)
def _range_top(scores: np.ndarray, allowed: np.ndarray, m: int, high: np.ndarray, low: np.ndarray,
               floor: np.ndarray, out_c: np.ndarray, out_ok: np.ndarray) -> None:
    n_cols = scores.shape[1]
    buf_v = np.empty(n_cols)
    buf_c = np.empty(n_cols, dtype=np.int64)
    top = np.empty(_DEEPEST)
    none = np.empty(0, dtype=scores.dtype)
    for r in range(scores.shape[0]):
        high[r], low[r], floor[r] = _row_range(scores[r])
        if m > 0:
            _row_top(scores[r], allowed[r], floor[r], m, buf_v, buf_c, out_c[r], out_ok[r], top, none)


@numba.njit(cache=True, nogil=True)
def _dense_top(scores: np.ndarray, allowed: np.ndarray, floor: np.ndarray, m: int,
               out_c: np.ndarray, out_ok: np.ndarray, sampled: np.ndarray) -> None:
    n_cols = scores.shape[1]
    buf_v = np.empty(n_cols)
    buf_c = np.empty(n_cols, dtype=np.int64)
    top = np.empty(_DEEPEST)
    for r in range(scores.shape[0]):
        _row_top(scores[r], allowed[r], floor[r], m, buf_v, buf_c, out_c[r], out_ok[r], top, sampled[r])


def _block(scores: np.ndarray) -> np.ndarray:
    """``scores`` C-contiguous, float32 kept as it is (no copy), anything else as float64."""
    dtype = scores.dtype if scores.dtype in (np.float32, np.float64) else np.float64
    return np.ascontiguousarray(scores, dtype=dtype)


def dense_top(scores: np.ndarray, m: int, floor: np.ndarray, allowed: np.ndarray,
              sampled: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``top_n_dense(scores, m, floor, allowed)``, compiled (module docstring): ``cols`` (rows x m,
    int64, 0 on padding) and ``ok``. ``sampled``: step 1's sample of each row,
    ``scores[:, ::sample_step(n)]``, where the caller kept it while writing the block (the values
    are the same: only the strided read of the block is saved)."""
    n_rows, n_cols = scores.shape
    m = min(int(m), n_cols)
    if np.shape(allowed) != scores.shape:
        raise ValueError(f"dense_top: allowed has shape {np.shape(allowed)}, the scores {scores.shape}")
    if np.shape(floor) != (n_rows,):
        raise ValueError(f"dense_top: floor needs one value per row ({n_rows}), got shape {np.shape(floor)}")
    cols = np.zeros((n_rows, m), dtype=np.int64)
    ok = np.zeros((n_rows, m), dtype=bool)
    block = _block(scores)
    n_pos = len(range(0, n_cols, sample_step(n_cols)))
    if sampled is None:
        sampled = np.empty((n_rows, 0), dtype=block.dtype)
    elif np.shape(sampled) != (n_rows, n_pos):
        raise ValueError(f"dense_top: sampled has shape {np.shape(sampled)}, expected ({n_rows}, {n_pos})")
    if n_rows and m:
        _dense_top(block, np.ascontiguousarray(allowed, dtype=np.bool_), np.ascontiguousarray(floor, dtype=np.float64),
                   m, cols, ok, np.ascontiguousarray(sampled, dtype=block.dtype))
    return cols, ok


def range_top(scores: np.ndarray, m: int, allowed: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per row of a dense float64 or float32 block, in one visit while the row is in cache: ``high, low, floor``
    as :meth:`~recsys.models.base.Recommender.score_range` gives them (largest and smallest finite
    score, plain minimum) and ``cols, ok`` = :func:`dense_top` with that floor."""
    n_rows, n_cols = scores.shape
    m = min(int(m), n_cols)
    if np.shape(allowed) != scores.shape:
        raise ValueError(f"range_top: allowed has shape {np.shape(allowed)}, the scores {scores.shape}")
    high, low, floor = np.empty(n_rows), np.empty(n_rows), np.empty(n_rows)
    cols, ok = np.zeros((n_rows, m), dtype=np.int64), np.zeros((n_rows, m), dtype=bool)
    if n_rows:
        _range_top(_block(scores), np.ascontiguousarray(allowed, dtype=np.bool_),
                   m, high, low, floor, cols, ok)
    return high, low, floor, cols, ok
