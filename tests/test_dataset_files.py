"""Issue 14.10/14.11: Dataset.save replaces a directory whole (no stale files,
personas hashed and listed), and every unreadable input file is named."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from test_dataset import AS_OF, frames

import recsys.data.dataset as dataset_module
from recsys.cli import main
from recsys.data import Dataset, DataValidationError
from recsys.data.errors import DataFileError
from recsys.data.timestamps import naive_utc_ns


def with_personas(personas: pd.DataFrame | None) -> Dataset:
    return Dataset(*frames().values(), as_of=AS_OF, personas=personas)


PERSONAS = pd.DataFrame({"user_id": ["user_0", "user_1", "user_2"], "persona": ["a", "b", "a"]})


def test_saving_without_personas_over_a_save_with_them_leaves_no_stale_file(tmp_path: Path) -> None:
    target = tmp_path / "d"
    with_personas(PERSONAS).save(target)
    assert (target / "personas.parquet").exists()
    with_personas(None).save(target)
    assert sorted(p.name for p in target.iterdir()) == ["events.parquet", "manifest.json", "products.parquet",
                                                       "users.parquet"]
    assert Dataset.load(target).personas is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging or retired directories


def test_content_hash_and_manifest_cover_personas(tmp_path: Path) -> None:
    plain, labelled = with_personas(None), with_personas(PERSONAS)
    relabelled = with_personas(PERSONAS.assign(persona=["b", "b", "a"]))
    assert len({plain.content_hash(), labelled.content_hash(), relabelled.content_hash()}) == 3
    labelled.save(tmp_path / "d")
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["rows"]["personas"] == 3
    assert set(manifest["files"]) == {"users.parquet", "products.parquet", "events.parquet", "personas.parquet"}
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((tmp_path / "d" / name).read_bytes()).hexdigest() == digest
    back = Dataset.load(tmp_path / "d")
    pd.testing.assert_frame_equal(back.personas, PERSONAS, check_dtype=False)
    assert back.content_hash() == labelled.content_hash()


def test_a_personas_file_the_manifest_does_not_list_is_never_read(tmp_path: Path) -> None:
    with_personas(None).save(tmp_path / "d")
    PERSONAS.to_parquet(tmp_path / "d" / "personas.parquet")  # planted after the save
    assert Dataset.load(tmp_path / "d").personas is None


def test_a_failed_save_leaves_the_earlier_save_loadable(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "d"
    with_personas(PERSONAS).save(target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    write = pd.DataFrame.to_parquet
    written: list[object] = []

    def full_disk(frame, path, *args, **kwargs):  # the first file is written, the second finds the disk full
        if written:
            raise OSError(28, "No space left on device")
        written.append(path)
        return write(frame.iloc[:0], path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full_disk)
    with pytest.raises(OSError, match="No space left"):
        with_personas(None).save(target)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert Dataset.load(target).personas is not None
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_save_refuses_to_replace_a_directory_with_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"notes\.txt.*refusing to replace"):
        with_personas(None).save(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_save_into_an_empty_existing_directory(tmp_path: Path) -> None:
    with_personas(None).save(tmp_path)
    assert (tmp_path / "manifest.json").exists()


def corrupt(path: Path) -> None:
    path.write_bytes(b"PAR1 this is not parquet" * 10)


def rehash(directory: Path, name: str) -> None:
    """Make the manifest agree with a file changed after the save (to reach the later checks)."""
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"][name] = hashlib.sha256((directory / name).read_bytes()).hexdigest()
    (directory / "manifest.json").write_text(json.dumps(manifest))


def test_a_corrupt_parquet_file_is_named(tmp_path: Path) -> None:
    with_personas(PERSONAS).save(tmp_path / "d")
    corrupt(tmp_path / "d" / "users.parquet")
    with pytest.raises(DataFileError, match=r"d/users\.parquet: sha256 differs"):
        Dataset.load(tmp_path / "d")
    rehash(tmp_path / "d", "users.parquet")
    with pytest.raises(DataFileError, match=r"d/users\.parquet: not a readable parquet file"):
        Dataset.load(tmp_path / "d")


def test_recsys_batch_names_a_corrupt_users_parquet(tmp_path: Path) -> None:
    with_personas(PERSONAS).save(tmp_path / "d")
    corrupt(tmp_path / "d" / "users.parquet")
    rehash(tmp_path / "d", "users.parquet")
    with pytest.raises(DataFileError, match=r"d/users\.parquet: not a readable parquet file") as raised:
        main(["batch", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "out")])
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_invalid_rows_in_a_file_name_the_file_and_column(tmp_path: Path) -> None:
    with_personas(None).save(tmp_path / "d")
    users = pd.read_parquet(tmp_path / "d" / "users.parquet")
    users.loc[1, "user_id"] = "Jane Doe"
    users.to_parquet(tmp_path / "d" / "users.parquet", index=False)
    rehash(tmp_path / "d", "users.parquet")
    with pytest.raises(DataFileError, match=r"d/users\.parquet: users\.user_id: malformed ids"):
        Dataset.load(tmp_path / "d")


@pytest.mark.parametrize(("text", "problem"), [("{not json", "not valid JSON"), ("[1, 2]", "expected a JSON object"),
                                               ('{"format_version": 2}', "'files' must list"),
                                               (b"\xff\xfe", "not valid JSON")])
def test_a_garbage_manifest_is_named(tmp_path: Path, text: str | bytes, problem: str) -> None:
    with_personas(None).save(tmp_path / "d")
    path = tmp_path / "d" / "manifest.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(DataFileError, match=rf"d/manifest\.json: {problem}"):
        Dataset.load(tmp_path / "d")


def test_old_format_and_missing_files_are_named(tmp_path: Path) -> None:
    with_personas(PERSONAS).save(tmp_path / "d")
    (tmp_path / "d" / "personas.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"d/personas\.parquet listed in .*manifest\.json is missing"):
        Dataset.load(tmp_path / "d")
    path = tmp_path / "d" / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "format_version": 1}))
    with pytest.raises(DataValidationError, match=r"manifest\.format_version: format version 1 .* regenerate"):
        Dataset.load(tmp_path / "d")


def test_string_columns_share_one_object_per_value_across_row_groups(tmp_path: Path) -> None:
    """Strings read dictionary-encoded row group by row group: equal values are one
    Python object (across row groups too), nulls are None, the order is kept."""
    values = ["a", "b", None, "a", "c", "b", "a", None, "c"]
    path = tmp_path / "strings.parquet"
    pd.DataFrame({"s": values, "n": range(len(values))}).to_parquet(path, index=False, row_group_size=2)
    read = dataset_module._read_parquet(path)
    assert read["s"].tolist() == values and read["s"].dtype == object and read["n"].tolist() == list(range(9))
    firsts = {}
    for value in read["s"]:
        if value is not None:
            assert firsts.setdefault(value, value) is value


def test_content_hash_in_row_chunks_equals_one_pass(small_dataset: Dataset, monkeypatch) -> None:
    whole = small_dataset.content_hash()
    monkeypatch.setattr(dataset_module, "_HASH_CHUNK", 1000)
    assert len(small_dataset.events) > 3000
    chunked = Dataset(small_dataset.users, small_dataset.products, small_dataset.events, small_dataset.as_of,
                      small_dataset.personas, dict(small_dataset.meta), small_dataset.config)
    assert chunked.content_hash() == whole


def test_naive_ns_timestamps_are_kept_others_converted() -> None:
    naive = pd.Series(pd.to_datetime(["2024-01-01 10:00", "2024-02-01 00:00"])).astype("datetime64[ns]")
    assert naive_utc_ns(naive, "events", "timestamp") is naive  # already naive datetime64[ns]: no copy
    micro = naive.astype("datetime64[us]")
    assert naive_utc_ns(micro, "events", "timestamp").dtype == "datetime64[ns]"
    aware = naive.dt.tz_localize("Europe/Berlin")
    converted = naive_utc_ns(aware, "events", "timestamp")
    assert converted.dtype == "datetime64[ns]" and converted.iloc[0] == pd.Timestamp("2024-01-01 09:00")
