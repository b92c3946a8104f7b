from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.integration.ml.training.worlds import EventsWorld, events_world, fresh_home
from tests.support.governance import open_governance

from shopops.core.settings import PromotionSettings
from shopops.governance.model import Principal, make_principal
from shopops.governance.service import GovernanceService
from shopops.ml.promotion.service import PromotionService
from shopops.ml.tracking.service import Tracking, default_uris
from shopops.ml.training.service import TrainingService


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> EventsWorld:
    return events_world(tmp_path_factory.getbasetemp())


@dataclass
class Bench:
    """A data directory with its own MLflow store, audit trail, trainer and promotion service."""

    home: Path
    tracking: Tracking
    training: TrainingService
    governance: GovernanceService
    links: list[tuple[str, int, str]]

    def promotion(self, **settings: Any) -> PromotionService:
        return PromotionService(
            self.tracking,
            self.governance,
            home=self.home,
            settings=PromotionSettings(**settings),
            catalog_link=lambda *args: self.links.append(args),
        )

    def audit(self) -> list[Any]:
        return list(self.governance.audit.records())


@pytest.fixture
def bench(world: EventsWorld, tmp_path: Path) -> Iterator[Bench]:
    fresh_home(world.mlflow_template, tmp_path)
    uri, artifacts = default_uris(tmp_path, None, None)
    tracking = Tracking(uri, artifacts)
    governance = open_governance(tmp_path)
    training = TrainingService(tracking, world.frames, home=tmp_path, tune_trials=2, source_name="events")
    yield Bench(tmp_path, tracking, training, governance, [])
    governance.close()


@pytest.fixture
def mia() -> Principal:
    return make_principal("user", "mia", ["ml_engineer"], "vn")
