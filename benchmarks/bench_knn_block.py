"""The item k-NN's part of the hybrid's blocks, numpy/scipy path against the compiled one (issue 23).

Usage (from the project root; the large profile cached in ``--data-dir``)::

    .venv/bin/python benchmarks/bench_knn_block.py --profile large --users 10000

One process, one thread. Fits the hybrid's four strategies as ``benchmarks/bench_batch.py`` does
(:class:`~recsys.models.knn.ItemKNN` at its default config), takes ``--users`` users with history
(seeded draw) in blocks of ``--block`` rows and runs, per block, what the hybrid asks of the k-NN
(``hybrid._neighbour_block`` and ``_fuse``; the hybrid's own eligibility mask):

* ``score``: the sparse scores of the block (``score_history``): scipy's ``csr_matmat``
  (:func:`~recsys.models.kernels.sparse_product`) against :func:`~recsys.models.knn_scoring.block_product`;
* ``range+top``: the row ranges and the top ``--m`` eligible candidates above the floor (the
  hybrid's mask: tier rules, purchases excluded; copied right before the step, as fresh as the
  hybrid's): numpy (``reduceat``, ``top_n_positive``) against one compiled visit
  (:func:`~recsys.models.knn_scoring.range_top`);
* ``at cand``: the scores at a candidate matrix (the k-NN's top plus ``--extra`` other columns a
  row, sorted): ``hint.toarray()[r, cand]`` against :func:`~recsys.models.knn_scoring.values_at`
  (the k-NN's ``scores_at``; the hybrid itself reads the sparse block with the same scatter,
  :func:`~recsys.models.fusion.take_sparse`).

The two paths alternate, ``--repeats`` times; the best total of each step is printed, and every
block's results are checked equal (scores bit for bit, ranges, candidates, values). Then the whole
hybrid (``HybridRecommender.recommend(users, 10)``, ``--hybrid-users`` users) with the k-NN's
compiled block path off and on, alternating (CPU seconds of this process: other processes on the
machine count less), its frames checked equal (and to ``--ref``, a pickled frame, if given).
"""

from __future__ import annotations

import argparse
import os
import time

for _key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_key, "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import recsys.models.knn as knn_module  # noqa: E402
from recsys.data import load_or_generate  # noqa: E402
from recsys.interactions import Interactions  # noqa: E402
from recsys.models import knn_kernels, knn_scoring  # noqa: E402
from recsys.models.content import ContentRecommender  # noqa: E402
from recsys.models.demographic import DemographicRecommender  # noqa: E402
from recsys.models.hybrid import HybridRecommender  # noqa: E402
from recsys.models.kernels import sparse_product  # noqa: E402
from recsys.models.knn import ItemKNN, KNNConfig  # noqa: E402
from recsys.models.ranking import take_rows  # noqa: E402
from recsys.models.svd import PureSVD, SVDConfig  # noqa: E402

STEPS = ("score", "range+top", "at cand")


def _old(knn: ItemKNN, history: sp.csr_matrix, m: int, allowed: np.ndarray, cand: np.ndarray | None) -> tuple:
    """The numpy/scipy path, step by step: (results, seconds per step)."""
    t0 = time.perf_counter()
    hint = sparse_product(sp.csr_matrix(history, dtype=np.float32), knn.similarity_).tocsr()
    t1 = time.perf_counter()
    high, low, floor = knn._score_range_numpy(None, None, hint)
    cols, ok = knn._top_candidates_numpy(None, None, m, floor, allowed, hint)
    t2 = time.perf_counter()
    r = np.broadcast_to(np.arange(hint.shape[0])[:, None], cand.shape) if cand is not None else None
    values = hint.toarray()[r, cand].astype(np.float64) if cand is not None else None
    t3 = time.perf_counter()
    return (hint, high, low, floor, cols, ok, values), (t1 - t0, t2 - t1, t3 - t2)


def _new(knn: ItemKNN, history: sp.csr_matrix, m: int, allowed: np.ndarray, cand: np.ndarray | None) -> tuple:
    """The compiled path, step by step: (results, seconds per step)."""
    t0 = time.perf_counter()
    hint = knn_scoring.block_product(sp.csr_matrix(history, dtype=np.float32), knn.similarity_).tocsr()
    t1 = time.perf_counter()
    high, low, floor, cols, ok = knn_scoring.range_top(hint, m, allowed)
    t2 = time.perf_counter()
    r = np.broadcast_to(np.arange(hint.shape[0])[:, None], cand.shape) if cand is not None else None
    values = knn_scoring.values_at(hint, r, cand) if cand is not None else None
    t3 = time.perf_counter()
    return (hint, high, low, floor, cols, ok, values), (t1 - t0, t2 - t1, t3 - t2)


