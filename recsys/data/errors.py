"""The errors of the data layer: both are ``ValueError`` subclasses.

:class:`DataValidationError` names the frame, column, number of bad rows and
examples; :class:`DataFileError` names the file (and line, when known) that
could not be read.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

__all__ = ["DataFileError", "DataValidationError"]


class DataValidationError(ValueError):
    """Input data breaks the schema; the message names frame, column, count and examples."""

    def __init__(self, frame: str, column: str | None, problem: str, count: int = 0, examples: Any = None):
        self.frame, self.column, self.problem, self.count = frame, column, problem, count
        where = f"{frame}.{column}" if column else frame
        message = f"{where}: {problem}"
        if count:
            message += f" ({count} row{'s' if count != 1 else ''}"
            if examples is not None and len(examples):
                message += f"; e.g. {_examples(examples)}"
            message += ")"
        super().__init__(message)


class DataFileError(ValueError):
    """An input file is unreadable or malformed; the message starts with its path
    (and names the line where one is known)."""

    def __init__(self, path: str | os.PathLike[str], problem: str, lines: list[int] | None = None):
        self.path, self.problem, self.lines = str(path), problem, list(lines or [])
        where = f"{self.path}" + (f", line{'s' if len(self.lines) > 1 else ''} "
                                  f"{', '.join(map(str, self.lines))}" if self.lines else "")
        super().__init__(f"{where}: {problem}")


def _examples(values: Any, limit: int = 3) -> str:
    if isinstance(values, pd.DataFrame):
        return "; ".join(f"row {i}: {dict(r)}" for i, r in values.head(limit).iterrows())
    if isinstance(values, pd.Series):
        return ", ".join(f"row {i}: {v!r}" for i, v in values.head(limit).items())
    return ", ".join(repr(v) for v in list(values)[:limit])
