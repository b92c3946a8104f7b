from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.integration.ml.training.worlds import FeaturesWorld, features_world, fresh_home
from tests.support.governance import bearer, key_for

from shopops.api.app import create_app
from shopops.bootstrap import build_features, build_platform
from shopops.core.settings import Settings
from shopops.ml.serving.predlog import PredictionLog
from shopops.ml.serving.service import ServingService
from shopops.ml.tracking.service import CHAMPION, Tracking, default_uris
from shopops.ml.training.service import TrainingService


@dataclass
class Trained:
    """The features world with fraud and ETA trained on its feature store (the templates' MLflow store)."""

    world: FeaturesWorld
    store: Path
    features: Any
    versions: dict[str, int]


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    world = features_world(tmp_path_factory.getbasetemp())
    store = fresh_home(world.mlflow_template, tmp_path_factory.mktemp("serving-store"))
    uri, artifacts = default_uris(store, None, None)
    tracking = Tracking(uri, artifacts)
    features = build_features(Settings(home=world.home))
    training = TrainingService(tracking, features, home=store, source_name="features")
    versions = {}
    for use_case in ("fraud", "eta"):
        versions[use_case] = training.train(use_case, seed=1).version
        tracking.set_alias(use_case, versions[use_case], CHAMPION)
    yield Trained(world, store, features, versions)
    features.close()


@dataclass
class Serving:
    """One test's MLflow store (a copy of the trained one), serving service and HTTP clients."""

    home: Path
    tracking: Tracking
    service: ServingService
    client: TestClient
    platform: Any

    def as_role(self, *roles: str) -> dict[str, str]:
        return bearer(key_for(self.platform.governance, *roles))


def copy_store(trained: Trained, home: Path) -> Tracking:
    (home / "ml").mkdir(parents=True, exist_ok=True)
    shutil.copy(trained.store / "ml" / "mlflow.db", home / "ml" / "mlflow.db")
    # Artifacts stay where the runs logged them (absolute URIs); the registry is this test's own.
    _, artifacts = default_uris(trained.store, None, None)
    uri, _ = default_uris(home, None, None)
    return Tracking(uri, artifacts)


def open_serving(trained: Trained, home: Path, tracking: Tracking, **options: Any) -> ServingService:
    return ServingService(
        tracking,
        trained.features,
        cache_dir=home / "ml" / "cache",
        prediction_log=PredictionLog(home / "ml" / "predictions.db", flush_interval_s=0.1),
        reload_interval_s=options.pop("reload_interval_s", 0.2),
        **options,
    )


@pytest.fixture
def serving(trained: Trained, tmp_path: Path) -> Iterator[Serving]:
    tracking = copy_store(trained, tmp_path)
    service = open_serving(trained, tmp_path, tracking).start()
    platform = build_platform(Settings(home=tmp_path))
    app = create_app(platform=platform)
    app.state.features = trained.features
    app.state.ml_serving = service
    headers = bearer(key_for(platform.governance, "checkout", name="checkout-svc"))
    with TestClient(app, headers=headers) as client:
        yield Serving(tmp_path, tracking, service, client, platform)
    service.close()
    platform.close()
