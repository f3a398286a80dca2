"""Configuration files: TOML tables map onto the configuration dataclasses, errors name the key path."""

from __future__ import annotations

import pytest

from recsys.config import DEFAULT_CONFIG, ConfigError, FusionWeights
from recsys.config_file import ConfigFile, dump_config_file, load_config_file
from recsys.serving.engine import EngineConfig


def _write(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_round_trip(tmp_path):
    path = dump_config_file(ConfigFile(), tmp_path / "full.toml")
    loaded = load_config_file(path)
    assert loaded.recsys == DEFAULT_CONFIG
    assert loaded.engine == EngineConfig()
    assert load_config_file("").recsys == DEFAULT_CONFIG


def test_a_table_updates_only_the_fields_it_names(tmp_path):
    loaded = load_config_file(_write(tmp_path, """
[fusion]
knn = 0.5
svd = 0.2
content = 0.2
demographic = 0.1

[deals]
max_deals = 5

[engine.batch.segmentation]
n_clusters = 6
"""))
    assert loaded.recsys.fusion == FusionWeights(0.5, 0.2, 0.2, 0.1)
    assert loaded.recsys.deals.max_deals == 5
    assert loaded.recsys.deals.min_deals == DEFAULT_CONFIG.deals.min_deals
    assert loaded.recsys.regions == DEFAULT_CONFIG.regions
    assert loaded.engine.batch.segmentation.n_clusters == 6
    assert loaded.engine.batch.svd == EngineConfig().batch.svd


def test_regions_array_replaces_the_regions(tmp_path):
    loaded = load_config_file(_write(tmp_path, """
[[regions]]
name = "EU"
categories = ["Books"]
price_sensitivity = 0.7
avg_discount = 0.15

[[regions]]
name = "LATAM"
categories = ["Sports", "Fashion"]
price_sensitivity = 0.75
avg_discount = 0.22
seasonal_boosts = { summer = ["Sports"] }
"""))
    assert loaded.recsys.region_names == ("EU", "LATAM")
    assert loaded.recsys.region("LATAM").seasonal_boosts["summer"] == ("Sports",)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[fusion]\nknn = 'high'\n", r"^fusion\.knn: expected a number"),
        ("[fusion]\nknnn = 0.4\n", r"^fusion\.knnn: unknown key"),
        ("[fusion]\nknn = 0.9\n", r"^fusion: .*sum"),
        ("[nonsense]\na = 1\n", r"^nonsense: unknown key"),
        ("[engine.batch]\nkeep_versions = 'x'\n", r"^engine\.batch\.keep_versions: expected an integer"),
        ("[engine.batch.segmentation]\nn_clusters = 1\n", r"^engine\.batch\.segmentation: .*n_clusters"),
        ("[[regions]]\nname = 'EU'\ncategories = ['Books']\nprice_sensitivity = 0.7\navg_discount = 2.0\n",
         r"^regions\[0\]: .*avg_discount"),
        ("[deals\n", r"not valid TOML"),
    ],
)
def test_bad_files_name_the_key_path(tmp_path, text, where):
    with pytest.raises(ConfigError, match=where):
        load_config_file(_write(tmp_path, text))


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "nope.toml")


def test_a_field_whose_annotation_cannot_be_resolved_is_read_by_its_default(tmp_path):
    """A dataclass added by another module with a type-checking-only annotation still loads."""
    from dataclasses import dataclass, field

    from recsys.config_file import from_mapping

    @dataclass(frozen=True)
    class Inner:
        size: int = 1

    @dataclass(frozen=True)
    class Outer:
        inner: Inner = field(default_factory=Inner)
        hidden: NotImportedAnywhere = 3  # noqa: F821

    loaded = from_mapping(Outer, {"inner": {"size": 4}, "hidden": 5}, base=Outer())
    assert loaded.inner == Inner(4) and loaded.hidden == 5
