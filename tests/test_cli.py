"""The `recsys` command line: generate is deterministic, bad arguments are refused."""

from __future__ import annotations

import hashlib

import pytest

from recsys.cli import main


def _digests(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_generate_twice_with_one_seed_gives_identical_files(tmp_path, capsys):
    assert main(["generate", "--profile", "ci", "--seed", "5", "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["generate", "--profile", "ci", "--seed", "5", "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert main(["generate", "--profile", "ci", "--seed", "6", "--out", str(tmp_path / "c"), "--quiet"]) == 0
    a, b, c = (_digests(tmp_path / d) for d in "abc")
    assert set(a) >= {"users.parquet", "products.parquet", "events.parquet", "personas.parquet", "manifest.json"}
    assert a == b
    assert a["events.parquet"] != c["events.parquet"]
    assert "wrote" in capsys.readouterr().out


def test_unknown_profile_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        main(["generate", "--profile", "huge", "--out", str(tmp_path)])


def test_run_refuses_unknown_parameter(capsys):
    with pytest.raises(ValueError, match="declared by no notebook"):
        main(["run", "--profile", "ci", "-p", "no_such_parameter=1"])


def test_batch_command_publishes_a_loadable_version(tmp_path, capsys):
    from recsys.batch import load_latest

    assert main(["generate", "--profile", "ci", "--seed", "3", "--out", str(tmp_path / "data"), "--quiet"]) == 0
    assert main(["batch", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "batch")]) == 0
    assert (tmp_path / "batch" / "LATEST").read_text().strip() == "v000001"
    artifacts = load_latest(tmp_path / "batch")
    assert "batch artifacts" in capsys.readouterr().out
    assert artifacts.path.name == "v000001"


def test_batch_command_names_a_missing_data_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        main(["batch", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "batch")])
