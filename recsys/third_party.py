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

__all__ = ["import_quietly"]


def import_quietly(module: str) -> ModuleType:
    """``importlib.import_module(module)`` without tqdm's "IProgress not found" warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        return importlib.import_module(module)
