"""``recsys train`` serves what wins on validation (issue 23): the search runs by default, its
record is in the saved model, and a retrained copy keeps the chosen configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.cli import main as cli_main
from recsys.data import Dataset
from recsys.serving.model_dir import load_model

pytest.importorskip("optuna", reason="tuning comes with the [research] extra")


@pytest.fixture(scope="module")
def tuned_model(small_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tuned")
    small_dataset.save(root / "data")
    assert cli_main(["train", "--data", str(root / "data"), "--out", str(root / "model"),
                     "--tuning-trials", "3"]) == 0
    return root / "model"


def test_train_tunes_by_default_and_says_what_it_chose(tuned_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tuning = load_model(tuned_model).model_info()["tuning"]
    assert tuning is not None and tuning["n_trials"] == 3
    assert tuning["collaborative"] in {"ease", "pure_svd", "rp3beta"} and tuning["fusion"] in {"learned", "weighted"}
    assert tuning["best_value"] >= tuning["start_value"]  # the design's settings are the search's first trial


def test_a_retrained_copy_keeps_the_tuned_configuration(tuned_model: Path) -> None:
    engine = load_model(tuned_model)
    copy = engine.retrained_copy()
    assert copy.engine_config == engine.engine_config
    assert copy.weights == engine.weights


def test_no_tune_serves_the_design_defaults(small_dataset: Dataset, tmp_path: Path) -> None:
    small_dataset.save(tmp_path / "data")
    assert cli_main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "model"), "--no-tune"]) == 0
    assert load_model(tmp_path / "model").model_info()["tuning"] is None


def test_tuning_trials_must_be_positive(small_dataset: Dataset, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli_main(["train", "--profile", "ci", "--out", str(tmp_path / "m"), "--tuning-trials", "0"])
    assert stop.value.code == 2 and "--tuning-trials" in capsys.readouterr().err
