"""argparse value types that refuse a bad value in one line (``recsys X: error: argument --out: ...``, exit 2)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = ["dataset_dir", "id_value", "in_range", "out_dir", "out_file", "writable_dir"]

T = TypeVar("T", int, float)


def in_range(kind: type[T], name: str, low: T, high: T) -> Callable[[str], T]:
    """A ``kind`` number in ``low..high``."""

    def parse(text: str) -> T:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is outside {low:g}..{high:g}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def id_value(name: str) -> Callable[[str], str]:
    """An id by the one id rule (:mod:`recsys.data.ids`)."""
    from recsys.data.ids import ID_RULE, is_valid_id

    def parse(text: str) -> str:
        if not is_valid_id(text):
            raise argparse.ArgumentTypeError(f"{text!r} is not an id: expected {ID_RULE}")
        return text

    return parse


def _creatable(path: Path) -> str | None:
    """Why a directory could not be created at ``path`` (None: it can)."""
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{parent} is not writable"
    return None


def dataset_dir(name: str) -> Callable[[str], str]:
    """An existing directory (a saved data set)."""

    def parse(text: str) -> str:
        path = Path(text)
        if not path.exists():
            raise argparse.ArgumentTypeError(f"directory {text} does not exist")
        if not path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is not a directory")
        return text

    return parse


def writable_dir(name: str) -> Callable[[str], str]:
    """A directory that exists and is writable, or that can be created."""

    def parse(text: str) -> str:
        path = Path(text)
        if path.exists():
            if not path.is_dir():
                raise argparse.ArgumentTypeError(f"{text} is not a directory")
            if not os.access(path, os.W_OK | os.X_OK):
                raise argparse.ArgumentTypeError(f"directory {text} is not writable")
            return text
        why = _creatable(path)
        if why:
            raise argparse.ArgumentTypeError(f"cannot create {text}: {why}")
        return text

    return parse


out_dir = writable_dir
"""An output directory: existing and writable, or creatable."""


def out_file(name: str) -> Callable[[str], str]:
    """An output file: not a directory, in a directory that exists or can be created."""

    def parse(text: str) -> str:
        path = Path(text)
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a directory; name a file")
        if path.exists() and not os.access(path, os.W_OK):
            raise argparse.ArgumentTypeError(f"{text} is not writable")
        why = None if path.absolute().parent.is_dir() and os.access(path.absolute().parent, os.W_OK) \
            else _creatable(path.absolute().parent / "x")
        if why:
            raise argparse.ArgumentTypeError(f"cannot write {text}: {why}")
        return text

    return parse
