"""The Stage 2 batch job: versions, LATEST pointer, atomicity under interruption."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from recsys.data import Dataset
from recsys.models.svd import PureSVD, SVDConfig
from recsys.stage2 import job as batch
from recsys.stage2.artifacts import load_latest, load_version
from recsys.stage2.demand import DemandConfig
from recsys.stage2.job import BatchConfig, batch_main, run_batch
from recsys.stage2.segmentation import SegmentationConfig

FAST = BatchConfig(svd=SVDConfig(n_factors=10), segmentation=SegmentationConfig(n_init=2),
                   demand=DemandConfig(max_iter=20))


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def published(small_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("batch")
    run_batch(small_dataset, out, FAST)
    return out


def test_run_batch_publishes_a_complete_version(published: Path, small_dataset: Dataset) -> None:
    assert (published / "LATEST").read_text() == "v000001\n"
    art = load_latest(published)
    assert art.version == "v000001"
    m = art.manifest
    assert m["data_hash"] == small_dataset.content_hash()
    assert m["as_of"] == small_dataset.as_of.isoformat()
    assert set(m["run"]) >= {"started_at_utc", "seconds", "step_seconds"}
    assert set(m["files"]) == {p.name for p in art.path.iterdir()} - {"manifest.json"}
    assert len(art.segment_summary["user_segments"]) == 8
    assert art.demand["demand_score"].between(0, 100).all()
    assert len(art.seasonal_factors) == len(small_dataset.config.region_names) * 10 * 4
    assert art.user_factors.shape == (small_dataset.n_users, 10)
    assert set(art.demand_errors["model"]) == {"model", "naive", "moving_average"}


def test_artifact_affinity_equals_the_model(published: Path, small_dataset: Dataset) -> None:
    art = load_latest(published)
    model = PureSVD(SVDConfig(n_factors=10)).fit(small_dataset)
    ids = ["user_0", "user_9", "brand_new_user"]
    products = list(small_dataset.products["product_id"][:4])
    np.testing.assert_allclose(art.affinity(ids, products).to_numpy(), model.affinity(ids, products).to_numpy(),
                               atol=1e-10)
    with pytest.raises(ValueError, match="unknown product"):
        art.affinity(ids, ["product_missing"])


def test_same_data_gives_byte_identical_artifacts(small_dataset: Dataset, tmp_path: Path) -> None:
    first = run_batch(small_dataset, tmp_path, FAST)
    second = run_batch(small_dataset, tmp_path, FAST)
    assert (first.version, second.version) == ("v000001", "v000002")
    assert load_latest(tmp_path).version == "v000002"
    assert first.manifest["files"] == second.manifest["files"]  # every artifact's sha256


def test_failure_midway_leaves_previous_artifacts_intact(
    published: Path, small_dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _tree(published)

    def broken(*args: object) -> dict:
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(batch.STEPS, "demand", broken)  # svd and segments were already written
    with pytest.raises(RuntimeError, match="disk on fire"):
        run_batch(small_dataset, published, FAST)
    assert _tree(published) == before  # nothing changed, no temporary directory left
    art = load_latest(published)
    assert art.version == "v000001" and art.manifest["data_hash"] == small_dataset.content_hash()


@pytest.mark.processes  # starts the batch job in a child process and kills it
def test_killed_run_leaves_previous_artifacts_intact(small_dataset: Dataset, tmp_path: Path) -> None:
    data_dir, out = tmp_path / "data", tmp_path / "out"
    small_dataset.save(data_dir)
    run_batch(small_dataset, out, FAST)
    before = _tree(out)
    marker = tmp_path / "segments_written"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from recsys.stage2 import job as batch
        from recsys.data import Dataset
        original = batch.STEPS["demand"]
        def slow(*args):
            Path({str(marker)!r}).write_text("x")
            time.sleep(120)
            return original(*args)
        batch.STEPS["demand"] = slow
        batch.run_batch(Dataset.load({str(data_dir)!r}), {str(out)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "batch subprocess ended before reaching the demand step"
            assert time.monotonic() < deadline, "batch subprocess did not reach the demand step"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # midway: svd and segment files are in its temporary directory
    finally:
        proc.wait(timeout=30)
    leftovers = [p for p in out.iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) == 1 and (leftovers[0] / "svd_user_factors.parquet").exists()
    assert {k: v for k, v in _tree(out).items() if not k.startswith(".tmp-")} == before
    assert load_latest(out).version == "v000001"
    # the next run sweeps the dead run's temporary directory and publishes v000002
    assert run_batch(small_dataset, out, FAST).version == "v000002"
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]


def test_prune_keeps_the_newest_versions(small_dataset: Dataset, tmp_path: Path) -> None:
    config = BatchConfig(svd=FAST.svd, segmentation=FAST.segmentation, demand=FAST.demand, keep_versions=2)
    for _ in range(3):
        run_batch(small_dataset, tmp_path, config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LATEST", "v000002", "v000003"]


def test_batch_main_reads_a_saved_dataset(small_dataset: Dataset, tmp_path: Path) -> None:
    small_dataset.save(tmp_path / "data")
    path = batch_main(tmp_path / "data", tmp_path / "out", FAST)
    assert path == tmp_path / "out" / "v000001" and (path / "manifest.json").exists()


def test_corruption_and_missing_artifacts_are_detected(published: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="LATEST not found"):
        load_latest(tmp_path)
    copy = tmp_path / "copy"
    copy.mkdir()
    for name, content in _tree(published).items():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes(content)
    (copy / "v000001" / "demand.parquet").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="demand.parquet does not match its sha256"):
        load_latest(copy)
    (copy / "v000001" / "segments.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="segments.parquet listed in the manifest is missing"):
        load_version(copy, "v000001", verify=False)
    with pytest.raises(FileNotFoundError, match="not a complete batch version"):
        load_version(copy, "v000009")


def test_bad_input(small_dataset: Dataset, tmp_path: Path) -> None:
    empty = small_dataset.restrict_events(np.zeros(len(small_dataset.events), dtype=bool))
    with pytest.raises(ValueError, match="empty data set"):
        run_batch(empty, tmp_path)
    with pytest.raises(TypeError, match="Dataset"):
        run_batch("data/ci", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="keep_versions"):
        BatchConfig(keep_versions=0)
    assert not list(tmp_path.iterdir())
