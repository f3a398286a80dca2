"""Speed kernels benchmark (:mod:`recsys.models.kernels`): each kernel against the plain scipy/numpy
expression it replaces, on the item-item neighbours of a profile's data set.

Usage (from the project root)::

    .venv/bin/python benchmarks/bench_kernels.py --profile large
    .venv/bin/python benchmarks/bench_kernels.py --profile ci --users 200

Measured in process, one thread, after a warm-up (``recsys.runs.benchmarking.latencies_ms``):

* ``sparse_product(X_block, W)`` against ``(X_block @ W).tocsr()`` for blocks of
  ``--block`` user profiles (float32): the k-NN's batch scoring, median wall-clock and
  process-CPU time of ``--repeats`` (on a shared machine the CPU time is the fairer figure);
* ``history_scores(W, items, weights)`` against the sparse path it short-cuts
  (a one-row CSR times ``W``, densified) for ``--users`` random users with history:
  the real-time request path, p50/p95/p99/max per user;
* ``cosine_topk`` of the item k-NN fit (the fitted model's weighted matrix, ``k`` of
  ``KNNConfig()``): the compiled kernels (:mod:`recsys.models.knn_kernels`; symmetric,
  and the general one the user k-NN's recomputation runs) against the scipy reference
  path, process-CPU seconds of each of ``--fit-repeats`` alternating runs (after the
  kernels' one-time compilation or cache load, printed apart).

Every timed output is checked equal to the plain one before a figure is printed.
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
from recsys.models import knn_kernels  # noqa: E402
from recsys.models.kernels import history_scores, sparse_product  # noqa: E402
from recsys.models.knn import ItemKNN, KNNConfig, cosine_topk  # noqa: E402
from recsys.runs.benchmarking import latencies_ms, latency_line  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="large")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--block", type=int, default=4000, help="users per batch-scoring block")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--users", type=int, default=1000, help="single-user requests timed")
    parser.add_argument("--fit-repeats", type=int, default=3, help="alternating runs of each cosine_topk path")
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args()

    dataset = load_or_generate(profile=args.profile, seed=args.seed, data_dir=args.data_dir)
    start = time.perf_counter()
    knn_kernels.warm_up()  # numba compiles the fit's kernels once per machine, then loads them from its cache
    warm_up_s = time.perf_counter() - start
    model = ItemKNN(KNNConfig()).fit(dataset)
    similarity = model.similarity_
    profiles = sp.csr_matrix(model.profile_interactions().matrix, dtype=np.float32)
    print(f"profile {args.profile}: {profiles.shape[0]:,} users x {profiles.shape[1]:,} products, "
          f"{similarity.nnz:,} neighbour entries")

    block = profiles[: args.block]
    fast = sparse_product(block, similarity)
    plain = (block @ similarity).tocsr()
    assert (fast != plain).nnz == 0, "sparse_product differs from scipy's product"
    runs = [block] * args.repeats
    fast = latencies_ms(lambda b: sparse_product(b, similarity), runs, warmup=1, cpu=True)
    plain = latencies_ms(lambda b: (b @ similarity).tocsr(), runs, warmup=1, cpu=True)
    for what in ("wall_ms", "cpu_ms"):
        fast_ms, plain_ms = np.median(getattr(fast, what)), np.median(getattr(plain, what))
        print(f"batch scoring, {block.shape[0]:,} users ({what[:-3]}, median of {args.repeats}): "
              f"sparse_product {fast_ms:.1f} ms, scipy {plain_ms:.1f} ms ({plain_ms / fast_ms:.2f}x)")

    rng = np.random.default_rng(args.seed)
    with_history = np.flatnonzero(np.diff(profiles.indptr) > 0)
    rows = rng.choice(with_history, size=min(args.users, len(with_history)), replace=False)
    histories = [(profiles.indices[profiles.indptr[r]:profiles.indptr[r + 1]],
                  profiles.data[profiles.indptr[r]:profiles.indptr[r + 1]]) for r in rows]

    def one_row(history: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        items, weights = history
        x = sp.csr_matrix((weights, items, np.array([0, len(items)])), shape=(1, profiles.shape[1]))
        return sparse_product(x, similarity).toarray().ravel()

    kernel = latencies_ms(lambda h: history_scores(similarity, *h), histories, warmup=10, keep_outputs=True)
    sparse = latencies_ms(one_row, histories, warmup=10, keep_outputs=True)
    for got, want in zip(kernel.outputs, sparse.outputs, strict=True):
        assert np.array_equal(got, want), "history_scores differs from the sparse product"
    print(latency_line("one user: history_scores", kernel.wall_ms))
    print(latency_line("one user: one-row sparse product", sparse.wall_ms))
    fit_paths(model, args.fit_repeats, warm_up_s)


def fit_paths(model: ItemKNN, repeats: int, warm_up_s: float) -> None:
    """``cosine_topk`` of the fit by the compiled kernels and by the scipy path, checked equal,
    then timed alternately (process-CPU seconds, one thread); the user-item product of a
    block of 2,000 users against all users (the general kernel) likewise."""
    items = model.profile_interactions().matrix.T.tocsr()
    k, own = model.config.k, np.arange(items.shape[0])
    print(f"cosine_topk: kernels compiled or loaded from numba's cache in {warm_up_s:.2f} s (once, at start)")
    users = model.profile_interactions().matrix
    cases = {"item-item fit (symmetric kernel)": (items, items, own),
             "2,000 users x all users (general kernel)": (users[:2000], users, np.arange(2000))}
    for name, (left, right, self_columns) in cases.items():
        outs = {m: cosine_topk(left, right, k, self_columns=self_columns, method=m) for m in ("compiled", "scipy")}
        a, b = outs["compiled"], outs["scipy"]
        assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices) \
            and a.data.tobytes() == b.data.tobytes(), f"cosine_topk: the compiled kernels differ from scipy ({name})"
        seconds: dict[str, list[float]] = {"compiled": [], "scipy": []}
        for _ in range(repeats):
            for method, runs in seconds.items():
                start = time.process_time()
                cosine_topk(left, right, k, self_columns=self_columns, method=method)
                runs.append(time.process_time() - start)
        best = {m: min(v) for m, v in seconds.items()}
        print(f"cosine_topk, {name}, k={k} (CPU s, best of {repeats}): compiled {best['compiled']:.2f} s, "
              f"scipy {best['scipy']:.2f} s ({best['scipy'] / best['compiled']:.2f}x); identical output")


if __name__ == "__main__":
    main()
