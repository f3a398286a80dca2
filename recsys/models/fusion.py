"""Compiled (numba) steps of the hybrid's fusion (steps 4-7 of :mod:`recsys.models.hybrid`).

Every kernel returns exactly what the numpy expression it replaces returns (the
tests compare them on random blocks with ties, ``-inf``, NaN and constant rows):

* :func:`union` -- per row the sorted, de-duplicated union of the strategies'
  nominated columns, valid entries first, ``0`` on padding, width the longest
  union (at least 1): numpy's ``sort`` of the keyed columns, then one pass
  instead of a repeat mask, a stable ``argsort`` and two ``take_along_axis``.
* :func:`take_at` -- ``table[rowmap[r], c]`` widened to float64 (a float32
  block works too: the kernel is compiled per dtype), one pass row by row
  where ``r`` is constant along rows (the candidates' case); other index
  shapes and out-of-range indices are left to numpy (its IndexError).
* :func:`take_sparse` -- the same from a CSR matrix (the k-NN's sparse
  scores): each row scattered into one dense row the way ``toarray`` builds
  it (duplicates added in storage order), read at the candidates, cleared.
* :func:`fuse_minmax` -- per row and strategy ``z = (s - low) / span`` with
  ``low``/``high`` over the valid finite candidates (0 where the span is
  ``<= 1e-12`` or not finite, or the score is not finite, or the entry is
  padding), ``contrib_s = w_s z``, ``fused = ((c_0 + c_1) + c_2) + c_3``
  (numpy's ``contrib.sum(axis=0)`` adds the strategy planes in that order),
  ``-inf`` on padding. :func:`normalize` is the numpy rule (``"rank"`` stays
  there).
* :func:`top_positions` -- positions of the ``n`` best entries per row, ties
  to the lower position (candidates are column-sorted, so to the lower
  column), NaN after every number, -1 on invalid entries: the first ``n`` of
  ``np.argsort(-fused, kind="stable")``, by insertion into an ``n``-slot list
  instead of a full sort. :func:`capped_top` is the greedy category cap.
* :func:`assemble` -- the flat ``(row, rank)``-ordered entries of the picks:
  column, score, rank, the four contributions and the strongest strategy
  (``np.argmax``: first maximum, a NaN first of all).
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

__all__ = ["assemble", "capped_top", "fuse_minmax", "normalize", "take_at", "take_sparse", "top_positions", "union"]

_EPS = 1e-12


@numba.njit(cache=True, nogil=True)
def _compact(keyed: np.ndarray, n_products: int, cand: np.ndarray, valid: np.ndarray) -> int:
    """Distinct entries ``< n_products`` of each sorted row of ``keyed``, in order; the longest count."""
    width = 0
    for i in range(keyed.shape[0]):
        k = 0
        prev = -1
        for t in range(keyed.shape[1]):
            v = keyed[i, t]
            if v >= n_products:
                break
            if k == 0 or v != prev:
                cand[i, k] = v
                valid[i, k] = True
                k += 1
                prev = v
        width = max(width, k)
    return width


def union(tops: list[np.ndarray], oks: list[np.ndarray], n_products: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row the sorted union of the ``ok`` entries of the strategies' ``tops`` (rows x m_s column
    indices each): ``cand`` (rows x width, int64, 0 on padding) and ``valid``, valid entries first."""
    stacked = np.concatenate(tops, axis=1)
    keyed = np.where(np.concatenate(oks, axis=1), stacked, n_products).astype(np.int64, copy=False)
    keyed.sort(axis=1)
    cand = np.zeros(keyed.shape, dtype=np.int64)
    valid = np.zeros(keyed.shape, dtype=bool)
    width = max(_compact(keyed, n_products, cand, valid), 1) if keyed.size else 1
    if cand.shape[1] < width:  # no strategy nominated anything: one padding column
        return np.zeros((len(cand), width), dtype=np.int64), np.zeros((len(cand), width), dtype=bool)
    return np.ascontiguousarray(cand[:, :width]), np.ascontiguousarray(valid[:, :width])


