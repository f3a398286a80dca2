"""Deal generation: audit every user of a profile, and measure throughput and latency.

Usage (from the project root)::

    .venv/bin/python benchmarks/bench_deals.py --profile thesis
    .venv/bin/python benchmarks/bench_deals.py --profile ci --single 200

Steps, in process, one thread (BLAS pinned):

* fit the Stage 2 inputs (PureSVD affinity, demand scores, content similarity
  to viewed; :func:`recsys.deals.study.fit_deal_inputs`);
* the batch path: candidate blocks (Stage 2 scoring, similarity to viewed)
  and ``DealGenerator.generate_many`` for every user, chunk by chunk, with
  price sensitivity off (the seed) and on; users per second;
* the audit (:func:`recsys.deals.audit.audit_deals`) of both runs: 3..7 deals
  per user or fewer with a reason, discounts within bounds, deal price >=
  margin floor, expiry within 1..7 days, the seed's keys, one deal per
  product, nothing out of stock;
* the per-request path for ``--single`` users (their Stage 2 arrays
  precomputed), p50/p95/p99/max latency: the engine's (a one-user
  ``build_block`` + ``generate``) and the candidate-frame one (``build`` +
  ``generate``, the documented contract).

The figures are printed and recorded in
``reports/benchmarks/bench_deals_<profile>.json``
(:func:`recsys.runs.reporting.write_benchmark_manifest`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

for _key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_key, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from recsys.data import load_or_generate  # noqa: E402
from recsys.deals import DealGenerator  # noqa: E402
from recsys.deals.audit import all_passed, audit_deals  # noqa: E402
from recsys.deals.study import fit_deal_inputs  # noqa: E402
from recsys.runs.benchmarking import latencies_ms  # noqa: E402
from recsys.runs.reporting import pin_threads, write_benchmark_manifest  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--single", type=int, default=200, help="users timed on the per-request path")
    args = parser.parse_args(argv)
    pin_threads()

    t = time.perf_counter()
    dataset = load_or_generate(profile=args.profile, seed=args.seed, data_dir=args.data_dir)
    print(f"profile {args.profile}: {dataset.n_users} users, {dataset.n_products} products, "
          f"{len(dataset.events)} events (load {time.perf_counter() - t:.2f} s)")
    t = time.perf_counter()
    inputs = fit_deal_inputs(dataset)
    print(f"Stage 2 inputs (PureSVD, demand model, content): {time.perf_counter() - t:.2f} s")

    how = f"benchmarks/bench_deals.py --profile {args.profile} (seed {args.seed}), one thread"
    metrics: dict[str, tuple[object, str]] = {}
    ok = True
    for use_ps in (False, True):
        gen = DealGenerator(dataset.config, rate_limiter=False, use_price_sensitivity=use_ps)
        t = time.perf_counter()
        batch = inputs.generate(gen)  # candidate blocks (Stage 2 scoring) + generate_many, chunk by chunk
        seconds = time.perf_counter() - t
        audit = audit_deals(batch, dataset.config.deals)
        n = batch.summary["n_deals"]
        print(f"\nprice sensitivity {'on' if use_ps else 'off'}: {len(n)} users in {seconds:.2f} s "
              f"({len(n) / seconds:.0f} users/s); deals per user {n.min()}..{n.max()}, mean {n.mean():.3f}; "
              f"users short of {dataset.config.deals.min_deals} (with a reason): {int(batch.summary['shortfall_reason'].notna().sum())}; "
              f"mean discount {batch.deals['discount_percentage'].mean():.3f}%")
        print(audit.to_string(index=False))
        ok &= all_passed(audit)
        tag = "with_price_sensitivity" if use_ps else "seed_formula"
        users = f"all {len(n)} users"
        metrics[f"throughput_users_per_s/deals_batch_{tag}"] = (
            len(n) / seconds, f"generate_many incl. candidate blocks, {users}; {how}")
        metrics[f"deals_per_user_mean/{tag}"] = (float(n.mean()), f"mean deals per user, {users}; {how}")
        metrics[f"discount_percentage_mean/{tag}"] = (
            float(batch.deals["discount_percentage"].mean()), f"mean discount of the deals, {users}; {how}")
        metrics[f"audit_all_rules_hold/{tag}"] = (bool(all_passed(audit)), f"audit_deals over {users}; {how}")

    gen = DealGenerator(dataset.config, rate_limiter=False)
    rng = np.random.default_rng(0)
    rows = rng.choice(dataset.n_users, size=min(args.single, dataset.n_users), replace=False)
    records = inputs.users.to_dict("records")
    block, demand = inputs.block(rows), inputs.demand.demand_scores_
    paths = {
        "block": lambda user_id, i: inputs.builder.build_block(
            [user_id], block.affinity[i], demand, block.similarity_to_viewed[i]),
        "frame": lambda user_id, i: inputs.builder.build(
            user_id, block.affinity[i], demand, block.similarity_to_viewed[i]),
    }
    print()
    for path, build in paths.items():
        def request(i: int, build=build) -> object:
            record = records[rows[i]]
            return gen.generate(record, build(record["user_id"], i), dataset.as_of).to_records()

        ms = pd.Series(latencies_ms(request, range(len(rows))).wall_ms)
        label = "build_block + generate (the engine's)" if path == "block" else "build (frame) + generate"
        print(f"per-request {label}, {len(ms)} users: p50 {ms.quantile(0.5):.2f} ms, "
              f"p95 {ms.quantile(0.95):.2f} ms, p99 {ms.quantile(0.99):.2f} ms, max {ms.max():.2f} ms")
        for q in (50, 95, 99):
            metrics[f"latency_ms_p{q}/deals_request_{path}"] = (
                float(ms.quantile(q / 100)), f"{label} + to_records, {len(ms)} random users, sequential; {how}")
    path = write_benchmark_manifest(f"bench_deals_{args.profile}", metrics)
    print(f"figures recorded in {path}")
    print("\nALL RULES HOLD" if ok else "\nRULE VIOLATIONS FOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
