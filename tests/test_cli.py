"""The `recsys` command line: generate is deterministic, bad arguments are refused."""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from pathlib import Path

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


NOTEBOOKS = str(Path(__file__).resolve().parent.parent / "notebooks")


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"recsys {version('recsys')}"


def test_the_version_is_written_once_in_recsys_version():
    """``recsys/_version.py`` is the one place: pyproject reads it, the package and the CLI report it."""
    import tomllib

    import recsys
    from recsys._version import __version__

    pyproject = tomllib.loads((Path(recsys.__file__).parents[1] / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "recsys._version.__version__"}
    assert recsys.__version__ == __version__ == version("recsys")


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["run", "--profile", "ci", "-p", "no_such_parameter=1"], "no_such_parameter"),
        (["run", "--profile", "ci", "--notebooks", "03", "-p", "k=ten"], "-p k=ten: expected an integer"),
        (["run", "--profile", "ci", "-p", "novalue"], "-p novalue: expected name=value"),
        (["run", "--profile", "ci", "--seeds", "1,x"], "argument --seeds: '1,x' is not a comma-separated list"),
        (["run", "--profile", "ci", "--notebooks", "99"], "--notebooks: no notebook"),
        (["run", "--profile", "huge"], "argument --profile: invalid choice"),
        (["run", "--profile", "ci", "--config", "CONFIG"], "fusion.knn"),
        (["run", "--profile", "ci", "--config", "MISSING"], "does not exist"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(tmp_path, capsys, argv, named):
    config = tmp_path / "bad.toml"
    config.write_text("[fusion]\nknn = 'x'\n")
    argv = [str(config) if a == "CONFIG" else str(tmp_path / "missing.toml") if a == "MISSING" else a for a in argv]
    argv += ["--notebooks-dir", NOTEBOOKS, "--reports", str(tmp_path / "reports")]
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err, err
    assert not (tmp_path / "reports").exists()


def test_notebooks_are_found_from_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--profile", "ci"]) == 2
    assert f"{tmp_path / 'notebooks'} does not exist" in capsys.readouterr().err


def test_batch_command_publishes_a_loadable_version(tmp_path, capsys):
    from recsys.stage2.artifacts import load_latest

    assert main(["generate", "--profile", "ci", "--seed", "3", "--out", str(tmp_path / "data"), "--quiet"]) == 0
    assert main(["batch", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "batch")]) == 0
    assert (tmp_path / "batch" / "LATEST").read_text().strip() == "v000001"
    artifacts = load_latest(tmp_path / "batch")
    assert "batch artifacts" in capsys.readouterr().out
    assert artifacts.path.name == "v000001"


def test_batch_command_names_a_missing_data_directory(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["batch", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "batch")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "argument --data: directory" in err and "does not exist" in err
