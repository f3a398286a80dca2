"""The one set of benchmark helpers (issue 15): what they measure, and that no benchmark keeps its own copy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recsys.runs.benchmarking import latencies_ms, latency_line, peak_rss_gib, peak_rss_mb, percentiles

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
PACKAGE = Path(__file__).resolve().parent.parent / "recsys"


def test_latencies_ms_warms_up_then_times_every_argument_in_order() -> None:
    calls: list[int] = []
    sample = latencies_ms(lambda x: calls.append(x) or x * 2, [1, 2, 3], warmup=2, keep_outputs=True)
    assert calls == [1, 2, 1, 2, 3]  # two untimed warm-up calls, then all three timed
    assert sample.outputs == [2, 4, 6] and sample.cpu_ms is None
    assert sample.wall_ms.shape == (3,) and (sample.wall_ms >= 0).all()


def test_latencies_ms_measures_cpu_when_asked() -> None:
    def spin(n: int) -> int:
        return sum(range(n))

    sample = latencies_ms(spin, [200_000, 10], cpu=True)
    assert sample.outputs is None and sample.cpu_ms is not None and sample.cpu_ms.shape == (2,)
    assert sample.cpu_ms[0] > sample.cpu_ms[1] and sample.wall_ms[0] > sample.wall_ms[1]


def test_percentiles_and_line_use_numpy_percentiles() -> None:
    values = np.arange(1.0, 101.0)
    p = percentiles(values)
    assert p == {"p50": 50.5, "p95": float(np.percentile(values, 95)), "p99": float(np.percentile(values, 99)),
                 "max": 100.0}
    assert latency_line("x", values) == f"{'x':<34} p50    50.50  p95    95.05  p99    99.01  max   100.00 ms"


def test_peak_rss_in_two_units() -> None:
    mb, gib = peak_rss_mb(), peak_rss_gib()
    assert mb > 10 and abs(gib * 1024 - mb) <= 1.0  # the second reading may have grown a little


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM is Linux's")
def test_a_child_process_does_not_report_its_forking_parents_peak() -> None:
    """Linux carries a forking parent's peak into the child's ``ru_maxrss`` across exec;
    ``peak_rss_mb`` reads the child's own ``VmHWM`` (train_steps.py runs as such a child)."""
    ballast = np.ones(400 * 2**20 // 8)  # 400 MiB resident in this (parent) process
    assert peak_rss_mb() > 400
    child = subprocess.run([sys.executable, "-c", "from recsys.runs.benchmarking import peak_rss_mb; print(peak_rss_mb())"],
                           check=True, capture_output=True, text=True)
    assert float(child.stdout) < 300, child.stdout  # the child itself holds far less than the parent's 400 MiB
    del ballast


def test_no_benchmark_or_module_defines_its_own_timing_or_memory_helper() -> None:
    shared = {"latencies_ms", "peak_rss_mb", "peak_rss_gib", "percentiles", "latency_line"}
    scripts = sorted(BENCHMARKS.glob("*.py")) + [p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "benchmarking.py"]
    for script in scripts:
        defined = {node.name for node in ast.walk(ast.parse(script.read_text())) if isinstance(node, ast.FunctionDef)}
        assert not defined & shared, f"{script.name} redefines {sorted(defined & shared)}; use recsys.runs.benchmarking"
