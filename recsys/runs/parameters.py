"""Notebook parameters from the command line, typed by the notebook's own defaults.

``recsys run -p name=value`` gives text. Each notebook's ``parameters`` cell
(read with papermill's ``inspect_notebook``) declares a default per name; the
text takes that default's type:

- ``int``, ``float``: ``-p k=20``, ``-p alpha=0.5`` (an int is refused where
  the default is an int and the text is ``0.5``);
- ``bool``: ``true/false``, ``yes/no``, ``1/0`` (any case);
- ``str``: the text as it is (surrounding quotes removed);
- ``list``, ``tuple``: comma-separated items, each typed like the default's
  first item (``-p svd_ranks=5,10,20`` -> ``(5, 10, 20)``), or a Python
  literal ``[5, 10]``;
- ``dict`` or a ``None`` default: a Python literal, else the text.

A value that does not fit raises :class:`ParameterError` naming the
parameter, the value and the notebook whose default fixed the type.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["NO_DEFAULT", "ParameterError", "coerce", "declared_defaults", "split_assignment"]

NO_DEFAULT = object()
"""The default of a parameter whose default is not a Python literal (an expression)."""

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class ParameterError(ValueError):
    """A ``-p name=value`` that is malformed or does not fit the parameter's type."""


def split_assignment(text: str) -> tuple[str, str]:
    """``"name=value"`` -> ``("name", "value")`` (the value stays text)."""
    if "=" not in text:
        raise ParameterError(f"-p {text}: expected name=value")
    name, raw = text.split("=", 1)
    name = name.strip()
    if not name.isidentifier():
        raise ParameterError(f"-p {text}: {name!r} is not a valid parameter name")
    return name, raw


def declared_defaults(notebook: Path) -> dict[str, Any]:
    """The notebook's parameters and their default values (:data:`NO_DEFAULT` where the
    default is an expression rather than a literal)."""
    import papermill

    out = {}
    for name, info in papermill.inspect_notebook(str(notebook)).items():
        try:
            out[name] = ast.literal_eval(str(info.get("default", "")))
        except (ValueError, SyntaxError):
            out[name] = NO_DEFAULT
    return out


def _literal(raw: str) -> Any:
    try:
        return ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        return raw


def _unquote(raw: str) -> str:
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return raw


def coerce(name: str, raw: str, default: Any, where: str = "") -> Any:
    """``raw`` (text) as a value of the type of ``default``."""
    origin = f" (typed by the default {default!r}{' in ' + where if where else ''})"

    def fail(detail: str) -> ParameterError:
        return ParameterError(f"-p {name}={raw}: {detail}{origin}")

    if default is NO_DEFAULT or default is None:
        return _literal(raw)
    if isinstance(default, bool):
        word = _unquote(raw).strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise fail("expected true or false")
    if isinstance(default, int):
        try:
            return int(_unquote(raw).strip())
        except ValueError:
            raise fail("expected an integer") from None
    if isinstance(default, float):
        try:
            return float(_unquote(raw).strip())
        except ValueError:
            raise fail("expected a number") from None
    if isinstance(default, str):
        return _unquote(raw)
    if isinstance(default, (list, tuple)):
        text = raw.strip()
        if text[:1] in "[(":
            value = _literal(text)
            if not isinstance(value, (list, tuple)):
                raise fail("expected a list of values")
            items: Iterable[Any] = (str(v) if not isinstance(v, str) else repr(v) for v in value)
        else:
            items = (t.strip() for t in text.split(",") if t.strip())
        if default:
            element = default[0]
            converted = []
            for item in items:
                try:
                    converted.append(coerce(name, item, element, where))
                except ParameterError as error:
                    detail = str(error).split(": ", 1)[1].split(" (typed by", 1)[0]
                    raise fail(f"item {item!r}: {detail}") from None
        else:
            converted = [_literal(item) for item in items]
        return type(default)(converted)
    if isinstance(default, dict):
        value = _literal(raw)
        if not isinstance(value, dict):
            raise fail("expected a dict literal such as {'a': 1}")
        return value
    return _literal(raw)
