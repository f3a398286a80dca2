"""Imports of third-party modules whose import warns in a notebook kernel.

``implicit`` and ``optuna`` import ``tqdm.auto``, which in a Jupyter kernel
without ipywidgets warns "IProgress not found" on stderr, naming the virtual
environment's absolute path: a stored notebook output would then depend on
where the project lives. recsys never shows their progress bars
(``show_progress=False``, no Optuna progress bar), so that one warning, and
nothing else, is dropped here.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

__all__ = ["EXTRA_OF", "import_quietly", "missing_extra"]


def import_quietly(module: str) -> ModuleType:
    """``importlib.import_module(module)`` without tqdm's "IProgress not found" warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        return importlib.import_module(module)


#: optional packages (import name) -> the extra of ``pyproject.toml`` that installs them
EXTRA_OF: dict[str, str] = {
    "optuna": "research", "surprise": "research", "matplotlib": "research", "seaborn": "research",
    "papermill": "notebooks", "nbformat": "notebooks", "nbclient": "notebooks", "IPython": "notebooks",
    "matplotlib_inline": "notebooks", "ipykernel": "notebooks",
    "fastapi": "service", "uvicorn": "service", "pydantic": "service", "prometheus_client": "service",
    "redis": "service", "httpx": "service", "orjson": "service", "starlette": "service",
    "fastapi_offline": "service",
    "pyspark": "spark",
}


def missing_extra(error: ImportError) -> str | None:
    """One line saying which extra installs the package ``error`` found missing, or None when
    the missing module is not one of an extra's (:data:`EXTRA_OF`)."""
    name = (getattr(error, "name", None) or "").split(".")[0]
    extra = EXTRA_OF.get(name)
    if extra is None:
        return None
    return (f"{name} is not installed: it comes with the [{extra}] extra "
            f"(pip install -e '.[{extra}]', or `make venv` for everything)")
