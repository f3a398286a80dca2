"""Plain JSON for answers and saved configuration: one home for both jobs.

* :func:`jsonable` turns an answer into plain Python (``dict``, ``list``,
  ``str``, ``int``, ``float``, ``bool``, ``None``): numpy scalars and arrays
  unwrapped, non-finite floats to ``None``, timestamps to ISO 8601 UTC
  (:func:`iso_utc`), optionally rounded for display.
* :func:`config_to_json` / :func:`config_from_json` write a frozen
  configuration dataclass (nested dataclasses, tuples, mappings) as JSON and
  rebuild it through its constructor (so every ``__post_init__`` check runs
  again on load); :func:`config_roundtrip` proves a value survives the trip.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["config_from_json", "config_roundtrip", "config_to_json", "iso_utc", "jsonable"]


def iso_utc(ts: Any) -> str:
    """``2024-01-15T10:30:00Z`` (naive timestamps are taken as UTC; seconds truncated)."""
    ts = pd.Timestamp(ts)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(None)  # to UTC, zone dropped
    # formatted from the fields: several times faster than strftime, on every request's timestamp
    return f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}T{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}Z"


def jsonable(value: Any, digits: int | None = None) -> Any:
    """Plain Python for JSON: numpy scalars unwrapped, NaN/inf -> None, tuples
    and arrays -> lists, timestamps -> :func:`iso_utc`; floats rounded to
    ``digits`` if given (for display only)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, digits) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v, digits) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return round(value, digits) if digits is not None else value
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return iso_utc(value)
    return value


def config_to_json(value: Any) -> Any:
    """A configuration value as JSON-ready data: dataclasses as dicts of
    their fields, tuples as lists, mappings as dicts (keys must be str)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: config_to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): config_to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [config_to_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot write a {type(value).__name__} as configuration JSON: {value!r}")


def _decode(hint: Any, data: Any) -> Any:
    """Rebuild ``data`` as the type ``hint`` names (dataclasses through their
    constructors; lists to tuples; anything else as read)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if data is None:
            return None
        for arm in typing.get_args(hint):
            if arm is not type(None) and dataclasses.is_dataclass(arm) and isinstance(data, dict):
                return config_from_json(arm, data)
        return _plain(data)
    if dataclasses.is_dataclass(hint) and isinstance(data, dict):
        return config_from_json(hint, data)
    if origin is tuple and isinstance(data, list):
        args = typing.get_args(hint)
        item = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        if item is not None:
            return tuple(_decode(item, v) for v in data)
        if args and len(args) == len(data):
            return tuple(_decode(a, v) for a, v in zip(args, data, strict=True))
        return tuple(_plain(v) for v in data)
    if origin in (Mapping, dict, typing.Mapping) and isinstance(data, dict):
        args = typing.get_args(hint)
        key_hint, value_hint = args if len(args) == 2 else (str, Any)
        key = int if key_hint is int else str
        return {key(k): _decode(value_hint, v) for k, v in data.items()}
    return _plain(data)


def _plain(data: Any) -> Any:
    if isinstance(data, list):
        return tuple(_plain(v) for v in data)
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items()}
    return data


def config_from_json(cls: type, data: Mapping[str, Any]) -> Any:
    """The dataclass ``cls`` rebuilt from :func:`config_to_json` output;
    unknown field names raise ``ValueError`` naming them."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}")
    return cls(**{name: _decode(hints[name], value) for name, value in data.items()})


def config_roundtrip(cls: type, value: Any) -> bool:
    """True if ``value`` (a ``cls``) survives JSON and back unchanged."""
    try:
        return config_from_json(cls, config_to_json(value)) == value
    except (TypeError, ValueError):
        return False
