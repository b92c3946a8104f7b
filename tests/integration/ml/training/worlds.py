"""Simulated worlds the MLOps tests train on, built once per test session and shared.

* :func:`events_world` — 3 regions, 14 days, 150 orders a day: frames built straight from the
  event log (fast), enough fraud and deliveries for the truth ratios to be meaningful.
* :func:`features_world` — 2 regions, 6 days, 80 orders a day, ingested into the lake and
  materialized into the feature store: the path the platform serves from.

Each test gets its own MLflow store (a copy of an empty, migrated one) in its own directory.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopops.core.registry import BackendSelection
from shopops.core.settings import Settings
from shopops.events.backends import open_event_log
from shopops.ml.tracking.service import Tracking, default_uris
from shopops.ml.training.frames import EventLogFrames, TrainingFrame
from shopops.simulator.service import SimulationConfig, run_simulation

_lock = threading.Lock()
_cache: dict[str, Any] = {}


class CachedFrames:
    """A frame source answering each (use case, regions) once: the frames are the same every time."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self._frames: dict[tuple[str, tuple[str, ...] | None], Any] = {}

    def feature_names(self, use_case: str) -> list[str]:
        names: list[str] = self.source.feature_names(use_case)
        return names

    def training_frame(self, use_case: str, *, regions: list[str] | None = None) -> Any:
        key = (use_case, tuple(regions) if regions else None)
        if key not in self._frames:
            self._frames[key] = self.source.training_frame(use_case, regions=regions)
        tf = self._frames[key]
        return TrainingFrame(tf.frame.copy(), tf.label, tf.truth, list(tf.features), dict(tf.data_versions))


@dataclass
class EventsWorld:
    home: Path
    frames: CachedFrames
    mlflow_template: Path


@dataclass
class FeaturesWorld:
    home: Path
    mlflow_template: Path


def mlflow_template(root: Path) -> Path:
    """An empty MLflow SQLite store with its schema migrated (copied instead of migrated per test)."""
    with _lock:
        if "template" not in _cache:
            home = root / "mlflow-template"
            uri, artifacts = default_uris(home, None, None)
            Tracking(uri, artifacts).model_names()
            _cache["template"] = home / "ml" / "mlflow.db"
        path: Path = _cache["template"]
        return path


def fresh_home(template: Path, home: Path) -> Path:
    """``home`` with its own copy of the empty MLflow store."""
    (home / "ml").mkdir(parents=True, exist_ok=True)
    shutil.copy(template, home / "ml" / "mlflow.db")
    return home


def events_world(root: Path) -> EventsWorld:
    with _lock:
        if "events" not in _cache:
            home = root / "events-world"
            log = open_event_log(BackendSelection(type="sqlite"), home=home)
            try:
                config = SimulationConfig(
                    regions=["vn", "sg", "th"], days=14, orders_per_day=150, seed=7, envelope="plain"
                )
                run_simulation(config, log, home / "truth", parallel=False)
                frames = CachedFrames(EventLogFrames(log, home / "truth"))
                frames.training_frame("fraud")
                frames.training_frame("eta")
            finally:
                log.close()
            _cache["events"] = (home, frames)
    home, frames = _cache["events"]
    return EventsWorld(home, frames, mlflow_template(root))


def features_world(root: Path) -> FeaturesWorld:
    """Simulated, ingested into the lake, materialized: `shopops features materialize` has run."""
    from shopops.bootstrap import build_features
    from shopops.lake.catalog import open_catalog
    from shopops.lake.ingest import LakeIngestor

    with _lock:
        if "features" not in _cache:
            home = root / "features-world"
            log = open_event_log(BackendSelection(type="sqlite"), home=home)
            try:
                config = SimulationConfig(
                    regions=["vn", "sg"], days=6, orders_per_day=80, seed=5, envelope="plain"
                )
                run_simulation(config, log, home / "truth", parallel=False)
                # Bronze only: the feature store derives from the change history.
                LakeIngestor(log, open_catalog(None, None, home), silver=False).run_once()
            finally:
                log.close()
            features = build_features(Settings(home=home))
            features.apply()
            features.materialize()
            features.close()
            _cache["features"] = home
    return FeaturesWorld(_cache["features"], mlflow_template(root))
