"""Pure pieces of training and evaluation: splits, metrics, drift profiles. No I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Split:
    """Rows in event-time order: fit on ``train``, stop early on ``validation``, score on ``holdout``."""

    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame


def time_split(frame: pd.DataFrame, holdout_fraction: float, validation_fraction: float = 0.2) -> Split:
    """The newest ``holdout_fraction`` of the rows is the holdout; the newest ``validation_fraction``
    of the rest validates. By time, never at random: a model is always scored on its future."""
    ordered = frame.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    n = len(ordered)
    cut = round(n * (1.0 - holdout_fraction))
    val_cut = round(cut * (1.0 - validation_fraction))
    return Split(ordered.iloc[:val_cut], ordered.iloc[val_cut:cut], ordered.iloc[cut:])


def pr_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the precision-recall curve (average precision); NaN without positives."""
    from sklearn.metrics import average_precision_score

    y = np.asarray(y)
    if y.sum() == 0:
        return float("nan")
    return float(average_precision_score(y, score))


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    if y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, score))


def mae(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(y, dtype=float) - np.asarray(pred, dtype=float))))


def coverage(y: np.ndarray, upper: np.ndarray) -> float:
    """Share of outcomes at or below their predicted upper quantile."""
    return float(np.mean(np.asarray(y, dtype=float) <= np.asarray(upper, dtype=float)))


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline and not math.isnan(baseline) else float("nan")


@dataclass
class Evaluation:
    """A model's scores on one holdout: overall, per region, and the primary metric it is judged by."""

    primary: str
    higher_is_better: bool
    metrics: dict[str, float]
    per_region: dict[str, dict[str, float]] = field(default_factory=dict)
    rows_per_region: dict[str, int] = field(default_factory=dict)

    @property
    def value(self) -> float:
        return self.metrics[self.primary]

    def better_score(self, metrics: dict[str, float] | None = None) -> float:
        """The primary metric as "higher is better" (MAE is negated), as policies compare it."""
        value = (metrics or self.metrics)[self.primary]
        return value if self.higher_is_better else -value

    def to_dict(self) -> dict[str, Any]:
        return {
            "primary": self.primary,
            "higher_is_better": self.higher_is_better,
            "metrics": self.metrics,
            "per_region": self.per_region,
            "rows_per_region": self.rows_per_region,
        }


# --- SHAP and drift profiles ----------------------------------------------------------------------


def shap_summary(contrib: np.ndarray, features: list[str]) -> list[dict[str, Any]]:
    """Mean |SHAP| and mean SHAP per feature (``contrib`` has one column per feature, then the bias),
    most important first."""
    values = contrib[:, : len(features)]
    rows: list[dict[str, Any]] = [
        {
            "feature": name,
            "mean_abs": float(np.mean(np.abs(values[:, i]))),
            "mean": float(np.mean(values[:, i])),
        }
        for i, name in enumerate(features)
    ]
    return sorted(rows, key=lambda r: (-float(r["mean_abs"]), str(r["feature"])))


def profile(frame: pd.DataFrame, features: list[str], bins: int = 10) -> dict[str, dict[str, Any]]:
    """Per feature: quantile bin edges of its values and the share of rows in each bin (and missing).

    The reference a later sample is compared with by :func:`psi`.
    """
    out: dict[str, dict[str, Any]] = {}
    for name in features:
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
        present = values[~np.isnan(values)]
        edges = (
            np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
            if len(present)
            else np.array([])
        )
        counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
        total = max(len(values), 1)
        out[name] = {
            "edges": edges.tolist(),
            "shares": (counts / total).tolist(),
            "missing": float(np.isnan(values).sum() / total),
            "median": float(np.median(present)) if len(present) else 0.0,
        }
    return out


def psi(reference: dict[str, Any], values: np.ndarray) -> float:
    """Population stability index of ``values`` against a :func:`profile` entry (missing is a bin).

    Rule of thumb: below 0.1 stable, 0.1-0.25 moderate shift, above 0.25 a shift to act on.
    """
    values = np.asarray(values, dtype=float)
    edges = np.asarray(reference["edges"], dtype=float)
    present = values[~np.isnan(values)]
    total = max(len(values), 1)
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    expected = np.append(np.asarray(reference["shares"], dtype=float), reference["missing"])
    actual = np.append(counts / total, np.isnan(values).sum() / total)
    eps = 1e-4  # an empty bin on either side would make the index infinite
    expected = np.clip(expected, eps, None)
    actual = np.clip(actual, eps, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))