def _same(a: tuple, b: tuple) -> bool:
    ha, hb = a[0], b[0]
    if not (np.array_equal(ha.indptr, hb.indptr) and np.array_equal(ha.indices, hb.indices)
            and np.array_equal(ha.data.view(np.int32), hb.data.view(np.int32))):
        return False
    plain = all(np.array_equal(x, y) for x, y in zip(a[1:4], b[1:4], strict=True))
    ok = np.array_equal(a[5], b[5]) and np.array_equal(np.where(a[5], a[4], -1), np.where(b[5], b[4], -1))
    return plain and ok and (a[6] is None or np.array_equal(a[6], b[6]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="large")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--block", type=int, default=104)
    parser.add_argument("--m", type=int, default=100)
    parser.add_argument("--extra", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hybrid-users", type=int, default=20000)
    parser.add_argument("--hybrid-repeats", type=int, default=4)
    parser.add_argument("--ref", default=None, help="a pickled recommend(users, 10) frame to compare with")
    args = parser.parse_args()
    knn_kernels.warm_up()
    knn_scoring.warm_up()
    dataset = load_or_generate(profile=args.profile, seed=args.seed, data_dir=args.data_dir)
    inter = Interactions.from_dataset(dataset)
    knn = ItemKNN(KNNConfig()).fit(dataset, inter)
    parts = {"knn": knn, "svd": PureSVD(SVDConfig(random_state=42)).fit(dataset, inter),
             "content": ContentRecommender().fit(dataset, inter), "demographic": DemographicRecommender().fit(dataset, inter)}
    hybrid = HybridRecommender.from_fitted(parts, dataset.config.fusion)
    profiles = knn.profile_interactions().matrix
    rng = np.random.default_rng(args.seed)
    warm = np.flatnonzero(np.diff(inter.matrix.indptr) > 0)
    drawn = np.sort(rng.choice(warm, size=min(max(args.users, args.hybrid_users), len(warm)), replace=False))
    rows = drawn[: args.users]
    n_products = profiles.shape[1]
    blocks = []
    for start in range(0, len(rows), args.block):
        chunk = rows[start:start + args.block]
        allowed = hybrid._eligible(chunk, True)
        history = take_rows(profiles, chunk)
        first, _ = _old(knn, history, args.m, allowed, None)
        extra = rng.integers(0, n_products, size=(len(chunk), args.extra))
        cand = np.sort(np.concatenate([np.where(first[5], first[4], 0), extra], axis=1), axis=1)
        blocks.append((history, allowed, cand))
    totals = {name: np.full((args.repeats, len(STEPS)), np.inf) for name in ("old", "new")}
    for rep in range(args.repeats):
        for name, fn in (("old", _old), ("new", _new)) if rep % 2 == 0 else (("new", _new), ("old", _old)):
            totals[name][rep] = 0.0
            for history, allowed, cand in blocks:
                # a fresh mask, as the hybrid's (built right before its strategies score the block)
                totals[name][rep] += fn(knn, history, args.m, allowed.copy(), cand)[1]
    equal = all(_same(_old(knn, h, args.m, a, c)[0], _new(knn, h, args.m, a, c)[0]) for h, a, c in blocks)
    print(f"{args.profile}: {len(rows)} users in {len(blocks)} blocks of {args.block}, m={args.m}, "
          f"{args.extra} extra candidates a row; best of {args.repeats} (s)")
    for name in ("old", "new"):
        best = totals[name][np.argmin(totals[name].sum(axis=1))]
        print(f"  {name}: " + "  ".join(f"{s} {t:.3f}" for s, t in zip(STEPS, best, strict=True))
              + f"  total {best.sum():.3f}")
    print(f"  identical results in every block: {equal}")
    _hybrid(hybrid, list(inter.user_ids[drawn[: args.hybrid_users]]), args.hybrid_repeats, args.ref)


def _hybrid(hybrid: HybridRecommender, users: list[str], repeats: int, ref: str | None) -> None:
    """The hybrid's top-10 throughput with the compiled k-NN block path off and on, alternating."""
    compiled = knn_module._scoring_kernels
    modes = {"off": lambda: None, "on": compiled}
    speed: dict[str, list[float]] = {"off": [], "on": []}
    frames = {}
    hybrid.recommend(users[:500], 10)
    try:
        for rep in range(repeats):
            for name in ("off", "on") if rep % 2 == 0 else ("on", "off"):
                knn_module._scoring_kernels = modes[name]
                start = time.process_time()
                frames[name] = hybrid.recommend(users, 10)
                speed[name].append(len(users) / (time.process_time() - start))
    finally:
        knn_module._scoring_kernels = compiled
    print(f"hybrid recommend({len(users)} users, 10), block {hybrid.block_users()}, {repeats} runs each, users/s "
          "(CPU time):")
    for name, label in (("off", "k-NN numpy/scipy path"), ("on", "k-NN compiled path")):
        print(f"  {label}: median {np.median(speed[name]):,.0f}  best {max(speed[name]):,.0f}")
    print(f"  frames equal: {frames['off'].equals(frames['on'])}", end="")
    if ref is not None:
        import pandas as pd

        print(f"; equal to {ref}: {frames['on'].equals(pd.read_pickle(ref))}", end="")
    print()


if __name__ == "__main__":
    main()
