"""Configuration files: TOML in, validated frozen configuration out, and back.

One format serves every command that takes a configuration (``recsys run
--config``, ``make report CONFIG=...``, the notebooks' ``config_file``
parameter). Its top-level tables are the fields of
:class:`~recsys.config.RecsysConfig` (``[fusion]``, ``[interactions]``,
``[deals]``, ``[seasons]``, ``[[regions]]``, ``[[age_groups]]``,
``[[spending_tiers]]``, ``categories``) plus one ``[engine]`` table holding
the fields of :class:`~recsys.serving.engine.EngineConfig` (``[engine.realtime]``,
``[engine.hybrid]``, ``[engine.batch.segmentation]`` for the number of
segments, ...)::

    [fusion]
    knn = 0.5
    svd = 0.2
    content = 0.2
    demographic = 0.1

    [engine.batch.segmentation]
    n_clusters = 6

The mapping is generic, from the dataclasses' field names and type hints, so
a field added to any configuration dataclass is read and written without a
change here. Rules:

- a table given updates only the fields it names; the others keep their
  defaults (so ``[deals]`` with ``max_deals = 5`` changes one bound);
- an array (``categories``, ``[[regions]]``, ...) replaces the whole
  sequence: list every region when you give ``[[regions]]``
  (``dump_config_file(DEFAULT_CONFIG, path)`` writes a complete file to edit);
- an unknown key, a value of the wrong type, or a value the dataclass
  rejects raises :class:`~recsys.config.ConfigError` naming the key path
  (``fusion.knn``, ``regions[2].avg_discount``, ``engine.batch.svd``).
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys.config import DEFAULT_CONFIG, ConfigError, RecsysConfig

__all__ = ["ENGINE_TABLE", "ConfigFile", "dump_config_file", "from_mapping", "load_config_file", "to_mapping"]

ENGINE_TABLE = "engine"
"""The top-level table that holds :class:`~recsys.serving.engine.EngineConfig`."""


def _default_engine_config() -> Any:
    from recsys.serving.engine import EngineConfig

    return EngineConfig()


@dataclass(frozen=True)
class ConfigFile:
    """What a configuration file sets: the domain tables and the engine's component settings."""

    recsys: RecsysConfig = DEFAULT_CONFIG
    engine: Any = field(default_factory=_default_engine_config)  # recsys.serving.engine.EngineConfig
    source: Path | None = None


def load_config_file(path: str | Path | None) -> ConfigFile:
    """Read ``path`` (TOML) into validated configuration; ``None`` or ``""``: the defaults."""
    if path is None or str(path) == "":
        return ConfigFile()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ConfigError(f"configuration file {path} does not exist") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"configuration file {path} is not valid TOML: {error}") from error
    engine_table = data.pop(ENGINE_TABLE, {})
    recsys = from_mapping(RecsysConfig, data, base=DEFAULT_CONFIG, where="")
    default_engine = _default_engine_config()
    engine = from_mapping(type(default_engine), engine_table, base=default_engine, where=ENGINE_TABLE)
    return ConfigFile(recsys=recsys, engine=engine, source=path)


def dump_config_file(config: ConfigFile | RecsysConfig | Any, path: str | Path) -> Path:
    """Write ``config`` (a :class:`ConfigFile`, a ``RecsysConfig`` or an ``EngineConfig``)
    as TOML that :func:`load_config_file` reads back to an equal configuration."""
    import tomli_w

    if isinstance(config, ConfigFile):
        data = {**to_mapping(config.recsys), ENGINE_TABLE: to_mapping(config.engine)}
    elif isinstance(config, RecsysConfig):
        data = to_mapping(config)
    elif dataclasses.is_dataclass(config) and type(config).__name__ == "EngineConfig":
        data = {ENGINE_TABLE: to_mapping(config)}
    else:
        raise ConfigError(f"cannot write a configuration file from {type(config).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


# -- generic dataclass <-> mapping ------------------------------------------------------------------------------


def _key(where: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{where}[{name}]"
    return f"{where}.{name}" if where else str(name)


def from_mapping(cls: type, data: Any, base: Any = None, where: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping (recursively, by type hints). Fields the
    mapping does not name come from ``base`` (an instance) or the class defaults."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'configuration'}: expected a table, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{_key(where, unknown[0])}: unknown key; known keys of {where or 'the file'}: {sorted(fields)}")
    hints = _type_hints(cls)
    values = {}
    for name, value in data.items():
        nested_base = getattr(base, name, None) if base is not None else None
        hint = hints.get(name, Any)
        if hint is Any and dataclasses.is_dataclass(nested_base):  # annotation not resolvable: the default's type
            hint = type(nested_base)
        values[name] = _convert(hint, value, _key(where, name), nested_base)
    try:
        return dataclasses.replace(base, **values) if base is not None else cls(**values)
    except ConfigError as error:
        raise ConfigError(f"{where or 'configuration'}: {error}") from error
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{where or 'configuration'}: {error}") from error


def _type_hints(cls: type) -> dict[str, Any]:
    """The resolved field types of ``cls``; a field whose annotation cannot be resolved
    (a name imported only for type checking) is ``Any``, read as the TOML value is."""
    try:
        return typing.get_type_hints(cls)
    except NameError:
        hints = {}
        for f in dataclasses.fields(cls):
            try:
                hints[f.name] = typing.get_type_hints(type("_One", (), {"__annotations__": {f.name: f.type},
                                                                          "__module__": cls.__module__}))[f.name]
            except NameError:
                hints[f.name] = Any
        return hints


def _convert(hint: Any, value: Any, where: str, base: Any = None) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(option, value, where, base)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {args}")
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, base=base if isinstance(base, hint) else None, where=where)
    if origin is tuple or hint is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected an array, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, _key(where, i)) for i, v in enumerate(value))
        if args:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_convert(a, v, _key(where, i)) for i, (a, v) in enumerate(zip(args, value, strict=True)))
        return tuple(value)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected an array, got {value!r}")
        return [_convert(args[0] if args else Any, v, _key(where, i)) for i, v in enumerate(value)]
    if origin in (dict, Mapping) or (origin is not None and isinstance(origin, type) and issubclass(origin, Mapping)):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        key_type, value_type = args if args else (Any, Any)
        return {_convert_key(key_type, k, where): _convert(value_type, v, f"{where}.{k}") for k, v in value.items()}
    return _scalar(hint, value, where)


def _convert_key(hint: Any, key: str, where: str) -> Any:
    if hint is int:
        try:
            return int(key)
        except ValueError as error:
            raise ConfigError(f"{where}.{key}: key must be an integer") from error
    return key


def _scalar(hint: Any, value: Any, where: str) -> Any:
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if typing.get_origin(hint) is typing.Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{where}: expected one of {list(typing.get_args(hint))}, got {value!r}")
        return value
    if isinstance(hint, type) and isinstance(value, hint):
        return value
    raise ConfigError(f"{where}: cannot read {value!r} as {getattr(hint, '__name__', hint)}")


def to_mapping(config: Any) -> dict[str, Any]:
    """A dataclass as TOML-ready nested dicts and lists (``None`` fields are left out)."""
    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)
            if f.init and getattr(config, f.name) is not None}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_mapping(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
