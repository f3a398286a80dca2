"""Compiled (numba) top-``m`` of a dense score block, the hybrid's candidate step.

:func:`dense_top` returns exactly what :func:`~recsys.models.ranking.top_n_dense`
returns with a ``floor`` and an ``allowed`` mask -- per row the ``m`` best
allowed entries strictly above the row's floor, best first, ties to the lower
column, ``ok`` False on padding -- in one pass over each row instead of
numpy's several full-block passes (mask, compare, compact, partition):

1. **bound.** ``s`` strided entries of the row (every ``n / s``-th column)
   that qualify (allowed, ``> floor``); the ``k``-th largest of them, ``b``,
   with ``k = ceil(2.5 m s / n)``, is at most the row's ``k``-th largest
   qualifying value, so at least ``k`` entries reach it (about ``2.5 m``
   expected). Fewer than ``k`` qualifying samples: ``b = -inf``.
2. **pass.** The qualifying entries ``>= b`` are collected in column order;
   if fewer than ``m`` came through, the pass is redone with ``b = -inf``
   (every qualifying entry), so no top-``m`` entry is ever missed.
3. **order.** A stable sort of the collected entries by descending score
   keeps the lower column first among ties; the first ``m`` are the answer.

NaN never qualifies (``x > floor`` is false), nor does anything when the
floor itself is NaN, as in numpy.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["dense_top", "range_top"]

#: strided samples per row for the bound of step 1
_SAMPLES = 512


@numba.njit(cache=True, nogil=True)
def _row_top(x: np.ndarray, ok_col: np.ndarray, floor: float, m: int, buf_v: np.ndarray,
             buf_c: np.ndarray, out_c: np.ndarray, out_ok: np.ndarray) -> None:
    n = x.shape[0]
    step = max(1, n // _SAMPLES)
    n_pos = (n + step - 1) // step
    samples = np.empty(n_pos)
    ns = 0
    for j in range(0, n, step):
        v = x[j]
        if ok_col[j] and v > floor:
            samples[ns] = v
            ns += 1
    k = max(1, -(-5 * m * n_pos // (2 * n)))
    bound = -np.inf
    if ns >= k:
        bound = np.partition(samples[:ns], ns - k)[ns - k]
    count = 0
    for _ in range(2):
        count = 0
        for j in range(n):
            v = x[j]
            if v >= bound and v > floor and ok_col[j]:
                buf_v[count] = v
                buf_c[count] = j
                count += 1
        if count >= m or bound == -np.inf:
            break
        bound = -np.inf
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
def _row_range(x: np.ndarray) -> tuple[float, float, float]:
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
def _range_top(scores: np.ndarray, allowed: np.ndarray, m: int, high: np.ndarray, low: np.ndarray,
               floor: np.ndarray, out_c: np.ndarray, out_ok: np.ndarray) -> None:
    n_cols = scores.shape[1]
    buf_v = np.empty(n_cols)
    buf_c = np.empty(n_cols, dtype=np.int64)
    for r in range(scores.shape[0]):
        high[r], low[r], floor[r] = _row_range(scores[r])
        if m > 0:
            _row_top(scores[r], allowed[r], floor[r], m, buf_v, buf_c, out_c[r], out_ok[r])


@numba.njit(cache=True, nogil=True)
def _dense_top(scores: np.ndarray, allowed: np.ndarray, floor: np.ndarray, m: int,
               out_c: np.ndarray, out_ok: np.ndarray) -> None:
    n_cols = scores.shape[1]
    buf_v = np.empty(n_cols)
    buf_c = np.empty(n_cols, dtype=np.int64)
    for r in range(scores.shape[0]):
        _row_top(scores[r], allowed[r], floor[r], m, buf_v, buf_c, out_c[r], out_ok[r])


def dense_top(scores: np.ndarray, m: int, floor: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``top_n_dense(scores, m, floor, allowed)``, compiled (module docstring): ``cols`` (rows x m,
    int64, 0 on padding) and ``ok``."""
    n_rows, n_cols = scores.shape
    m = min(int(m), n_cols)
    if np.shape(allowed) != scores.shape:
        raise ValueError(f"dense_top: allowed has shape {np.shape(allowed)}, the scores {scores.shape}")
    if np.shape(floor) != (n_rows,):
        raise ValueError(f"dense_top: floor needs one value per row ({n_rows}), got shape {np.shape(floor)}")
    cols = np.zeros((n_rows, m), dtype=np.int64)
    ok = np.zeros((n_rows, m), dtype=bool)
    if n_rows and m:
        _dense_top(np.ascontiguousarray(scores, dtype=np.float64), np.ascontiguousarray(allowed, dtype=np.bool_),
                   np.ascontiguousarray(floor, dtype=np.float64), m, cols, ok)
    return cols, ok


def range_top(scores: np.ndarray, m: int, allowed: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per row of a dense float64 block, in one visit while the row is in cache: ``high, low, floor``
    as :meth:`~recsys.models.base.Recommender.score_range` gives them (largest and smallest finite
    score, plain minimum) and ``cols, ok`` = :func:`dense_top` with that floor."""
    n_rows, n_cols = scores.shape
    m = min(int(m), n_cols)
    if np.shape(allowed) != scores.shape:
        raise ValueError(f"range_top: allowed has shape {np.shape(allowed)}, the scores {scores.shape}")
    high, low, floor = np.empty(n_rows), np.empty(n_rows), np.empty(n_rows)
    cols, ok = np.zeros((n_rows, m), dtype=np.int64), np.zeros((n_rows, m), dtype=bool)
    if n_rows:
        _range_top(np.ascontiguousarray(scores, dtype=np.float64), np.ascontiguousarray(allowed, dtype=np.bool_),
                   m, high, low, floor, cols, ok)
    return high, low, floor, cols, ok
