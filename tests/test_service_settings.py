"""The service's one settings object: read from the environment once, carried to the workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.service.settings import ENV, ServiceSettings


def test_settings_read_the_environment_and_round_trip_through_it(tmp_path):
    environ = {"RECSYS_MODEL": str(tmp_path / "model"), "RECSYS_API_KEYS": str(tmp_path / "keys.json"),
               "RECSYS_REDIS_URL": "redis://127.0.0.1:6379/0", "RECSYS_REDIS_PREFIX": "", "UNRELATED": "x"}
    settings = ServiceSettings.from_env(environ)
    assert settings.model_dir == tmp_path / "model" and settings.api_keys == tmp_path / "keys.json"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.redis_prefix is None and settings.metrics_dir is None  # empty counts as unset
    assert settings.to_env() == {k: v for k, v in environ.items() if k in ENV.values() and v}
    assert ServiceSettings.from_env(settings.to_env()) == settings
    assert settings.require_model() == (tmp_path / "model", tmp_path / "keys.json")


def test_missing_settings_name_the_variables():
    with pytest.raises(ValueError, match="RECSYS_MODEL, RECSYS_API_KEYS not set"):
        ServiceSettings.from_env({}).require_model()


def test_the_settings_are_frozen_and_refuse_unknown_fields():
    settings = ServiceSettings(model_dir=Path("m"))
    with pytest.raises(ValueError):
        settings.model_dir = Path("other")  # type: ignore[misc]
    with pytest.raises(ValueError):
        ServiceSettings(model="m")  # type: ignore[call-arg]


def test_only_the_settings_module_reads_the_environment():
    import recsys.service

    root = Path(recsys.service.__file__).parent
    readers = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py")
                     if "os.environ" in p.read_text() or "getenv" in p.read_text())
    assert readers == ["server.py", "settings.py"]  # server.py only writes the workers' settings
    assert "os.environ[" not in (root / "server.py").read_text() and ".get(" not in (root / "server.py").read_text()
