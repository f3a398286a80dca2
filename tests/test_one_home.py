"""Issue 15: one version of each job (statistics, JSON, sentences, validation)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from recsys.config import ConfigError
from recsys.evaluation import comparison as C
from recsys.evaluation.statistics import aggregate_seeds
from recsys.runs.runner import aggregate_seed_metrics
from recsys.serialization import jsonable
from recsys.validation import check_int, check_number


def test_standing_sentences_print_the_configured_confidence():
    a = pd.DataFrame({"ndcg": np.linspace(0.1, 0.5, 40)}, index=[f"u{i}" for i in range(40)])
    b = pd.DataFrame({"ndcg": np.linspace(0.0, 0.3, 40)}, index=a.index)
    paired = C.paired_differences({"hybrid": a, "pop": b}, "hybrid", ["pop"], ["ndcg"], n_boot=200,
                                  confidence=0.9, seed=1)
    (sentence,) = C.standing_sentences(paired, "ndcg", 10)
    assert "(90% CI [" in sentence
    assert "(80% CI [" in C.standing_sentences(paired, "ndcg", 10, confidence=0.8)[0]
    with pytest.raises(ValueError, match="confidence"):
        C.standing_sentences(pd.DataFrame(paired.to_dict("list")), "ndcg", 10)


def test_one_seed_gives_nan_std_in_both_tables():
    one = aggregate_seed_metrics({1: {"nb": {"a": 2.0}}})
    assert one.loc[0, "mean"] == 2.0 and math.isnan(one.loc[0, "std"]) and one.loc[0, "n_seeds"] == 1
    table = aggregate_seeds({1: pd.DataFrame({"model": ["m"], "metric": ["ndcg"], "mean": [0.2]})})
    assert math.isnan(table.loc[0, "std"])
    two = aggregate_seed_metrics({1: {"nb": {"a": 1.0}}, 2: {"nb": {"a": 3.0}}})
    assert two.loc[0, "std"] == pytest.approx(math.sqrt(2.0))


def test_jsonable_is_plain():
    out = jsonable({"a": np.int64(3), "b": np.float32(0.5), "c": (np.nan, np.inf), "d": pd.Timestamp("2024-01-02"),
                    "e": np.array([1, 2]), "f": np.bool_(True)})
    assert out == {"a": 3, "b": 0.5, "c": [None, None], "d": "2024-01-02T00:00:00Z", "e": [1, 2], "f": True}
    assert type(out["a"]) is int and type(out["f"]) is bool


@pytest.mark.parametrize("value", [0, -1, 2.0, True, "3", None])
def test_check_int_names_the_field(value):
    with pytest.raises(ConfigError, match=r"Owner\.field must be a positive int"):
        check_int("Owner", "field", value)


@pytest.mark.parametrize("value", [-0.1, math.nan, "x", True])
def test_check_number_names_the_field(value):
    with pytest.raises(ConfigError, match=r"Owner\.x must be a non-negative number"):
        check_number("Owner", "x", value, low=0)
    assert check_number("Owner", "x", 0.5, low=0, high=1) == 0.5
