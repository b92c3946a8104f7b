"""Loading a registered version for scoring: its native LightGBM boosters, checked against features.

A version's run holds ``model/`` (the MLflow model, with its signature) and ``shopops/`` (the
boosters as LightGBM text, metadata: features in order, defaults, the training profile). Both are
downloaded once per version into a local cache; serving then predicts a NumPy row through
LightGBM's single-row fast path (:mod:`~shopops.ml.serving.predictor`, ~0.1 ms) instead of a pyfunc
(~milliseconds).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from shopops.core.errors import ConflictError
from shopops.ml.serving.predictor import RowPredictor
from shopops.ml.tracking.service import Tracking
from shopops.ml.training.service import HOLDOUT, META_DIR, METADATA, MODEL_DIR
from shopops.ml.training.usecase import UseCase, get_use_case


class SignatureMismatchError(ConflictError):
    """A model's signature does not match the features it would be served: it is not loaded."""

    code = "signature_mismatch"


@dataclass
class LoadedModel:
    """A version ready to score: boosters, the feature order, the defaults of missing features."""

    name: str
    version: int
    run_id: str
    use_case: UseCase
    features: list[str]
    boosters: dict[str, Any]
    defaults: np.ndarray
    metadata: dict[str, Any]
    path: Path
    #: Per output: one-row predictions, and one-row SHAP contributions (the reasons).
    predictors: dict[str, RowPredictor] = field(default_factory=dict)
    contributions: dict[str, RowPredictor] = field(default_factory=dict)

    @property
    def default_map(self) -> dict[str, float]:
        return dict(zip(self.features, self.defaults.tolist(), strict=True))

    def holdout_path(self) -> Path:
        return self.path / META_DIR / HOLDOUT


def signature_inputs(model_dir: Path) -> list[str]:
    """Input column names of an MLflow model's signature (``[]`` when it has none)."""
    from mlflow.models import Model

    signature = Model.load(str(model_dir / "MLmodel")).signature
    if signature is None or signature.inputs is None:
        return []
    return [str(n) for n in signature.inputs.input_names()]


def mismatch(expected: list[str], actual: list[str]) -> str | None:
    """Why two feature lists differ (missing, unexpected, order), or ``None`` if they are equal."""
    if expected == actual:
        return None
    missing = [f for f in expected if f not in actual]
    extra = [f for f in actual if f not in expected]
    parts = []
    if missing:
        parts.append(f"lacks {', '.join(missing)}")
    if extra:
        parts.append(f"expects {', '.join(extra)} which the features do not provide")
    if not parts:
        parts.append("has the same features in another order")
    return "; ".join(parts)


def fetch(tracking: Tracking, run_id: str, cache_dir: Path) -> Path:
    """The run's ``shopops/`` and ``model/MLmodel`` artifacts in the local cache (downloaded once)."""
    final = cache_dir / run_id
    if (final / ".complete").exists():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{run_id}-", dir=cache_dir))
    try:
        tracking.download(run_id, META_DIR, staging)
        # A single file lands directly in the folder given: keep it where the model's folder would be.
        tracking.download(run_id, f"{MODEL_DIR}/MLmodel", staging / MODEL_DIR)
        (staging / ".complete").touch()
        try:
            os.replace(staging, final)  # atomic: a reader sees all of it or nothing
        except OSError:
            if not (final / ".complete").exists():  # a half-written leftover from a crash
                shutil.rmtree(final, ignore_errors=True)
                os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def load_model(
    tracking: Tracking,
    name: str,
    version: int,
    cache_dir: Path,
    *,
    expected_features: list[str] | None = None,
) -> LoadedModel:
    """Load ``name`` v``version``; refuse with the reason if its signature does not match the
    features (``expected_features``: what the feature service will hand it, in order)."""
    import lightgbm as lgb

    info = tracking.version(name, version)
    path = fetch(tracking, info.run_id, cache_dir)
    meta: dict[str, Any] = orjson.loads((path / META_DIR / METADATA).read_bytes())
    features = [str(f) for f in meta["features"]]
    signed = signature_inputs(path / MODEL_DIR)
    problem = mismatch(features, signed) if signed else "has no signature"
    if problem is None and expected_features is not None:
        problem = mismatch(list(expected_features), features)
    boosters = {
        output: lgb.Booster(model_file=str(path / META_DIR / "boosters" / f"{output}.txt"))
        for output in meta["outputs"]
    }
    if problem is None:
        for output, booster in boosters.items():
            problem = mismatch(features, list(booster.feature_name()))
            if problem:
                problem = f"booster {output} {problem}"
                break
    if problem is not None:
        raise SignatureMismatchError(
            f"{name} v{version} refused to load: its signature {problem}",
            hint="retrain the model on the current features (`shopops train "
            f"{meta.get('use_case', name)}`) or roll the champion back (`shopops models rollback {name}`)",
            expected=list(expected_features or features),
            signature=signed,
        )
    defaults = np.array([float(meta["defaults"].get(f, 0.0)) for f in features], dtype=float)
    return LoadedModel(
        name=name,
        version=version,
        run_id=info.run_id,
        use_case=get_use_case(str(meta["use_case"])),
        features=features,
        boosters=boosters,
        defaults=defaults,
        metadata=meta,
        path=path,
        predictors={output: RowPredictor(b) for output, b in boosters.items()},
        contributions={output: RowPredictor(b, contrib=True) for output, b in boosters.items()},
    )
