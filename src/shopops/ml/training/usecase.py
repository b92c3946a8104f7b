"""What a use case tells the training pipeline: its objective, search space, scores and outputs.

The pipeline (:mod:`shopops.ml.training.service`) is the same for every model; a use case
(``shopops.fraud.model``, ``shopops.fulfillment.eta``) says how to fit LightGBM boosters for its
label, how to turn their raw outputs into predictions, and how it is scored, including against the
simulator's truth.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import pandas as pd

from shopops.core.errors import InvalidInputError
from shopops.ml.training.model import Evaluation

#: Use case -> ``module:Class`` (imported on use: LightGBM is not needed to list them).
USE_CASE_CLASSES = {
    "fraud": "shopops.fraud.model:FraudUseCase",
    "eta": "shopops.fulfillment.eta:EtaUseCase",
}


class UseCase(ABC):
    """A model family trained by the shared pipeline."""

    #: ``fraud`` | ``eta``: also the registered model's name and the feature service's use case.
    name: str
    #: Metric promotion compares, and whether higher is better.
    primary_metric: str
    higher_is_better: bool
    #: Names of the boosters one model is made of (e.g. ``("score",)`` or ``("p50", "p90")``).
    outputs: tuple[str, ...]
    #: The metric of the truth comparison (candidate / truth), and its bound (a floor or ceiling).
    truth_ratio_metric: str
    truth_ratio_bound: float
    #: Model card prose.
    intended_use: str
    limitations: str

    @abstractmethod
    def default_params(self) -> dict[str, Any]:
        """LightGBM parameters used without ``--tune``."""

    @abstractmethod
    def search_space(self) -> dict[str, list[Any]]:
        """Values ``--tune`` samples from, per parameter."""

    @abstractmethod
    def fit(
        self,
        train: pd.DataFrame,
        features: list[str],
        label: str,
        params: dict[str, Any],
    ) -> dict[str, Any]:
        """Fit the boosters (LightGBM ``Booster`` per output name); ``params`` carry seed and threads.

        A fixed number of rounds, no early stopping: with a few dozen positives a validation
        slice is too noisy to stop on (it stops after a handful of trees); the number of rounds is
        a searched parameter instead."""

    @abstractmethod
    def transform(self, output: str, raw: np.ndarray) -> np.ndarray:
        """A booster's raw output as the prediction served (e.g. hours from log-hours)."""

    @abstractmethod
    def evaluate(
        self, predictions: dict[str, np.ndarray], frame: pd.DataFrame, label: str, truth: str | None
    ) -> dict[str, float]:
        """Metrics of ``predictions`` on ``frame``; with ``truth``, the truth's own score and the ratio."""

    def validation_score(self, predictions: dict[str, np.ndarray], frame: pd.DataFrame, label: str) -> float:
        """What tuning maximises (the primary metric, negated when lower is better)."""
        value = self.evaluate(predictions, frame, label, None)[self.primary_metric]
        return value if self.higher_is_better else -value

    def region_metric(
        self, predictions: dict[str, np.ndarray], frame: pd.DataFrame, label: str
    ) -> dict[str, float]:
        """The primary metric per region (the regions gate compares these)."""
        out: dict[str, float] = {}
        regions = frame["region"].to_numpy()
        for region in sorted(set(regions.tolist())):
            mask = regions == region
            part = {k: v[mask] for k, v in predictions.items()}
            out[str(region)] = self.evaluate(part, frame[mask], label, None)[self.primary_metric]
        return out

    def consistent(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs made mutually consistent (e.g. quantiles that must not cross); by default as is."""
        return outputs

    def predict(
        self, boosters: dict[str, Any], frame: pd.DataFrame, features: list[str]
    ) -> dict[str, np.ndarray]:
        matrix = frame[features].to_numpy(dtype=float)
        return self.consistent(
            {name: self.transform(name, booster.predict(matrix)) for name, booster in boosters.items()}
        )

    def evaluation(
        self,
        boosters: dict[str, Any],
        frame: pd.DataFrame,
        features: list[str],
        label: str,
        truth: str | None,
    ) -> Evaluation:
        predictions = self.predict(boosters, frame, features)
        metrics = self.evaluate(predictions, frame, label, truth)
        per_region: dict[str, dict[str, float]] = {}
        rows: dict[str, int] = {}
        regions = frame["region"].to_numpy()
        for region in sorted(set(regions.tolist())):
            mask = regions == region
            part = {k: v[mask] for k, v in predictions.items()}
            per_region[str(region)] = self.evaluate(part, frame[mask], label, truth)
            rows[str(region)] = int(mask.sum())
        return Evaluation(self.primary_metric, self.higher_is_better, metrics, per_region, rows)


def get_use_case(name: str) -> UseCase:
    """The use case called ``name``; an unknown one is refused with the known ones."""
    target = USE_CASE_CLASSES.get(name)
    if target is None:
        raise InvalidInputError(
            f"unknown use case {name!r}", hint=f"use one of {', '.join(sorted(USE_CASE_CLASSES))}"
        )
    module, _, cls = target.partition(":")
    use_case: UseCase = getattr(importlib.import_module(module), cls)()
    return use_case


def lgb_base(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters every fit shares: the same seed and threads give the same model, bit for bit."""
    seed = int(params.get("seed", 42))
    return {
        "verbosity": -1,
        "seed": seed,
        "bagging_seed": seed,
        "feature_fraction_seed": seed,
        "data_random_seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": int(params.get("num_threads", 2)),
    }
