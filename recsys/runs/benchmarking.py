"""The benchmarks' measuring helpers, in one place.

Used by every ``benchmarks/bench_*.py`` script (and meant for the notebooks'
latency tables); the figures they record go through
:func:`recsys.runs.reporting.write_benchmark_manifest`.

- :func:`peak_rss_mb` / :func:`peak_rss_gib`: the process's peak resident set
  size so far (``VmHWM`` on Linux, else ``ru_maxrss``) in MiB (printed as "MB"
  by the benchmarks) or GiB;
- :func:`latencies_ms`: wall-clock milliseconds (``perf_counter_ns``) of
  ``call(argument)`` for each argument, one call at a time, after optional
  warm-up calls; optionally process-CPU milliseconds (``process_time_ns``)
  and the calls' outputs;
- :func:`percentiles` and :func:`latency_line`: p50/p95/p99 (numpy's linear
  interpolation) and max of a latency sample.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Latencies", "latencies_ms", "latency_line", "peak_rss_gib", "peak_rss_mb", "percentiles"]


def _peak_rss_kib() -> int:
    """Peak resident set size of this process so far, in KiB: ``VmHWM`` of ``/proc/self/status`` on Linux.

    Not ``ru_maxrss`` there: Linux carries the peak of the process that forked (e.g. a benchmark
    holding data and models) across ``exec`` into a child's ``ru_maxrss``, while ``VmHWM`` belongs
    to the child's own address space. Elsewhere ``ru_maxrss`` (KiB on Linux and BSD).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return _peak_rss_kib() / 1024.0


def peak_rss_gib() -> float:
    """Peak resident set size of this process so far, in GiB."""
    return _peak_rss_kib() * 1024 / 2**30


@dataclass
class Latencies:
    """One sample: ``wall_ms[i]`` (and ``cpu_ms[i]``, ``outputs[i]`` when asked for) of the i-th call."""

    wall_ms: np.ndarray
    cpu_ms: np.ndarray | None = None
    outputs: list[Any] | None = field(default=None, repr=False)


def latencies_ms(
    call: Callable[[Any], Any],
    arguments: Iterable[Any],
    *,
    warmup: int = 0,
    cpu: bool = False,
    keep_outputs: bool = False,
) -> Latencies:
    """Time ``call(argument)`` for each argument, sequentially in this thread.

    The first ``warmup`` arguments are called once, untimed, before timing
    starts (and then timed with the rest). ``cpu``: also measure process CPU
    time; ``keep_outputs``: keep what each call returned (for checks)."""
    arguments = list(arguments)
    for argument in arguments[:warmup]:
        call(argument)
    wall = np.empty(len(arguments))
    cpu_ms = np.empty(len(arguments)) if cpu else None
    outputs: list[Any] | None = [] if keep_outputs else None
    for i, argument in enumerate(arguments):
        start = time.perf_counter_ns()
        start_cpu = time.process_time_ns() if cpu_ms is not None else 0
        out = call(argument)
        wall[i] = (time.perf_counter_ns() - start) / 1e6
        if cpu_ms is not None:
            cpu_ms[i] = (time.process_time_ns() - start_cpu) / 1e6
        if outputs is not None:
            outputs.append(out)
    return Latencies(wall, cpu_ms, outputs)


def percentiles(values: np.ndarray) -> dict[str, float]:
    """``p50, p95, p99`` (``np.percentile``, linear interpolation) and ``max`` of ``values``."""
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(np.max(values))}


def latency_line(label: str, values: np.ndarray) -> str:
    """One printed line: ``label  p50 ..  p95 ..  p99 ..  max .. ms`` (2 decimals)."""
    p = percentiles(values)
    return f"{label:<34} p50 {p['p50']:8.2f}  p95 {p['p95']:8.2f}  p99 {p['p99']:8.2f}  max {p['max']:8.2f} ms"