@numba.njit(cache=True, nogil=True)
def _take_rowwise(table: np.ndarray, rowmap: np.ndarray, c: np.ndarray, out: np.ndarray) -> bool:
    """``out[i, k] = table[rowmap[i], c[i, k]]``; False (``out`` unfinished) on an index out of range."""
    n_rows, n_cols = table.shape
    for i in range(c.shape[0]):
        row = rowmap[i]
        if row < -n_rows or row >= n_rows:
            return False
        src = table[row if row >= 0 else row + n_rows]
        for k in range(c.shape[1]):
            b = c[i, k]
            if b < 0:
                if b < -n_cols:
                    return False
                b += n_cols
            elif b >= n_cols:
                return False
            out[i, k] = src[b]
    return True


def take_at(table: np.ndarray, r: np.ndarray, c: np.ndarray, rowmap: np.ndarray | None = None) -> np.ndarray:
    """``table[rowmap[r], c]`` (``table[r, c]`` without ``rowmap``) as float64, for ``r`` and ``c`` of
    any shape broadcasting together. A float32/float64 2-d table with 2-d indices whose ``r`` is
    constant along each row (a column vector, or broadcast: the fusion's candidates) is one compiled
    pass, row by row; anything else, or an index out of range, is numpy's (its IndexError)."""
    r, c, table = np.asarray(r), np.asarray(c), np.asarray(table)
    shape = np.broadcast_shapes(r.shape, c.shape)
    if (table.ndim == 2 and table.dtype in (np.float32, np.float64) and len(shape) == 2 and r.ndim == 2
            and r.shape[1] >= 1 and (r.shape[1] == 1 or r.strides[1] == 0) and r.dtype.kind in "iu" and c.dtype.kind in "iu"
            and (rowmap is None or np.asarray(rowmap).dtype.kind in "iu")):
        lead = np.broadcast_to(r[:, 0], shape[:1]).astype(np.int64)
        if rowmap is not None:
            rowmap = np.asarray(rowmap)
            if lead.size and (lead.min() < -len(rowmap) or lead.max() >= len(rowmap)):
                raise IndexError(f"take_at: row index out of range for {len(rowmap)} rows")
            lead = rowmap[lead].astype(np.int64, copy=False)
        out = np.empty(shape, dtype=np.float64)
        if _take_rowwise(table, lead, np.ascontiguousarray(np.broadcast_to(c, shape), dtype=np.int64), out):
            return out
    picked = table[r if rowmap is None else np.asarray(rowmap)[r], c]  # numpy's result, or its IndexError
    return np.asarray(picked, dtype=np.float64)


@numba.njit(cache=True, nogil=True)
def _take_csr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, cand: np.ndarray, row: np.ndarray,
              out: np.ndarray) -> None:
    """``out[i, k]`` = entry ``(i, cand[i, k])`` of the dense form of a CSR matrix: each row scattered
    into the zeroed ``row`` (``+=`` in storage order, as ``toarray`` adds duplicates), read, zeroed again."""
    for i in range(cand.shape[0]):
        lo, hi = indptr[i], indptr[i + 1]
        for p in range(lo, hi):
            row[indices[p]] += data[p]
        for k in range(cand.shape[1]):
            out[i, k] = row[cand[i, k]]
        for p in range(lo, hi):
            row[indices[p]] = 0


def take_sparse(matrix: sp.spmatrix | sp.sparray, cand: np.ndarray) -> np.ndarray:
    """``matrix.toarray()[i, cand[i, k]]`` per row ``i`` as float64, without the dense block: one
    dense row at a time (``cand`` rows x K, indices in range; otherwise numpy's indexing of the block)."""
    cand = np.asarray(cand)
    csr = matrix.tocsr()
    if (csr.dtype in (np.float32, np.float64) and cand.ndim == 2 and cand.shape[0] == csr.shape[0]
            and cand.dtype.kind in "iu" and (cand.size == 0 or (cand.min() >= 0 and cand.max() < csr.shape[1]))
            and (csr.nnz == 0 or (csr.indices.min() >= 0 and csr.indices.max() < csr.shape[1]))):
        out = np.empty(cand.shape)
        _take_csr(csr.indptr, csr.indices, csr.data, cand.astype(np.int64, copy=False),
                  np.zeros(csr.shape[1], dtype=csr.dtype), out)
        return out
    return take_at(csr.toarray(), np.arange(csr.shape[0])[:, None], cand)


