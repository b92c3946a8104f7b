"""Pure training pieces: time splits, metrics, drift profiles, search sampling, truth bounds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shopops.ml.training.model import coverage, mae, pr_auc, profile, psi, ratio, shap_summary, time_split
from shopops.ml.training.tuning import sample_configs


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    stamps = pd.to_datetime(rng.permutation(n), unit="h", utc=True)
    return pd.DataFrame({"event_timestamp": stamps, "x": rng.normal(size=n)})


def test_time_split_holds_out_the_newest_rows() -> None:
    split = time_split(_frame(1000), holdout_fraction=0.3, validation_fraction=0.2)
    assert (len(split.train), len(split.validation), len(split.holdout)) == (560, 140, 300)
    assert split.train["event_timestamp"].max() < split.validation["event_timestamp"].min()
    assert split.validation["event_timestamp"].max() < split.holdout["event_timestamp"].min()


def test_metrics() -> None:
    y = np.array([0, 0, 1, 1])
    assert pr_auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == pytest.approx(1.0)
    assert math.isnan(pr_auc(np.zeros(4), np.ones(4)))
    assert mae(np.array([1.0, 3.0]), np.array([2.0, 2.0])) == 1.0
    assert coverage(np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 2.0, 2.0])) == 0.5
    assert ratio(0.45, 0.5) == pytest.approx(0.9)
    assert math.isnan(ratio(1.0, 0.0))


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(1)
    reference = profile(pd.DataFrame({"f": rng.normal(size=5000)}), ["f"])["f"]
    assert psi(reference, rng.normal(size=5000)) < 0.02
    assert psi(reference, rng.normal(loc=1.5, size=5000)) > 0.25
    # Missing values are a bin of their own: a feature that goes missing has drifted.
    holes = rng.normal(size=5000)
    holes[:2500] = np.nan
    assert psi(reference, holes) > 0.25
    assert reference["median"] == pytest.approx(0.0, abs=0.1)


def test_search_samples_distinct_configurations_from_the_seed() -> None:
    space = {"a": [1, 2, 3], "b": ["x", "y"]}
    first = sample_configs(space, 4, seed=9)
    assert first == sample_configs(space, 4, seed=9)
    assert len({tuple(sorted(c.items())) for c in first}) == 4
    assert len(sample_configs(space, 100, seed=1)) == 6  # never more than the space holds


def test_shap_summary_orders_by_mean_absolute_contribution() -> None:
    contrib = np.array([[0.1, -2.0, 0.5], [0.3, 1.0, 0.5]])  # two features, then the bias
    rows = shap_summary(contrib, ["a", "b"])
    assert [r["feature"] for r in rows] == ["b", "a"]
    assert rows[0]["mean_abs"] == pytest.approx(1.5)
    assert rows[0]["mean"] == pytest.approx(-0.5)
