"""The fraud use case: a LightGBM classifier of orders, judged by PR-AUC against the simulator's truth."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from shopops.ml.training.model import pr_auc, ratio, roc_auc
from shopops.ml.training.usecase import UseCase, lgb_base


class FraudUseCase(UseCase):
    """Gradient-boosted trees on point-in-time order features; the label is the simulator's fraud flag.

    Fraud is rare (a few percent of orders): positives are up-weighted by ``scale_pos_weight``
    (by default the square root of the negative-to-positive ratio, a compromise between no
    weighting and full balancing that keeps the scores usable as probabilities' ranks).
    """

    name = "fraud"
    primary_metric = "pr_auc"
    higher_is_better = True
    outputs = ("score",)
    truth_ratio_metric = "pr_auc_ratio"
    truth_ratio_bound = 0.9
    intended_use = (
        "Score an order at checkout for the risk that it is fraudulent (it will be charged back); "
        "high scores are held for review, never declined without a person. The reasons are the "
        "features that pushed the score up most (exact TreeSHAP contributions)."
    )
    limitations = (
        "Trained on a simulated company: fraud rings sharing devices, cards and addresses, and a "
        "logistic background rate. New kinds of fraud that leave none of these traces are not "
        "detected. Labels come from chargebacks, which arrive weeks late: the newest orders' labels "
        "are incomplete. Scores are ranks, not calibrated probabilities."
    )

    def default_params(self) -> dict[str, Any]:
        return {
            # Shallow, slow and regularised: a few hundred positives, and most of the signal is in
            # a handful of thresholds (account age, shared devices and cards, basket size, hour).
            "learning_rate": 0.02,
            "num_leaves": 4,
            "min_data_in_leaf": 20,
            "feature_fraction": 1.0,
            "bagging_fraction": 1.0,
            "lambda_l2": 5.0,
            "num_boost_round": 200,
            "pos_weight_power": 0.5,
        }

    def search_space(self) -> dict[str, list[Any]]:
        return {
            "learning_rate": [0.02, 0.05, 0.1],
            "num_leaves": [4, 7, 15],
            "min_data_in_leaf": [20, 30, 50],
            "feature_fraction": [0.7, 0.9, 1.0],
            "bagging_fraction": [0.8, 1.0],
            "lambda_l2": [0.0, 1.0, 5.0],
            "num_boost_round": [100, 200, 400],
            "pos_weight_power": [0.0, 0.5, 1.0],
        }

    def fit(
        self,
        train: pd.DataFrame,
        features: list[str],
        label: str,
        params: dict[str, Any],
    ) -> dict[str, Any]:
        import lightgbm as lgb

        y = train[label].to_numpy(dtype=float)
        positives = max(float(y.sum()), 1.0)
        imbalance = (len(y) - positives) / positives
        config = {
            **lgb_base(params),
            "objective": "binary",
            "learning_rate": float(params["learning_rate"]),
            "num_leaves": int(params["num_leaves"]),
            "min_data_in_leaf": int(params["min_data_in_leaf"]),
            "feature_fraction": float(params["feature_fraction"]),
            "bagging_fraction": float(params.get("bagging_fraction", 0.9)),
            "bagging_freq": 1 if float(params.get("bagging_fraction", 0.9)) < 1 else 0,
            "lambda_l2": float(params["lambda_l2"]),
            "scale_pos_weight": math.pow(imbalance, float(params["pos_weight_power"])),
            "extra_trees": bool(params.get("extra_trees", False)),
        }
        dtrain = lgb.Dataset(train[features].to_numpy(dtype=float), y, feature_name=features)
        booster = lgb.train(config, dtrain, num_boost_round=int(params["num_boost_round"]))
        return {"score": booster}

    def transform(self, output: str, raw: np.ndarray) -> np.ndarray:
        return raw

    def evaluate(
        self, predictions: dict[str, np.ndarray], frame: pd.DataFrame, label: str, truth: str | None
    ) -> dict[str, float]:
        y = frame[label].to_numpy(dtype=int)
        score = predictions["score"]
        metrics = {
            "pr_auc": pr_auc(y, score),
            "roc_auc": roc_auc(y, score),
            "positives": float(y.sum()),
            "rows": float(len(y)),
        }
        if truth is not None:
            truth_p = frame[truth].to_numpy(dtype=float)
            metrics["truth_pr_auc"] = pr_auc(y, truth_p)
            metrics["pr_auc_ratio"] = ratio(metrics["pr_auc"], metrics["truth_pr_auc"])
        return metrics
