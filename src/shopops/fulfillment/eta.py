"""The ETA use case: P50 and P90 delivery hours of a shipment, judged by MAE and P90 coverage."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from shopops.ml.training.model import coverage, mae, ratio
from shopops.ml.training.usecase import UseCase, lgb_base

#: The quantiles served, by output name.
QUANTILES = {"p50": 0.5, "p90": 0.9}


class EtaUseCase(UseCase):
    """Two quantile regressions of log delivery hours (a quantile survives the log transform).

    Delivery times are log-normal by carrier and route, so the log makes the noise additive and the
    trees' leaves comparable across routes; P50 minimises absolute error, P90 is the promise a
    customer can be given nine times in ten.
    """

    name = "eta"
    primary_metric = "mae"
    higher_is_better = False
    outputs = ("p50", "p90")
    truth_ratio_metric = "mae_ratio"
    truth_ratio_bound = 1.15
    intended_use = (
        "Predict when a shipment will be delivered, from its creation: P50 (the most likely "
        "delivery time) for operations and P90 (met nine times in ten) for what customers are promised; "
        "a notification goes out when a shipment is past its P90."
    )
    limitations = (
        "Trained on a simulated company. Carrier disruptions (a few percent of shipments take two to "
        "three times longer) cannot be seen at shipment creation, so their MAE is large; shipments "
        "still in transit when the data was cut are not in the training set (the label is not known yet)."
    )

    def default_params(self) -> dict[str, Any]:
        return {
            "learning_rate": 0.05,
            "num_leaves": 15,
            "min_data_in_leaf": 20,
            "feature_fraction": 1.0,
            "lambda_l2": 1.0,
            "num_boost_round": 200,
        }

    def search_space(self) -> dict[str, list[Any]]:
        return {
            "learning_rate": [0.03, 0.05, 0.1],
            "num_leaves": [7, 15, 31],
            "min_data_in_leaf": [10, 20, 40],
            "feature_fraction": [0.8, 1.0],
            "lambda_l2": [0.0, 1.0, 5.0],
            "num_boost_round": [100, 200, 400],
        }

    def fit(
        self,
        train: pd.DataFrame,
        features: list[str],
        label: str,
        params: dict[str, Any],
    ) -> dict[str, Any]:
        import lightgbm as lgb

        boosters: dict[str, Any] = {}
        x = train[features].to_numpy(dtype=float)
        y = np.log(train[label].to_numpy(dtype=float))
        for output, alpha in QUANTILES.items():
            config = {
                **lgb_base(params),
                "objective": "quantile",
                "alpha": alpha,
                "learning_rate": float(params["learning_rate"]),
                "num_leaves": int(params["num_leaves"]),
                "min_data_in_leaf": int(params["min_data_in_leaf"]),
                "feature_fraction": float(params["feature_fraction"]),
                "lambda_l2": float(params["lambda_l2"]),
            }
            dtrain = lgb.Dataset(x, y, feature_name=features)
            boosters[output] = lgb.train(config, dtrain, num_boost_round=int(params["num_boost_round"]))
        return boosters

    def transform(self, output: str, raw: np.ndarray) -> np.ndarray:
        hours: np.ndarray = np.exp(raw)
        return hours

    def consistent(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Two separately fitted quantiles can cross on sparse lanes; a P90 below the P50 is never served.
        return {**outputs, "p90": np.maximum(outputs["p90"], outputs["p50"])}

    def evaluate(
        self, predictions: dict[str, np.ndarray], frame: pd.DataFrame, label: str, truth: str | None
    ) -> dict[str, float]:
        y = frame[label].to_numpy(dtype=float)
        metrics = {
            "mae": mae(y, predictions["p50"]),
            "p90_coverage": coverage(y, predictions["p90"]),
            "rows": float(len(y)),
        }
        if truth is not None:
            metrics["truth_mae"] = mae(y, frame[truth].to_numpy(dtype=float))
            metrics["mae_ratio"] = ratio(metrics["mae"], metrics["truth_mae"])
        return metrics


#: Route classes a shipment can travel.
ROUTES = ("same_city", "domestic", "remote")
