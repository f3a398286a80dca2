"""One way to check configuration values: :class:`ConfigError` naming the field.

Every configuration dataclass checks its fields in ``__post_init__`` with
these helpers, so a bad value is always a ``ConfigError`` (a ``ValueError``)
whose message reads ``Owner.field must be ..., got <value>``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["ConfigError", "InvalidRequest", "check_int", "check_ints", "check_number", "check_numbers"]


class ConfigError(ValueError):
    """An invalid configuration value (the message names the field)."""


class InvalidRequest(ValueError):
    """A request's own input is invalid: a malformed id, a count or a parameter out of
    range (the message names it). The service answers it with 422; any other exception
    escaping a request is a server fault (500, logged)."""


def _int_rule(low: int, high: int | None) -> str:
    if high is not None:
        return f"an int in {low}..{high}"
    return "a positive int" if low == 1 else f"an int >= {low}"


def check_int(owner: str, name: str, value: Any, low: int = 1, high: int | None = None) -> int:
    """``value`` must be an int (not a bool) in ``low..high``."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low
            or (high is not None and value > high)):
        raise ConfigError(f"{owner}.{name} must be {_int_rule(low, high)}, got {value!r}")
    return int(value)


def check_number(owner: str, name: str, value: Any, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """``value`` must be a real number (not NaN, not a bool) within the
    bounds (``low_open``/``high_open``: the bound itself excluded)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        if low is not None and high is not None:
            rule = f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        elif low == 0 and not low_open:
            rule = "a non-negative number"
        elif low is not None:
            rule = f"a number {'>' if low_open else '>='} {low}"
        elif high is not None:
            rule = f"a number {'<' if high_open else '<='} {high}"
        else:
            rule = "a number"
        raise ConfigError(f"{owner}.{name} must be {rule}, got {value!r}")
    return float(value)


def check_ints(config: Any, *names: str, low: int = 1, high: int | None = None) -> None:
    """:func:`check_int` on fields ``names`` of a configuration object."""
    for name in names:
        check_int(type(config).__name__, name, getattr(config, name), low, high)


def check_numbers(config: Any, *names: str, **bounds: Any) -> None:
    """:func:`check_number` on fields ``names`` of a configuration object."""
    for name in names:
        check_number(type(config).__name__, name, getattr(config, name), **bounds)
