"""``engine.train`` (no tuning) in this process, timed and memory-sampled step by step (issue 23).

Usage (from the project root; ``benchmarks/bench_batch.py`` runs it as its train child)::

    .venv/bin/python benchmarks/train_steps.py --profile large --data-dir /work/data-cache

Prints one JSON object: ``seconds`` (wall time of ``RecommendationEngine(cfg).train(ds)``),
``peak_gib`` (the process's peak RSS, loading included: ``VmHWM``, not the
``ru_maxrss`` a forking parent inflates), ``data_gib`` (that peak
after loading), ``load_s``, and ``steps``: per step ``seconds`` and ``peak_gib`` (the highest RSS
sampled every 5 ms while the step ran). The steps are the engine's own calls, wrapped in place
(the code is not changed): ``interactions`` (the engine's build; the Stage 2 job's own is
``stage2.interactions``: a step called inside another is named ``<outer>.<step>``),
``realtime`` (its ``knn`` and ``demographic`` fits listed apart), ``content``, ``served_extras``
(EASE / learned fusion when served), ``deals_path``, the Stage 2 steps (``stage2.svd``,
``stage2.segments``, ``stage2.demand``, ``stage2.seasonality``), ``stage2.publish`` (writing and
reloading the artifact version: the job's time minus its steps), ``install`` (Stage 2-3 state),
and ``other`` (the rest of ``train``: lookups, the catalogue).
"""

from __future__ import annotations

import argparse
import bisect
import functools
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

for _key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_key, "1")

import psutil  # noqa: E402

from recsys.runs.benchmarking import peak_rss_gib  # noqa: E402

_GIB = 2**30


class StepRecorder:
    """Wall seconds and peak RSS per named step; RSS sampled by a daemon thread every ``interval`` s."""

    def __init__(self, interval: float = 0.005) -> None:
        self.process = psutil.Process()
        self.interval = interval
        self.steps: dict[str, dict[str, float]] = {}
        self.top_seconds = 0.0  # time inside outermost steps (nested ones are counted by their parent)
        self._stack: list[str] = []
        self._times: list[float] = []  # the sampler's (perf_counter, rss) pairs, appended in time order
        self._rss: list[int] = []
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while True:
            rss = self.process.memory_info().rss
            self._rss.append(rss)  # rss first: a reader never sees a time without its rss
            self._times.append(time.perf_counter())
            time.sleep(self.interval)

    def _peak_between(self, start: float, stop: float) -> int:
        """The highest RSS sampled in ``[start, stop]`` (and now)."""
        n = len(self._times)
        first = bisect.bisect_left(self._times, start, 0, n)
        return max([self.process.memory_info().rss, *self._rss[first:n]])

    def timed(self, inner: Callable[..., Any], name: str) -> Callable[..., Any]:
        """``inner`` timed and recorded as ``name`` (repeated calls add up; the peak is the highest of them)."""

        @functools.wraps(inner)
        def call(*args: Any, **kwargs: Any) -> Any:
            outer = self._stack[-1] if self._stack else None
            label = name if outer is None or name.startswith(f"{outer}.") else f"{outer}.{name}"  # nested: parent.name
            self._stack.append(label)
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                stop = time.perf_counter()
                self._stack.pop()
                self.top_seconds += stop - start if outer is None else 0.0
                step = self.steps.setdefault(label, {"seconds": 0.0, "peak_gib": 0.0})
                step["seconds"] += stop - start
                step["peak_gib"] = max(step["peak_gib"], self._peak_between(start, stop) / _GIB)

        return call

    def wrap(self, owner: Any, attribute: str, name: str) -> None:
        """Replace ``owner.attribute`` (a function, method or classmethod) by its :meth:`timed` version."""
        setattr(owner, attribute, self.timed(getattr(owner, attribute), name))


def instrument(recorder: StepRecorder) -> None:
    """Wrap the engine's train-time calls (see the module docstring)."""
    import recsys.serving.engine as engine
    import recsys.stage2.job as job
    from recsys.models.demographic import DemographicRecommender
    from recsys.models.knn import ItemKNN

    recorder.wrap(engine.Interactions, "from_dataset", "interactions")
    recorder.wrap(engine.RealtimeRecommender, "fit", "realtime")
    recorder.wrap(ItemKNN, "fit", "realtime.knn")
    recorder.wrap(DemographicRecommender, "fit", "realtime.demographic")
    recorder.wrap(engine.ContentRecommender, "fit", "content")
    recorder.wrap(engine, "fit_served_extras", "served_extras")
    recorder.wrap(engine.CandidateBuilder, "freeing_index", "deals_candidates")  # before the Stage 1 fits
    recorder.wrap(engine.RecommendationEngine, "_deals_path", "deals_path")
    recorder.wrap(engine.RecommendationEngine, "_run_batch", "stage2")
    recorder.wrap(engine.RecommendationEngine, "_install_stage2", "install")
    for name, step in list(job.STEPS.items()):  # the job looks its steps up in this table when it runs
        job.STEPS[name] = recorder.timed(step, f"stage2.{name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="large")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args()

    from recsys.data import load_or_generate
    from recsys.serving.engine import RecommendationEngine

    recorder = StepRecorder()
    start = time.perf_counter()
    dataset = load_or_generate(profile=args.profile, seed=args.seed, data_dir=args.data_dir)
    load_s = time.perf_counter() - start
    data_gib = peak_rss_gib()
    instrument(recorder)
    start = time.perf_counter()
    RecommendationEngine(dataset.config).train(dataset)
    seconds = time.perf_counter() - start
    steps = recorder.steps
    if "stage2" in steps:  # the job's own time beyond its steps: writing, hashing and reloading the version
        inner = sum(v["seconds"] for k, v in steps.items() if k.startswith("stage2."))
        steps["stage2.publish"] = {"seconds": steps["stage2"]["seconds"] - inner, "peak_gib": steps["stage2"]["peak_gib"]}
    steps["other"] = {"seconds": seconds - recorder.top_seconds, "peak_gib": float("nan")}
    print(json.dumps({
        "seconds": seconds, "load_s": load_s, "data_gib": data_gib,
        "peak_gib": peak_rss_gib(),
        "steps": {k: {"seconds": round(v["seconds"], 3), "peak_gib": round(v["peak_gib"], 3)} for k, v in steps.items()},
    }))


if __name__ == "__main__":
    main()
