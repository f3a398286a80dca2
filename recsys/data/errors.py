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


class DataFileError(DataValidationError):
    """An input file is unreadable or malformed; the message starts with its path
    (and names the lines, 1-based, where they are known)."""

    def __init__(self, path: str | os.PathLike[str], problem: str, lines: list[int] | None = None):
        self.path, self.lines = str(path), [int(n) for n in (lines or [])]
        self.frame, self.column, self.problem, self.count = self.path, None, problem, len(self.lines)
        where = self.path
        if self.lines:
            where += f", line{'s' if len(self.lines) > 1 else ''} {', '.join(map(str, self.lines))}"
        ValueError.__init__(self, f"{where}: {problem}")


def _examples(values: Any, limit: int = 3) -> str:
    if isinstance(values, pd.DataFrame):
        return "; ".join(f"row {i}: {dict(r)}" for i, r in values.head(limit).iterrows())
    if isinstance(values, pd.Series):
        return ", ".join(f"row {i}: {v!r}" for i, v in values.head(limit).items())
    return ", ".join(repr(v) for v in list(values)[:limit])
