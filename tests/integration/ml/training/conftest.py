from __future__ import annotations

import pytest
from tests.integration.ml.training.worlds import EventsWorld, events_world


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> EventsWorld:
    return events_world(tmp_path_factory.getbasetemp())
