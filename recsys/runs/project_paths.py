"""Where outputs go: the project folder is the working directory, never the package's location.

The package may be installed anywhere (a wheel in site-packages), so nothing finds
``reports/`` from its own ``__file__``. The reports root is, in order: an explicit
argument, the environment variable :data:`REPORTS_ENV`, or ``./reports`` under the
working directory (what ``recsys run``, the benchmarks and ``make`` use, all run
from the project folder).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REPORTS_ENV", "reports_root"]

REPORTS_ENV = "RECSYS_REPORTS"


def reports_root(explicit: str | Path | None = None) -> Path:
    """The reports root as an absolute path: ``explicit``, else ``$RECSYS_REPORTS``, else ``./reports``."""
    chosen = explicit if explicit is not None else os.environ.get(REPORTS_ENV) or Path.cwd() / "reports"
    return Path(chosen).resolve()
