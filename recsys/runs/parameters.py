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

Where a default's type is ambiguous (``None``, or text standing for a list),
the cell declares the type, as papermill reads it: an annotation
(``svd_ranks: list[int] = [5, 10]``) or a type comment (``n_clusters = None  #
type: Optional[int] help``). A declared type wins over the default's: ``int``,
``float``, ``bool``, ``str``, ``list[X]``, ``tuple[X,...]``, ``Optional[X]`` or
``X|None`` (then ``none`` gives ``None``).

A value that does not fit raises :class:`ParameterError` naming the
parameter, the value and the notebook whose default fixed the type.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["NO_DEFAULT", "Declared", "ParameterError", "coerce", "coerce_declared", "declared_defaults",
           "declared_parameters", "split_assignment", "type_prototype"]

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


@dataclass(frozen=True)
class Declared:
    """A parameter of a notebook's ``parameters`` cell: its default and its declared type (``None``: the
    default's type)."""

    default: Any
    type_name: str | None = None


def declared_parameters(notebook: Path) -> dict[str, Declared]:
    """The notebook's parameters as papermill reads them: default (:data:`NO_DEFAULT` where it is an
    expression rather than a literal) and declared type (annotation or ``# type:`` comment). A declared type
    that :func:`type_prototype` does not understand raises :class:`ParameterError` naming the notebook."""
    import papermill

    out = {}
    for name, info in papermill.inspect_notebook(str(notebook)).items():
        try:
            default = ast.literal_eval(str(info.get("default", "")))
        except (ValueError, SyntaxError):
            default = NO_DEFAULT
        type_name = str(info.get("inferred_type_name") or "None").strip()
        declared = None if type_name in ("", "None") else type_name
        if declared is not None:
            type_prototype(declared, where=f"{notebook.name}: {name}")  # refuse what we cannot check
        out[name] = Declared(default, declared)
    return out


def declared_defaults(notebook: Path) -> dict[str, Any]:
    """The notebook's parameters and their default values (:data:`NO_DEFAULT` where the
    default is an expression rather than a literal)."""
    return {name: d.default for name, d in declared_parameters(notebook).items()}


_SCALARS: dict[str, Any] = {"int": 0, "float": 0.0, "bool": False, "str": ""}


def type_prototype(type_name: str, where: str = "") -> tuple[Any, bool]:
    """``(prototype, optional)`` for a declared type: a value of that type that :func:`coerce` types by
    (``list[int]`` -> ``[0]``, ``tuple[float,...]`` -> ``(0.0,)``) and whether ``None`` is allowed."""

    def fail() -> ParameterError:
        return ParameterError(f"{where}: declared type {type_name!r} is not one of int, float, bool, str, "
                              "list[X], tuple[X,...], Optional[X], X|None")

    try:
        node = ast.parse(type_name.strip().strip("'\""), mode="eval").body
    except SyntaxError:
        raise fail() from None

    def build(node: ast.expr) -> tuple[Any, bool]:
        if isinstance(node, ast.Name) and node.id in _SCALARS:
            return _SCALARS[node.id], False
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            sides = [node.left, node.right]
            nones = [s for s in sides if isinstance(s, ast.Constant) and s.value is None]
            if len(nones) == 1:
                return build(next(s for s in sides if s is not nones[0]))[0], True
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            inner = node.slice
            if node.value.id == "Optional":
                return build(inner)[0], True
            if node.value.id == "list":
                return [build(inner)[0]], False
            if node.value.id == "tuple" and isinstance(inner, ast.Tuple) and len(inner.elts) == 2 \
                    and isinstance(inner.elts[1], ast.Constant) and inner.elts[1].value is Ellipsis:
                return (build(inner.elts[0])[0],), False
        raise fail()

    return build(node)


def coerce_declared(name: str, raw: str, declared: Declared, where: str = "") -> Any:
    """``raw`` typed by the declared type when there is one, else by the default (:func:`coerce`)."""
    if declared.type_name is None:
        return coerce(name, raw, declared.default, where)
    prototype, optional = type_prototype(declared.type_name, where)
    if optional and _unquote(raw).strip().lower() in ("none", "null", ""):
        return None
    return coerce(name, raw, prototype, where, origin=f" (declared type {declared.type_name}"
                  + (f" in {where})" if where else ")"))


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


def coerce(name: str, raw: str, default: Any, where: str = "", origin: str | None = None) -> Any:
    """``raw`` (text) as a value of the type of ``default``."""
    if origin is None:
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
                    converted.append(coerce(name, item, element, where, origin=""))
                except ParameterError as error:
                    detail = str(error).split(": ", 1)[1]
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
