"""The use cases: names, truth bounds, consistent quantiles."""

from __future__ import annotations

import numpy as np
import pytest

from shopops.core.errors import InvalidInputError
from shopops.ml.training.service import truth_ok
from shopops.ml.training.usecase import get_use_case


def test_truth_bounds_are_a_floor_for_fraud_and_a_ceiling_for_eta() -> None:
    fraud, eta = get_use_case("fraud"), get_use_case("eta")
    assert truth_ok(fraud, 0.9)
    assert not truth_ok(fraud, 0.89)
    assert truth_ok(eta, 1.15)
    assert not truth_ok(eta, 1.16)
    assert not truth_ok(fraud, float("nan"))


def test_eta_never_serves_a_p90_below_its_p50() -> None:
    eta = get_use_case("eta")
    out = eta.consistent({"p50": np.array([10.0, 20.0]), "p90": np.array([15.0, 18.0])})
    assert out["p90"].tolist() == [15.0, 20.0]


def test_unknown_use_case() -> None:
    with pytest.raises(InvalidInputError, match="unknown use case 'churn'"):
        get_use_case("churn")
