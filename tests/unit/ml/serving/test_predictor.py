"""One-row predictions through LightGBM's single-row fast path: the same numbers as Booster.predict."""

from __future__ import annotations

import math

import lightgbm as lgb
import numpy as np
import pytest

from shopops.ml.serving.predictor import RowPredictor


def _booster(objective: str, seed: int = 7) -> lgb.Booster:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, 6))
    y = (
        (x[:, 0] + 0.5 * x[:, 1] * x[:, 2] > 0).astype(float)
        if objective == "binary"
        else x[:, 0] * 3 + x[:, 3]
    )
    params = {"objective": objective, "num_leaves": 15, "verbose": -1, "seed": seed, "num_threads": 1}
    return lgb.train(params, lgb.Dataset(x, y), num_boost_round=40)


def _rows(n: int = 50) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [np.ascontiguousarray(rng.normal(size=6)) for _ in range(n)]


def test_contributions_are_booster_predict_contrib_and_sum_to_the_score() -> None:
    booster = _booster("binary")
    predictor = RowPredictor(booster, contrib=True)
    assert predictor.fast
    for row in _rows():
        contrib = predictor.predict(row)
        expected = booster.predict(row.reshape(1, -1), pred_contrib=True, num_threads=1)[0]
        assert np.array_equal(contrib, expected)  # bit for bit
        # One call gives both: the sum is the log-odds of what predict() answers.
        score = 1.0 / (1.0 + math.exp(-float(contrib.sum())))
        assert score == pytest.approx(float(booster.predict(row.reshape(1, -1))[0]), rel=1e-12)


def test_plain_predictions_are_booster_predict() -> None:
    booster = _booster("regression")
    predictor = RowPredictor(booster)
    for row in _rows():
        got = predictor.predict(row)
        assert got.shape == (1,)
        assert np.array_equal(got, booster.predict(row.reshape(1, -1), num_threads=1))


def test_a_closed_predictor_falls_back_to_booster_predict() -> None:
    booster = _booster("binary")
    predictor = RowPredictor(booster, contrib=True)
    row = _rows(1)[0]
    before = predictor.predict(row)
    predictor.close()
    predictor.close()  # idempotent
    assert not predictor.fast
    assert np.array_equal(predictor.predict(row), before)


def test_a_row_of_the_wrong_shape_or_type_is_refused() -> None:
    predictor = RowPredictor(_booster("binary"), contrib=True)
    with pytest.raises(ValueError, match="contiguous float64 row of 6 features"):
        predictor.predict(np.zeros(5))
    with pytest.raises(ValueError, match="contiguous float64 row of 6 features"):
        predictor.predict(np.zeros(6, dtype=np.float32))
    with pytest.raises(ValueError, match="contiguous float64 row of 6 features"):
        predictor.predict(np.zeros((6, 2))[:, 0])  # a strided view
