"""Configuration: SPEC tables as defaults, invalid values raise ConfigError naming the field."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from recsys.config import (
    CATEGORIES,
    DEFAULT_CONFIG,
    AgeGroupConfig,
    ConfigError,
    DealConfig,
    FusionWeights,
    InteractionWeights,
    RecsysConfig,
    RegionConfig,
    SeasonCalendar,
    SpendingTierConfig,
)


def test_defaults_reproduce_spec_tables() -> None:
    cfg = DEFAULT_CONFIG
    assert len(CATEGORIES) == 10
    assert cfg.region_names == ("EU", "NA", "Asia", "Other")
    assert [(r.price_sensitivity, r.avg_discount) for r in cfg.regions] == [
        (0.7, 0.15), (0.5, 0.20), (0.8, 0.25), (0.6, 0.18)]
    assert cfg.region("NA").categories == ("Electronics", "Sports", "Automotive", "Books", "Gaming")
    assert [(g.deal_preference, g.price_sensitivity) for g in cfg.age_groups] == [
        (0.30, 0.9), (0.20, 0.6), (0.15, 0.4), (0.10, 0.3)]
    assert cfg.fusion.as_dict() == {"knn": 0.4, "svd": 0.3, "content": 0.2, "demographic": 0.1}
    assert (cfg.deals.min_discount, cfg.deals.max_discount, cfg.deals.seasonal_factor) == (0.05, 0.5, 1.2)
    assert (cfg.deals.min_deals, cfg.deals.max_deals) == (3, 7)


def test_seasonal_boosts_follow_spec() -> None:
    cfg = DEFAULT_CONFIG
    assert {"Books", "Home & Garden"} <= set(cfg.boosted_categories("EU", "winter"))
    assert {"Travel", "Fashion"} <= set(cfg.boosted_categories("EU", "summer"))
    assert {"Electronics", "Gaming"} <= set(cfg.boosted_categories("NA", "winter"))
    assert {"Sports", "Automotive"} <= set(cfg.boosted_categories("NA", "summer"))
    assert {"Beauty", "Fashion"} <= set(cfg.boosted_categories("Asia", "winter"))
    assert {"Electronics", "Gaming"} <= set(cfg.boosted_categories("Asia", "summer"))
    assert set(cfg.region("EU").categories) <= set(cfg.boosted_categories("EU", "spring"))  # general boost
    assert "Books" in cfg.boosted_categories("Other", "autumn")  # back to school
    assert not cfg.is_seasonal("Travel", "EU", "winter")
    assert cfg.seasons.season_of(7) == "summer" and cfg.seasons.season_of(12) == "winter"


def test_age_groups_cover_the_data_model_range() -> None:
    ages = pd.Series([13, 25, 26, 40, 41, 55, 56, 110, float("nan")])
    assert list(DEFAULT_CONFIG.age_groups_of(ages)) == [
        "young", "young", "adult", "adult", "middle", "middle", "senior", "senior", "unknown"]
    assert DEFAULT_CONFIG.age_group_of(30) == "adult"


def test_fusion_weights_must_sum_to_one() -> None:
    with pytest.raises(ConfigError, match=r"FusionWeights must sum to 1, got 1\.100000"):
        FusionWeights(knn=0.5)
    with pytest.raises(ConfigError, match=r"FusionWeights\.svd must be a non-negative number, got -0\.1"):
        FusionWeights(knn=0.8, svd=-0.1)
    assert FusionWeights(0.25, 0.25, 0.25, 0.25).knn == 0.25


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"min_discount": -0.1}, r"DealConfig\.min_discount must be a number in \[0\.0, 1\.0\], got -0\.1"),
     ({"max_discount": 1.5}, r"DealConfig\.max_discount must be a number in \[0\.0, 1\.0\], got 1\.5"),
     ({"min_discount": 0.6}, r"DealConfig\.min_discount 0\.6 > max_discount 0\.5"),
     ({"seasonal_factor": 0.9}, r"seasonal_factor must be a number >= 1"),
     ({"min_deals": 8}, r"min_deals <= max_deals"),
     ({"expiry_min_days": 0}, r"expiry_min_days"),
     ({"rate_limit_requests": 0}, r"rate_limit_requests")],
)
def test_deal_bounds(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DealConfig(**changes)


def test_unknown_region_and_category() -> None:
    with pytest.raises(ConfigError, match=r"unknown region 'Mars'; known: \['EU', 'NA', 'Asia', 'Other'\]"):
        DEFAULT_CONFIG.region("Mars")
    bad = RegionConfig("Africa", ("Books", "Toys"), 0.6, 0.2)
    with pytest.raises(ConfigError, match=r"RegionConfig\('Africa'\)\.categories has unknown categories \['Toys'\]"):
        DEFAULT_CONFIG.with_region(bad)
    boost = RegionConfig("Africa", ("Books",), 0.6, 0.2, {"summer": ("Pets",)})
    with pytest.raises(ConfigError, match=r"seasonal_boosts\['summer'\] has unknown categories \['Pets'\]"):
        DEFAULT_CONFIG.with_region(boost)
    with pytest.raises(ConfigError, match=r"unknown seasons \['monsoon'\]"):
        RegionConfig("Africa", ("Books",), 0.6, 0.2, {"monsoon": ("Books",)})
    with pytest.raises(ConfigError, match=r"AgeGroupConfig\('kids'\)\.categories has unknown categories \['Toys'\]"):
        DEFAULT_CONFIG.replace(age_groups=(AgeGroupConfig("kids", 13, 110, ("Toys",), 0.1, 0.5),))
    with pytest.raises(ConfigError, match="unknown age group 'teen'"):
        DEFAULT_CONFIG.age_group("teen")
    with pytest.raises(ConfigError, match="unknown spending tier 'vip'"):
        DEFAULT_CONFIG.spending_tier("vip")


@pytest.mark.parametrize(
    ("build", "message"),
    [(lambda: RegionConfig("EU", ("Books",), 1.2, 0.1), r"RegionConfig\('EU'\)\.price_sensitivity .* got 1\.2"),
     (lambda: RegionConfig("EU", ("Books",), 0.5, -0.1), r"avg_discount .* got -0\.1"),
     (lambda: RegionConfig("", ("Books",), 0.5, 0.1), "name must be a non-empty string"),
     (lambda: AgeGroupConfig("x", 50, 40, ("Books",), 0.1, 0.5), "min_age 50 > max_age 40"),
     (lambda: SpendingTierConfig("x", 1.5), r"max_price_quantile"),
     (lambda: SeasonCalendar(month_to_season={1: "winter"}), "must map months 1..12"),
     (lambda: InteractionWeights(view=5.0), "view <= favorite <= cart <= purchase"),
     (lambda: InteractionWeights(half_life_days=0), "half_life_days must be a number > 0"),
     (lambda: DEFAULT_CONFIG.replace(regions=DEFAULT_CONFIG.regions + DEFAULT_CONFIG.regions[:1]),
      "regions has duplicate names"),
     (lambda: DEFAULT_CONFIG.replace(age_groups=(AgeGroupConfig("a", 13, 30, ("Books",), 0.1, 0.5),
                                                 AgeGroupConfig("b", 30, 110, ("Books",), 0.1, 0.5))),
      "age_groups overlap")],
)
def test_invalid_values_raise(build, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()


def test_adding_a_region_is_one_entry_and_config_is_frozen() -> None:
    africa = RegionConfig("Africa", ("Books", "Health"), 0.75, 0.22, {"summer": ("Health",)})
    cfg = DEFAULT_CONFIG.with_region(africa)
    assert cfg.region_names[-1] == "Africa"
    assert "Health" in cfg.boosted_categories("Africa", "summer")
    assert DEFAULT_CONFIG.region_names == ("EU", "NA", "Asia", "Other")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.fusion = FusionWeights()  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.region("EU").seasonal_boosts["winter"] = ("Travel",)  # type: ignore[index]
    assert isinstance(cfg, RecsysConfig)
