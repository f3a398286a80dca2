"""Every ``*Config`` dataclass under ``recsys/`` survives TOML (and JSON) out and in as an equal object.

The classes are discovered, not listed: every module of the package is
imported and every dataclass whose name ends in ``Config`` is checked, so a
new configuration class is covered the day it is added. Each is checked at
its defaults (or, for the classes without defaults, at the instances
``DEFAULT_CONFIG`` holds) and at a non-default instance built from the
engine's and the domain configuration's nested values.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import tomllib
from typing import Any

import pytest
import tomli_w

import recsys
from recsys.config import DEFAULT_CONFIG
from recsys.config_file import from_mapping, to_mapping
from recsys.serialization import config_from_json, config_to_json


def _config_classes() -> list[type]:
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(recsys.__path__, prefix="recsys."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (isinstance(value, type) and name.endswith("Config") and dataclasses.is_dataclass(value)
                    and value.__module__ == module.__name__):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[key] for key in sorted(found)]


CONFIG_CLASSES = _config_classes()


def _nested_instances(value: Any, seen: dict[type, list[Any]]) -> None:
    """Collect every dataclass instance reachable from ``value``, by type."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        seen.setdefault(type(value), []).append(value)
        for f in dataclasses.fields(value):
            _nested_instances(getattr(value, f.name), seen)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _nested_instances(item, seen)
    elif isinstance(value, dict):
        for item in value.values():
            _nested_instances(item, seen)


def _instances(cls: type) -> list[Any]:
    from recsys.serving.engine_config import EngineConfig

    seen: dict[type, list[Any]] = {}
    _nested_instances(DEFAULT_CONFIG, seen)
    _nested_instances(EngineConfig(), seen)
    out = list(seen.get(cls, []))
    try:
        out.append(cls())
    except TypeError:  # required fields: the instances the defaults hold are the examples
        pass
    assert out, f"{cls.__qualname__}: no default and no instance in DEFAULT_CONFIG/EngineConfig() to check"
    return out


def _changed(value: Any) -> tuple[Any, list[str]]:
    """``value`` with every scalar field the class accepts changed (bools flipped, ints + 1, floats
    halved or 0.25, nested configurations changed the same way), and the names of the changed fields."""
    changed: list[str] = []
    for f in dataclasses.fields(value):
        if not f.init:
            continue
        old = getattr(value, f.name)
        if isinstance(old, bool):
            new: Any = not old
        elif isinstance(old, int):
            new = old + 1
        elif isinstance(old, float):
            new = old * 0.5 if old else 0.25
        elif dataclasses.is_dataclass(old) and not isinstance(old, type):
            new, inner = _changed(old)
            if not inner:
                continue
        else:
            continue
        try:
            value = dataclasses.replace(value, **{f.name: new})
        except (TypeError, ValueError):  # the class refuses that value alone (a bound, a sum of weights)
            continue
        changed.append(f.name)
    return value, changed


def test_the_discovery_finds_the_known_configs() -> None:
    names = {cls.__name__ for cls in CONFIG_CLASSES}
    assert {"RecsysConfig", "EngineConfig", "KNNConfig", "BatchConfig", "DealConfig", "SparkBatchConfig"} <= names


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_toml_round_trip(cls: type) -> None:
    for value in _instances(cls):
        text = tomli_w.dumps(to_mapping(value))
        assert from_mapping(cls, tomllib.loads(text), where=cls.__name__) == value, text


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_json_round_trip(cls: type) -> None:
    for value in _instances(cls):
        assert config_from_json(cls, config_to_json(value)) == value


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_changed_values_survive_toml_and_json(cls: type) -> None:
    for value in _instances(cls):
        changed, fields = _changed(value)
        if not fields:  # nothing scalar to change (e.g. only names and tables)
            continue
        assert changed != value
        assert from_mapping(cls, tomllib.loads(tomli_w.dumps(to_mapping(changed))), where=cls.__name__) == changed
        assert config_from_json(cls, config_to_json(changed)) == changed


def test_most_configs_have_values_to_change() -> None:
    changed = [cls for cls in CONFIG_CLASSES if any(_changed(v)[1] for v in _instances(cls))]
    assert len(changed) >= len(CONFIG_CLASSES) - 3, sorted(set(CONFIG_CLASSES) - set(changed), key=str)


def test_a_changed_nested_value_survives_toml() -> None:
    from recsys.serving.engine_config import EngineConfig

    engine = EngineConfig()
    batch = dataclasses.replace(engine.batch, segmentation=dataclasses.replace(engine.batch.segmentation, n_clusters=7))
    changed = dataclasses.replace(engine, batch=batch)
    loaded = from_mapping(EngineConfig, tomllib.loads(tomli_w.dumps(to_mapping(changed))))
    assert loaded == changed and loaded != engine
