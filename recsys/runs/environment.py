"""What a run ran on: interpreter, OS, CPU, BLAS, package versions, git state.

``environment_record(project_dir)`` returns a JSON-ready dict that ``recsys
run`` stores in ``metrics.json`` and prints in ``summary.md``, so a number in
a report can be traced to the machine and the code that made it.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["blas_info", "cpu_model", "environment_record", "git_state", "package_versions"]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def blas_info() -> list[dict[str, Any]]:
    """The BLAS/OpenMP libraries numpy and scipy loaded (threadpoolctl): API, implementation, version, threads."""
    import numpy  # noqa: F401  (loads numpy's BLAS)
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS)
    from threadpoolctl import threadpool_info

    keys = ("user_api", "internal_api", "version", "num_threads", "architecture", "filepath")
    return [{k: info.get(k) for k in keys if info.get(k) is not None} for info in threadpool_info()]


def package_versions() -> dict[str, str]:
    """Every installed distribution, ``name -> version`` (importlib.metadata), sorted by name."""
    versions: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            versions[name.lower().replace("_", "-")] = dist.version
    return dict(sorted(versions.items()))


def git_state(project_dir: Path) -> dict[str, Any]:
    """``commit`` (HEAD) and ``dirty`` (uncommitted changes to tracked or untracked files) of the
    git work tree holding ``project_dir``; ``None`` values when it is not one or git is missing."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=project_dir, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=normal")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def environment_record(project_dir: str | os.PathLike[str] = ".") -> dict[str, Any]:
    """Python, OS, CPU, BLAS, thread pins, packages and git state, as one JSON-ready dict."""
    return {
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "blas": blas_info(),
        "thread_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
        "git": git_state(Path(project_dir)),
        "packages": package_versions(),
    }
