"""The reports root comes from the working directory (or an argument / $RECSYS_REPORTS), not the package's location."""

from __future__ import annotations

import json

from recsys.runs.project_paths import REPORTS_ENV, reports_root
from recsys.runs.reporting import write_benchmark_manifest


def test_reports_root_is_explicit_then_env_then_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(REPORTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert reports_root() == (tmp_path / "reports").resolve()
    monkeypatch.setenv(REPORTS_ENV, str(tmp_path / "elsewhere"))
    assert reports_root() == (tmp_path / "elsewhere").resolve()
    assert reports_root(tmp_path / "given") == (tmp_path / "given").resolve()


def test_benchmark_manifest_goes_under_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(REPORTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    path = write_benchmark_manifest("bench_x", {"latency_p50_ms": (1.25, "measured by a test")})
    assert path == (tmp_path / "reports" / "benchmarks" / "bench_x.json").resolve()
    assert json.loads(path.read_text())["metrics"]["latency_p50_ms"] == {"value": 1.25,
                                                                        "description": "measured by a test"}
    monkeypatch.setenv(REPORTS_ENV, str(tmp_path / "env_reports"))
    assert write_benchmark_manifest("bench_y", {}).parent == (tmp_path / "env_reports" / "benchmarks").resolve()
    assert write_benchmark_manifest("bench_z", {}, tmp_path / "arg").parent == (tmp_path / "arg" / "benchmarks").resolve()
