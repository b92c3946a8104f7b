"""The one place where settings become wired objects (backends, services)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shopops.core.settings import Settings
from shopops.events.backends import open_event_log
from shopops.events.port import EventLog
from shopops.events.service import EventsService
from shopops.inventory.backends import open_reservation_store
from shopops.inventory.service import InventoryService


@dataclass
class Platform:
    """Everything a process of shopops needs, built from :class:`Settings`."""

    settings: Settings
    event_log: EventLog
    inventory: InventoryService
    events: EventsService = field(init=False)

    def __post_init__(self) -> None:
        self.events = EventsService(self.event_log)

    @property
    def truth_dir(self) -> Path:
        return self.settings.home / "truth"

    def close(self) -> None:
        self.inventory.close()
        self.event_log.close()


def build_platform(settings: Settings) -> Platform:
    """Open every configured backend; unknown backend types fail here with the known ones listed."""
    settings.home.mkdir(parents=True, exist_ok=True)
    event_log = open_event_log(settings.events, settings.home)
    try:
        inventory = InventoryService(open_reservation_store(settings.inventory, settings.home), event_log)
    except BaseException:
        event_log.close()
        raise
    return Platform(settings=settings, event_log=event_log, inventory=inventory)
