"""The hybrid's fusion step compiled (``recsys.models.fusion``) against its numpy formulation (issue 23).

Usage (from the project root; one thread)::

    .venv/bin/python benchmarks/bench_fusion.py --profile large --data-dir data --users 10000

The four strategies are fitted once; for ``--users`` users with history, in the hybrid's blocks
(``block_users``), each block's nominations (``HybridRecommender._nominate``: scoring, ranges, the
strategies' top-``m``) are computed once and then handed to both fusion steps, alternating which runs
first: union of the candidates, raw scores at the candidates, minmax normalisation, weighted sum,
top-10 and the flat entries -- the numpy code the hybrid used before the kernels (below, as it was:
sort + repeat mask + stable argsort for the union, fancy indexing, ``np.where`` normalisation,
``contrib.sum(axis=0)``, ``np.argsort(-fused)``) against ``_combine`` + ``_top`` +
:func:`recsys.models.fusion.assemble`. Printed: wall and CPU seconds of each (CPU time is less
disturbed by other processes on the machine), whether every output is bit-identical, and the
whole ``HybridRecommender.recommend`` throughput (users/s, best of ``--repeats``) with ``uptime``.
"""

from __future__ import annotations

import argparse
import os
import time

for _key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_key, "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from recsys.data import load_or_generate  # noqa: E402
from recsys.interactions import Interactions  # noqa: E402
from recsys.models import fusion  # noqa: E402
from recsys.models.hybrid import STRATEGIES, HybridRecommender  # noqa: E402


def numpy_step(hybrid: HybridRecommender, rows: np.ndarray, blocks: dict, hints: dict, weights: np.ndarray,
               tops: list, oks: list, n_products: int, n: int) -> tuple[tuple, dict]:
    """The fusion step as numpy computed it before the kernels (minmax, no category cap)."""
    keyed = np.where(np.concatenate(oks, axis=1), np.concatenate(tops, axis=1), n_products)
    keyed.sort(axis=1)
    repeat = np.zeros_like(keyed, dtype=bool)
    repeat[:, 1:] = keyed[:, 1:] == keyed[:, :-1]
    valid = (keyed < n_products) & ~repeat
    width = max(int(valid.sum(axis=1).max(initial=0)), 1)
    order = np.argsort(~valid, axis=1, kind="stable")[:, :width]
    cand = np.take_along_axis(np.where(valid, keyed, 0), order, axis=1)
    valid = np.take_along_axis(valid, order, axis=1)
    r = np.broadcast_to(np.arange(len(rows))[:, None], cand.shape)
    contrib, at = np.zeros((len(STRATEGIES), *cand.shape)), {}
    for j, s in enumerate(STRATEGIES):
        comp = hybrid.components_[s]
        if blocks[s] is None and sp.issparse(hints[s]):
            raw = hints[s].toarray()[r, cand].astype(np.float64)
        elif s == "demographic":
            segments = np.asarray(hints[s]) if hints[s] is not None else comp.segments_of_rows(rows)
            raw = comp.segment_scores_[segments[r], cand]
        else:
            raw = blocks[s][r, cand]
        at[s] = raw
        contrib[j] = weights[:, j][:, None] * fusion.normalize(raw, valid, "minmax")
    fused = np.where(valid, contrib.sum(axis=0), -np.inf)
    order = np.argsort(-fused, axis=1, kind="stable")
    ok = np.take_along_axis(valid, order, axis=1)
    k = min(n, order.shape[1])
    pick = np.pad(np.where(ok[:, :k], order[:, :k], -1), ((0, 0), (0, n - k)), constant_values=-1)
    keep = pick >= 0
    rr = np.repeat(np.arange(len(rows)), n).reshape(pick.shape)[keep]
    pos = pick[keep]
    parts = contrib[:, rr, pos]
    strongest = np.argmax(parts, axis=0) if parts.size else np.zeros(0, dtype=np.int64)
    return (rr, cand[rr, pos], fused[rr, pos], np.cumsum(keep, axis=1)[keep].astype(np.int64), parts.T.copy(),
            strongest), at


def compiled_step(hybrid: HybridRecommender, rows: np.ndarray, blocks: dict, hints: dict, weights: np.ndarray,
                  tops: list, oks: list, n_products: int, n: int) -> tuple[tuple, dict]:
    """The hybrid's own step: :meth:`HybridRecommender._combine`, ``_top``, :func:`fusion.assemble`."""
    cand, valid, fused, contrib, scores, _ = hybrid._combine(rows, blocks, hints, weights, tops, oks, n_products)
    return fusion.assemble(hybrid._top(cand, valid, fused, n), cand, fused, contrib), scores.at_candidates


def fit_hybrid(profile: str, seed: int, data_dir: str) -> tuple[HybridRecommender, Interactions]:
    from recsys.models.content import ContentRecommender
    from recsys.models.demographic import DemographicRecommender
    from recsys.models.knn import ItemKNN, KNNConfig
    from recsys.models.svd import PureSVD, SVDConfig

    ds = load_or_generate(profile=profile, seed=seed, data_dir=data_dir)
    inter = Interactions.from_dataset(ds)
    parts = {"knn": ItemKNN(KNNConfig()).fit(ds, inter), "svd": PureSVD(SVDConfig(random_state=42)).fit(ds, inter),
             "content": ContentRecommender().fit(ds, inter), "demographic": DemographicRecommender().fit(ds, inter)}
    return HybridRecommender.from_fitted(parts, ds.config.fusion), inter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="large")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    hybrid, inter = fit_hybrid(args.profile, args.seed, args.data_dir)
    warm = np.flatnonzero(np.diff(inter.matrix.indptr) > 0)
    rows = np.sort(np.random.default_rng(args.seed).choice(warm, size=min(args.users, len(warm)), replace=False))
    users, n, block = list(inter.user_ids[rows]), 10, hybrid.block_users()
    hybrid.recommend(users[:300], n)  # kernels compiled or loaded from numba's cache
    spent = {"numpy": [0.0, 0.0], "compiled": [0.0, 0.0]}
    same = True
    for i, start in enumerate(range(0, len(rows), block)):
        chunk = rows[start:start + block]
        nominated = hybrid._nominate(chunk, n, True)
        out = {}
        for name in ("numpy", "compiled") if i % 2 == 0 else ("compiled", "numpy"):
            wall, cpu = time.perf_counter(), time.process_time()
            out[name] = (numpy_step if name == "numpy" else compiled_step)(hybrid, chunk, *nominated, n)
            spent[name][0] += time.perf_counter() - wall
            spent[name][1] += time.process_time() - cpu
        (a, at_a), (b, at_b) = out["numpy"], out["compiled"]
        same &= all(np.array_equal(x, y) and x.dtype == y.dtype for x, y in zip(a, b, strict=True))
        same &= all(np.array_equal(at_a[s], at_b[s]) for s in at_a)
    print(f"{args.profile}: fusion step for {len(rows):,} users ({block}-user blocks, top-{n}):")
    for name, (wall, cpu) in spent.items():
        print(f"  {name:9s} {wall:.3f} s wall  {cpu:.3f} s cpu  ({cpu / len(rows) * 1e6:.1f} us cpu per user)")
    print(f"  identical outputs (entries, scores, contributions, strongest, scores at candidates): {same}")
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        hybrid.recommend(users, n)
        times.append(time.perf_counter() - start)
    print(f"hybrid recommend: {len(users) / min(times):,.0f} users/s best of {args.repeats} "
          f"(runs {', '.join(f'{t:.2f}' for t in times)} s)")
    print("uptime:", os.popen("uptime").read().strip())


if __name__ == "__main__":
    main()
