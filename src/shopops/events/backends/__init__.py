"""Event-log backends, looked up by the ``events.type`` setting."""

from __future__ import annotations

from pathlib import Path

from shopops.core.registry import BackendRegistry, BackendSelection
from shopops.events.port import EventLog

EVENT_LOGS: BackendRegistry[EventLog] = BackendRegistry(
    "event log",
    {
        "sqlite": "shopops.events.backends.sqlite:SqliteEventLog",
        "kafka": "shopops.events.backends.kafka:KafkaEventLog",
    },
)


def open_event_log(selection: BackendSelection, home: Path) -> EventLog:
    """Open the event log named by the settings (``home`` is the data directory)."""
    return EVENT_LOGS.create(selection, home=home)
