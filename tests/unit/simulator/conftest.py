"""Fixtures of the simulator tests: one small simulated world, shared by the session."""

from __future__ import annotations

import pytest
from tests.unit.simulator.helpers import SMALL, World, simulate


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """Three regions, four days, every pain ten times as frequent as by default, plain JSON."""
    return simulate(SMALL, tmp_path_factory.mktemp("truth"))


@pytest.fixture(scope="session")
def schema_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A smaller world in JSON-with-schema envelopes (slower to decode)."""
    config = SMALL.model_copy(
        update={"envelope": "schema", "regions": ["vn", "sg"], "days": 2, "orders_per_day": 20}
    )
    return simulate(config, tmp_path_factory.mktemp("truth-schema"))
