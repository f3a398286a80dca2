"""POST /events side by side: another git revision's service against this checkout's, alternated.

Usage (from the project root)::

    .venv/bin/python benchmarks/bench_events_ab.py --ref main --per-request 1 --rounds 3 --duration 8

On a shared machine absolute requests/s follow the other load; what this
measures is the ratio of two servers run in turn under the same load. Each
round starts ``recsys serve`` (one worker, a fresh SQLite store, the thesis
model) first with the code of ``--ref`` (``git archive`` into a temporary
directory, run with ``python -S`` and that directory ahead of the venv's
site-packages, so the editable install of this checkout is not imported),
then with this checkout's, and drives each with the closed-loop clients of
``bench_events.py`` (a 1 s warm-up, then ``--duration`` seconds). Printed per
run and as medians: requests/s, events/s, and the server's CPU per request.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parent.parent


def _archive(ref: str, into: Path) -> Path:
    """The ``recsys`` package of ``ref`` under ``into``, and a Python wrapper that imports it first."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "recsys"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    wrapper = into / "python"
    site = sysconfig.get_paths()["purelib"]
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={into}:{site} exec {sys.executable} -S \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default="main", help="the git revision to compare with")
    parser.add_argument("--profile", default="thesis")
    parser.add_argument("--per-request", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args(argv)
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]
    from bench_events import NO_CLIENT_LIMIT, throughput
    from bench_service import ensure_model
    from service_processes import serve_process

    from recsys.data.dataset import Dataset
    from recsys.service.auth import add_key_main

    model = ensure_model(args.profile, 42, ROOT / "data" / "models" / args.profile)
    base = Dataset.load(model / "base")
    products = base.products["product_id"].tolist()
    when = (base.as_of + pd.Timedelta(hours=1)).isoformat()
    runs: dict[str, list[tuple[float, float]]] = {args.ref: [], "this checkout": []}
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        tmp = Path(tmp)
        (tmp / "ref").mkdir()
        pythons = {args.ref: str(_archive(args.ref, tmp / "ref")), "this checkout": sys.executable}
        token = add_key_main("bench-backend", True, tmp / "keys.json")
        own = sys.executable
        os.chdir(tmp)  # `python -m` puts the working directory first on sys.path: not a checkout
        try:
            for r in range(args.rounds):
                for name, python in pythons.items():
                    sys.executable = python  # serve_process starts `sys.executable -m recsys.cli serve`
                    with serve_process(model, tmp / "keys.json", extra=(
                            "--database", f"sqlite:///{tmp}/{r}-{len(runs[name])}-{name[:4]}.db", *NO_CLIENT_LIMIT)
                            ) as (url, process):
                        sys.executable = own
                        server = psutil.Process(process.pid)
                        throughput(url, token, products, args.per_request, 10, 1.0, when)  # warm-up
                        cpu = sum(server.cpu_times()[:2])
                        res = throughput(url, token, products, args.per_request, args.concurrency, args.duration, when)
                        cpu_ms = 1000 * (sum(server.cpu_times()[:2]) - cpu) / max(1, res["requests_per_s"]
                                                                                 * args.duration)
                    runs[name].append((res["requests_per_s"], cpu_ms))
                    print(f"round {r + 1}, {name}: {res['requests_per_s']:,.0f} req/s, {res['events_per_s']:,.0f} "
                          f"events/s, server CPU {cpu_ms:.3f} ms/request, errors {res['errors']}, load average "
                          f"{os.getloadavg()[0]:.2f}", flush=True)
        finally:
            sys.executable = own
            os.chdir(ROOT)
    for name, rows in runs.items():
        rps, cpu = pd.Series([x for x, _ in rows]), pd.Series([c for _, c in rows])
        print(f"{name}: median {rps.median():,.0f} req/s, median server CPU {cpu.median():.3f} ms/request "
              f"({args.per_request} event(s) per request, {len(rows)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