@numba.njit(cache=True, nogil=True)
def _fuse_minmax(raw: np.ndarray, present: np.ndarray, weights: np.ndarray, valid: np.ndarray,
                 contrib: np.ndarray, fused: np.ndarray) -> None:
    n_strat, n_rows, width = raw.shape
    for i in range(n_rows):
        for s in range(n_strat):
            low, high, w = np.inf, -np.inf, weights[i, s]
            if present[s]:
                for k in range(width):
                    x = raw[s, i, k]
                    if valid[i, k] and np.isfinite(x):
                        low = min(low, x)
                        high = max(high, x)
            span = high - low
            ok = np.isfinite(span) and span > _EPS
            for k in range(width):
                c = 0.0
                if present[s]:
                    x = raw[s, i, k]
                    c = w * ((x - low) / span if ok and valid[i, k] and np.isfinite(x) else 0.0)
                contrib[s, i, k] = c
                fused[i, k] = c if s == 0 else fused[i, k] + c  # ((c_0 + c_1) + c_2) + c_3
        for k in range(width):
            if not valid[i, k]:
                fused[i, k] = -np.inf


def fuse_minmax(raw: np.ndarray, present: np.ndarray, weights: np.ndarray,
                valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 5 (minmax) and step 6 over the candidates: ``raw`` (strategies x rows x K float64 scores at
    the candidates; planes of absent strategies ignored), ``present`` (bool per strategy), ``weights``
    (rows x strategies) -> ``contrib`` (strategies x rows x K, 0 for absent ones) and ``fused``."""
    n_strat, n_rows, width = raw.shape
    if present.shape != (n_strat,) or weights.shape != (n_rows, n_strat) or valid.shape != (n_rows, width):
        raise ValueError(f"fuse_minmax: shapes raw {raw.shape}, present {present.shape}, weights {weights.shape}, "
                         f"valid {valid.shape} do not agree")
    contrib = np.empty(raw.shape)
    fused = np.empty((n_rows, width))
    _fuse_minmax(np.ascontiguousarray(raw, dtype=np.float64), np.ascontiguousarray(present, dtype=np.bool_),
                 np.ascontiguousarray(weights, dtype=np.float64), np.ascontiguousarray(valid, dtype=np.bool_),
                 contrib, fused)
    return contrib, fused


def normalize(scores: np.ndarray, mask: np.ndarray, method: str) -> np.ndarray:
    """Per-row normalisation of ``scores`` over the ``mask`` entries (0 elsewhere), numpy:
    ``"minmax"`` ``(s - low) / span`` over the finite masked entries (0 where the span is ``<= 1e-12``);
    ``"rank"`` ``(rank - 1) / (size - 1)``, average ranks, NaN ranked as ``-inf``. A ``-inf`` score
    (a component's own filter, e.g. the demographic price filter) normalises to 0."""
    if method == "minmax":
        finite = np.isfinite(scores)
        mask = mask & finite
        low = np.min(np.where(mask, scores, np.inf), axis=1, keepdims=True)
        high = np.max(np.where(mask, scores, -np.inf), axis=1, keepdims=True)
        span = high - low
        ok = np.isfinite(span) & (span > _EPS)
        z = (scores - np.where(ok, low, 0.0)) / np.where(ok, span, 1.0)
        return np.where(mask & ok, z, 0.0)
    scores = np.where(np.isnan(scores), -np.inf, scores)
    ranks = rankdata(np.where(mask, scores, np.nan), axis=1, nan_policy="omit")
    size = mask.sum(axis=1, keepdims=True)
    z = (ranks - 1.0) / np.maximum(size - 1, 1)
    return np.where(mask & (size > 1), np.nan_to_num(z, nan=0.0), 0.0)


@numba.njit(cache=True, nogil=True)
def _beats(v: float, u: float) -> bool:
    """``v`` ranks strictly before ``u`` in a stable descending sort (NaN after every number)."""
    return v > u or (u != u and v == v)


@numba.njit(cache=True, nogil=True)
def _top_positions(fused: np.ndarray, valid: np.ndarray, out: np.ndarray) -> None:
    n = out.shape[1]
    vals = np.empty(n)
    for i in range(fused.shape[0]):
        filled = 0
        for k in range(fused.shape[1]):
            v = fused[i, k]
            if filled == n and not _beats(v, vals[n - 1]):
                continue
            j = filled if filled < n else n - 1
            filled = min(filled + 1, n)
            while j > 0 and _beats(v, vals[j - 1]):
                vals[j] = vals[j - 1]
                out[i, j] = out[i, j - 1]
                j -= 1
            vals[j] = v
            out[i, j] = k
        for j in range(filled):
            if not valid[i, out[i, j]]:
                out[i, j] = -1


def top_positions(fused: np.ndarray, valid: np.ndarray, n: int) -> np.ndarray:
    """Positions of the top ``n`` entries per row (rows x n, -1 padding), best first, ties to the lower
    position, -1 where the entry is not valid: the first ``n`` of ``np.argsort(-fused, kind="stable")``
    with invalid entries masked (the fusion's invalid entries are ``-inf``, after every valid one)."""
    out = np.full((fused.shape[0], int(n)), -1, dtype=np.int64)
    if fused.size and n:
        _top_positions(np.ascontiguousarray(fused, dtype=np.float64), np.ascontiguousarray(valid, dtype=np.bool_),
                       out)
    return out


def capped_top(fused: np.ndarray, valid: np.ndarray, codes: np.ndarray, n: int, cap: int) -> np.ndarray:
    """:func:`top_positions` taken greedily down each row's ranking with at most ``cap`` entries per
    category (``codes``: the candidates' category codes, rows x K)."""
    order = np.argsort(-fused, axis=1, kind="stable")
    ok = np.take_along_axis(valid, order, axis=1)
    out = np.full((fused.shape[0], n), -1, dtype=np.int64)
    for i in range(fused.shape[0]):
        counts: dict[int, int] = {}
        k = 0
        for pos, is_ok in zip(order[i], ok[i], strict=True):
            if not is_ok:
                break
            code = int(codes[i, pos])
            if counts.get(code, 0) >= cap:
                continue
            counts[code] = counts.get(code, 0) + 1
            out[i, k] = pos
            k += 1
            if k == n:
                break
    return out


@numba.njit(cache=True, nogil=True)
def _assemble(pick: np.ndarray, cand: np.ndarray, fused: np.ndarray, contrib: np.ndarray, row: np.ndarray,
              col: np.ndarray, score: np.ndarray, rank: np.ndarray, parts: np.ndarray, strongest: np.ndarray) -> None:
    e = 0
    for i in range(pick.shape[0]):
        kept = 0
        for t in range(pick.shape[1]):
            pos = pick[i, t]
            if pos < 0:
                continue
            kept += 1
            row[e], col[e], score[e], rank[e] = i, cand[i, pos], fused[i, pos], kept
            best = 0
            for s in range(contrib.shape[0]):
                v = contrib[s, i, pos]
                parts[e, s] = v
                b = parts[e, best]
                if b == b and (v != v or v > b):
                    best = s
            strongest[e] = best
            e += 1


def assemble(pick: np.ndarray, cand: np.ndarray, fused: np.ndarray, contrib: np.ndarray) -> tuple[np.ndarray, ...]:
    """The entries ``pick >= 0`` in (row, rank) order: ``row, col, score, rank`` (1.. over the kept
    entries of the row), ``parts`` (entries x strategies) and ``strongest`` (argmax of ``parts``)."""
    size = int((pick >= 0).sum())
    row, col, rank = (np.empty(size, dtype=np.int64) for _ in range(3))
    score, strongest = np.empty(size), np.empty(size, dtype=np.int64)
    parts = np.empty((size, contrib.shape[0]))
    if size:
        _assemble(np.ascontiguousarray(pick, dtype=np.int64), np.ascontiguousarray(cand, dtype=np.int64),
                  np.ascontiguousarray(fused, dtype=np.float64), np.ascontiguousarray(contrib, dtype=np.float64),
                  row, col, score, rank, parts, strongest)
    return row, col, score, rank, parts, strongest
