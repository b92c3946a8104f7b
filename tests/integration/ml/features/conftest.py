"""A small simulated company in the lake, and feature stores over it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shopops.bootstrap import build_features
from shopops.core.registry import BackendSelection
from shopops.core.settings import Settings
from shopops.events.backends import open_event_log
from shopops.inventory.backends import open_reservation_store
from shopops.inventory.bursts import replay_checkout_bursts
from shopops.inventory.service import InventoryService
from shopops.lake.catalog import open_catalog
from shopops.lake.ingest import LakeIngestor
from shopops.ml.features.service import FeatureService
from shopops.simulator.service import SimulationConfig, run_simulation

REGIONS = ["vn", "sg"]


@dataclass(frozen=True)
class World:
    """A data directory with the event log, the bronze tables and the ground truth of 2 regions and 3 days."""

    home: Path

    def settings(self, repo_dir: Path, **features: Any) -> Settings:
        return Settings(home=self.home, ml={"features": {"repo_dir": repo_dir, **features}})


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    home = tmp_path_factory.mktemp("features-world")
    log = open_event_log(BackendSelection(type="sqlite"), home=home)
    try:
        config = SimulationConfig(regions=REGIONS, days=3, orders_per_day=50, seed=11)
        run_simulation(config, log, home / "truth", parallel=False)
        # The reservation engine's events (the stock view's source), as `shopops up` produces them.
        inventory = InventoryService(open_reservation_store(BackendSelection(type="sqlite"), home), log)
        try:
            replay_checkout_bursts(inventory, home / "truth" / "checkout_bursts.parquet", concurrency=4)
        finally:
            inventory.close()
        LakeIngestor(log, open_catalog(None, None, home)).run_once()
    finally:
        log.close()
    return World(home)


FeaturesFactory = Callable[..., FeatureService]


@pytest.fixture
def features_factory(world: World, tmp_path: Path) -> Iterator[FeaturesFactory]:
    """Feature stores over the world, each with its own repository folder under the test's tmp_path."""
    opened: list[FeatureService] = []

    def make(name: str = "feast", **options: Any) -> FeatureService:
        service = build_features(world.settings(tmp_path / name, **options))
        opened.append(service)
        return service

    yield make
    for service in opened:
        service.close()


@pytest.fixture(scope="session")
def materialized(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeatureService]:
    """One feature store over the world, applied and materialized (SQLite online store); read-only."""
    service = build_features(world.settings(tmp_path_factory.mktemp("feast-shared")))
    service.apply()
    service.materialize()
    yield service
    service.close()
