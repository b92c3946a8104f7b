from __future__ import annotations

import pytest
from tests.integration.quality.world import BadWorld, build_world


@pytest.fixture(scope="session")
def bad_world(tmp_path_factory: pytest.TempPathFactory) -> BadWorld:
    return build_world(tmp_path_factory.mktemp("bad-world"))
