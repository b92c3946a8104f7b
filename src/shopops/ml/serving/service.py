"""Online scoring: online features → champion booster → prediction (and reasons), logged.

The hot path holds no MLflow and no pandas: the champion of each use case is a :class:`LoadedModel`
(native LightGBM boosters) in a slot that a background thread swaps atomically when the registry's
``champion`` alias moves. Fraud reasons are the largest positive SHAP contributions, computed by
LightGBM itself (exact TreeSHAP, one single-row call whose sum is also the score's log-odds).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from shopops.core.errors import BackendUnavailableError, InvalidInputError, NotFoundError
from shopops.core.logging import get_logger
from shopops.ml.serving.loader import LoadedModel, SignatureMismatchError, load_model
from shopops.ml.serving.predlog import Prediction, PredictionLog
from shopops.ml.tracking.service import CHAMPION, Tracking

log = get_logger(__name__)

PREDICTIONS = Counter("shopops_ml_predictions_total", "Predictions served", ["use_case", "version"])
DEFAULTED = Counter(
    "shopops_ml_feature_defaults_total", "Features served with their default (no online value)", ["use_case"]
)
LATENCY = Histogram(
    "shopops_ml_predict_seconds",
    "Time to score one request (features, model, reasons)",
    ["use_case"],
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1),
)
CHAMPION_VERSION = Gauge("shopops_ml_champion_version", "Version of the champion being served", ["use_case"])
LOAD_FAILURES = Counter(
    "shopops_ml_model_load_failures_total", "Champion versions refused or failed to load", ["use_case"]
)

SERVED = ("fraud", "eta")
#: An entity key names an unknown entity when every feature of its view is missing online.
IDENTITY_VIEWS: dict[str, dict[str, str]] = {
    "fraud": {"customer_id": "customer_history", "order_id": "order_facts"},
    "eta": {"carrier": "shipment_performance", "shipment_id": "shipment_facts"},
}
ENTITY_NAMES = {
    "customer_id": "customer",
    "order_id": "order",
    "shipment_id": "shipment",
    "carrier": "carrier lane",
}


class OnlineFeatureSource(Protocol):
    """What serving needs of the feature store."""

    def online_features(self, use_case: str, entity: dict[str, str]) -> Any: ...

    def feature_names(self, use_case: str) -> list[str]: ...

    def open_online(self) -> None: ...


@dataclass
class Scored:
    """One prediction: the outputs, what it used, and which features fell back to their defaults."""

    request_id: str
    use_case: str
    model: str
    version: int
    outputs: dict[str, float]
    features: dict[str, float]
    defaults: dict[str, float]
    reasons: list[dict[str, Any]] = field(default_factory=list)
    latency_us: int = 0


class ModelSlots:
    """The champion of each use case, reloaded when its alias moves (old one kept on failure)."""

    def __init__(
        self,
        tracking: Tracking,
        feature_names: Callable[[str], list[str]],
        cache_dir: Path,
        use_cases: tuple[str, ...] = SERVED,
    ) -> None:
        self.tracking = tracking
        self.feature_names = feature_names
        self.cache_dir = cache_dir
        self.use_cases = use_cases
        self._models: dict[str, LoadedModel] = {}
        self.errors: dict[str, str] = {}
        self._refresh_lock = threading.Lock()

    def get(self, use_case: str) -> LoadedModel:
        model = self._models.get(use_case)
        if model is None:
            reason = self.errors.get(use_case, "no version of it holds the champion alias yet")
            raise BackendUnavailableError(
                f"no {use_case} model is being served: {reason}",
                hint=f"train and promote one: `shopops train {use_case}`, "
                f"then `shopops models promote {use_case} VERSION`",
            )
        return model

    def loaded(self) -> dict[str, int]:
        return {uc: m.version for uc, m in self._models.items()}

    def refresh(self) -> dict[str, int | None]:
        """Ask the registry for each champion; load and swap in the ones that moved."""
        with self._refresh_lock:
            seen: dict[str, int | None] = {}
            for use_case in self.use_cases:
                try:
                    version = self.tracking.alias_version(use_case, CHAMPION)
                except Exception as exc:  # the registry being down must not stop serving
                    self.errors.setdefault(use_case, f"registry unreachable: {exc}")
                    log.warning("champion lookup failed", use_case=use_case, error=str(exc))
                    seen[use_case] = None
                    continue
                seen[use_case] = version
                current = self._models.get(use_case)
                if version is None or (current is not None and current.version == version):
                    continue
                if self.errors.get(use_case, "").startswith(f"v{version} "):
                    continue  # already refused this version; wait for the alias to move again
                try:
                    model = load_model(
                        self.tracking,
                        use_case,
                        version,
                        self.cache_dir,
                        expected_features=self.feature_names(use_case),
                    )
                except SignatureMismatchError as exc:
                    self._refuse(use_case, version, exc.message)
                    continue
                except Exception as exc:
                    self._refuse(use_case, version, f"failed to load: {exc}")
                    continue
                # One reference assignment: requests see the old model or the new one, never half.
                self._models = {**self._models, use_case: model}
                self.errors.pop(use_case, None)
                CHAMPION_VERSION.labels(use_case).set(version)
                log.info(
                    "champion loaded",
                    use_case=use_case,
                    version=version,
                    previous=current and current.version,
                )
            return seen

    def _refuse(self, use_case: str, version: int, reason: str) -> None:
        LOAD_FAILURES.labels(use_case).inc()
        self.errors[use_case] = f"v{version} {reason}"
        log.error("champion not loaded", use_case=use_case, version=version, reason=reason)


class ServingService:
    """Scores requests with the champions; a thread watches the registry for alias moves."""

    def __init__(
        self,
        tracking: Tracking,
        features: OnlineFeatureSource,
        *,
        cache_dir: Path,
        prediction_log: PredictionLog | None = None,
        reload_interval_s: float = 5.0,
        reasons: int = 3,
    ) -> None:
        self.tracking = tracking
        self.features = features
        self.slots = ModelSlots(tracking, features.feature_names, cache_dir)
        self.prediction_log = prediction_log
        self.reload_interval_s = reload_interval_s
        self.reasons = reasons
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._children: dict[tuple[str, int], tuple[Any, Any, Any]] = {}
        # The online features of a use case always come in its feature order: the names are fixed.
        self._identity: dict[tuple[str, str], list[str]] = {}

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, *, wait: bool = True) -> ServingService:
        """Load the champions and open the online store (now, or with ``wait=False`` in the
        background), then watch for alias moves every ``reload_interval_s``."""
        if wait:
            self.features.open_online()
            self.slots.refresh()
        self._thread = threading.Thread(
            target=self._watch, args=(not wait,), name="champion-watch", daemon=True
        )
        self._thread.start()
        return self

    def _watch(self, first: bool) -> None:
        if first:
            try:
                self.features.open_online()
                self.slots.refresh()
            except Exception as exc:
                log.error("champion refresh failed", error=str(exc))
        while not self._stop.wait(self.reload_interval_s):
            try:
                self.slots.refresh()
            except Exception as exc:  # keep watching whatever one round did
                log.error("champion refresh failed", error=str(exc))

    def close(self) -> None:
        """Stop watching and write the predictions still queued (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.prediction_log is not None:
            self.prediction_log.close()

    def status(self) -> dict[str, Any]:
        return {
            uc: {
                "version": self.slots.loaded().get(uc),
                "error": self.slots.errors.get(uc),
            }
            for uc in self.slots.use_cases
        }

    # --- scoring --------------------------------------------------------------------------------

    def score(
        self, use_case: str, entity: Mapping[str, str], overrides: Mapping[str, float] | None = None
    ) -> Scored:
        """Score one entity. Unknown ids are a :class:`NotFoundError`; features without an online
        value take the model's documented default (its training median) and are listed in ``defaults``."""
        started = time.perf_counter()
        model = self.slots.get(use_case)
        keys = {k: v for k, v in entity.items() if v is not None}
        online = self.features.online_features(use_case, keys)
        values: dict[str, float | None] = online.values
        missing = set(online.missing)
        if overrides:
            unknown = [k for k in overrides if k not in values]
            if unknown:
                raise InvalidInputError(
                    f"unknown feature(s) for {use_case}: {', '.join(sorted(unknown))}",
                    hint=f"features of the {use_case} model: {', '.join(model.features)}",
                )
            for name, value in overrides.items():
                if not math.isfinite(value):
                    raise InvalidInputError(f"feature {name} must be a finite number (got {value})")
            missing -= set(overrides)
        self._check_known(use_case, keys, values, missing, overrides or {})
        row = np.empty(len(model.features), dtype=float)
        defaults: dict[str, float] = {}
        for i, name in enumerate(model.features):
            if overrides and name in overrides:
                row[i] = overrides[name]
                continue
            found = values.get(name)
            if found is None or name in missing:
                row[i] = model.defaults[i]
                defaults[name] = float(model.defaults[i])
            else:
                row[i] = found
        outputs: dict[str, float] = {}
        reasons: list[dict[str, Any]] = []
        if use_case == "fraud":
            # One thread (on one row LightGBM's OpenMP start-up costs 30x the prediction itself), one
            # call: the contributions are the reasons, and their sum is the log-odds of the score.
            contrib = model.contributions["score"].predict(row)
            outputs["score"] = float(1.0 / (1.0 + math.exp(-float(contrib.sum()))))
            if self.reasons:
                order = np.argsort(-contrib[:-1], kind="stable")[: self.reasons]
                reasons = [
                    {
                        "feature": model.features[j],
                        "value": float(row[j]),
                        "contribution": round(float(contrib[j]), 6),
                        "default": model.features[j] in defaults,
                    }
                    for j in order
                    if contrib[j] > 0
                ]
        else:
            raw = {
                name: model.use_case.transform(name, p.predict(row)) for name, p in model.predictors.items()
            }
            for name, predicted in model.use_case.consistent(raw).items():
                outputs[f"{name}_hours"] = float(predicted[0])
        latency_us = int((time.perf_counter() - started) * 1e6)
        scored = Scored(
            request_id=uuid.uuid4().hex,
            use_case=use_case,
            model=model.name,
            version=model.version,
            outputs=outputs,
            features=dict(zip(model.features, row.tolist(), strict=True)),
            defaults=defaults,
            reasons=reasons,
            latency_us=latency_us,
        )
        predictions, defaulted, latency = self._metrics(use_case, model.version)
        predictions.inc()
        if defaults:
            defaulted.inc(len(defaults))
        latency.observe(latency_us / 1e6)
        if self.prediction_log is not None:
            self.prediction_log.append(
                Prediction(
                    ts_ms=int(time.time() * 1000),
                    request_id=scored.request_id,
                    use_case=use_case,
                    model=model.name,
                    version=model.version,
                    entity=dict(keys),
                    features=scored.features,
                    defaults=sorted(defaults),
                    output=outputs,
                    latency_us=latency_us,
                )
            )
        return scored

    def _metrics(self, use_case: str, version: int) -> tuple[Any, Any, Any]:
        """The metric children of a use case and version (label lookups cost more than the update)."""
        found = self._children.get((use_case, version))
        if found is None:
            found = (
                PREDICTIONS.labels(use_case, str(version)),
                DEFAULTED.labels(use_case),
                LATENCY.labels(use_case),
            )
            self._children[(use_case, version)] = found
        return found

    def _identity_features(self, use_case: str, key: str, values: Mapping[str, float | None]) -> list[str]:
        """The features of the view that tells whether ``key`` names a known entity."""
        found = self._identity.get((use_case, key))
        if found is None:
            prefix = f"{IDENTITY_VIEWS[use_case][key]}__"
            found = [n for n in values if n.startswith(prefix)]
            self._identity[(use_case, key)] = found
        return found

    def _check_known(
        self,
        use_case: str,
        keys: Mapping[str, str],
        values: Mapping[str, float | None],
        missing: set[str],
        overrides: Mapping[str, float],
    ) -> None:
        for key in IDENTITY_VIEWS.get(use_case, {}):
            if key not in keys:
                continue
            names = self._identity_features(use_case, key, values)
            if names and all(n in missing for n in names) and not any(n in overrides for n in names):
                what = ENTITY_NAMES.get(key, key)
                label = keys[key] if key != "carrier" else f"{keys['carrier']} on route {keys.get('route')}"
                raise NotFoundError(
                    f"unknown {what}: {label}",
                    hint=f"the feature store has nothing for this {what}; check the id, or "
                    "materialize the features (`shopops features materialize`)",
                    key=key,
                )
