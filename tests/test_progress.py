"""Step lines and step times of the long command-line jobs (on stderr; stdout keeps the result)."""

from __future__ import annotations

import io
import re

import pytest

from recsys.cli import main
from recsys.runs.progress import Steps, timed_table


def test_steps_print_start_and_time_and_keep_the_table_intact():
    stream = io.StringIO()
    steps = Steps("job", stream=stream)
    table = {"a": lambda x: x + 1}
    with timed_table(table, steps):
        assert table["a"](1) == 2
    assert table["a"](1) == 2 and set(steps.seconds) == {"a"}
    with pytest.raises(ValueError), steps.step("b"):
        raise ValueError("boom")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[recsys job] a ..."
    assert re.fullmatch(r"\[recsys job\] a done in \d+\.\d s \(total \d+\.\d s\)", lines[1])
    assert re.fullmatch(r"\[recsys job\] b FAILED after \d+\.\d s", lines[3])


@pytest.mark.slow  # generates a data set, runs the batch and trains a model
def test_generate_batch_and_train_report_their_steps(tmp_path, capsys):
    assert main(["generate", "--profile", "ci", "--out", str(tmp_path / "data")]) == 0
    assert main(["batch", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "batch")]) == 0
    captured = capsys.readouterr()
    for step in ("generate profile ci, seed 42", "save to", "svd", "segments", "demand", "seasonality"):
        assert re.search(rf"\[recsys (generate|batch)\] {step}.* done in \d+\.\d s", captured.err), step
    assert re.search(r"batch artifacts: .*v000001 \(\d+\.\d s; svd \d+\.\d s; segments", captured.out)
    assert main(["batch", "--quiet", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "batch")]) == 0
    assert "[recsys batch]" not in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "model"), "--no-tune"]) == 0
    err = capsys.readouterr().err
    assert all(re.search(rf"\[recsys train\] {step} done in \d+\.\d s", err) for step in ("svd", "demand"))
