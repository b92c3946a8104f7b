"""End-to-end fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.helpers import Server, free_port


@pytest.fixture
def start_server() -> Iterator[object]:
    servers: list[Server] = []

    def start(home: Path, **env: str) -> Server:
        server = Server(home, free_port(), **env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.proc.poll() is None:
            server.stop()
