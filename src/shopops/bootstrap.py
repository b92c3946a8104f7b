"""The one place where settings become wired objects (backends, services)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shopops.core.settings import Settings
from shopops.events.backends import open_event_log
from shopops.events.port import EventLog
from shopops.events.service import EventsService
from shopops.inventory.backends import open_reservation_store
from shopops.inventory.service import InventoryService

if TYPE_CHECKING:
    from shopops.schemas.client import RegistryClient
    from shopops.schemas.service import SchemaRegistry


@dataclass
class Platform:
    """Everything a process of shopops needs, built from :class:`Settings`."""

    settings: Settings
    event_log: EventLog
    inventory: InventoryService
    events: EventsService = field(init=False)
    _schema_registry: SchemaRegistry | None = field(default=None, init=False, repr=False)
    _schema_client: RegistryClient | None = field(default=None, init=False, repr=False)
    _schemas_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.events = EventsService(self.event_log)

    @property
    def schema_registry(self) -> SchemaRegistry:
        """The built-in schema registry (opened on first use: most commands never need it)."""
        with self._schemas_lock:
            if self._schema_registry is None:
                from shopops.schemas.server import open_registry

                self._schema_registry = open_registry(self.settings)
            return self._schema_registry

    @property
    def schema_client(self) -> RegistryClient:
        """The registry the platform works with (``schemas.registry``: built-in or external)."""
        if self._schema_client is None:
            from shopops.schemas.backends import open_registry_client

            client = open_registry_client(
                self.settings.schemas.registry, self.settings.home, lambda: self.schema_registry
            )
            with self._schemas_lock:
                if self._schema_client is None:
                    self._schema_client = client
                else:
                    client.close()
        return self._schema_client

    @property
    def truth_dir(self) -> Path:
        return self.settings.home / "truth"

    def close(self) -> None:
        if self._schema_client is not None:
            self._schema_client.close()
        if self._schema_registry is not None:
            self._schema_registry.close()
        self.inventory.close()
        self.event_log.close()


def build_platform(settings: Settings) -> Platform:
    """Open every configured backend; unknown backend types fail here with the known ones listed."""
    settings.home.mkdir(parents=True, exist_ok=True)
    _check_schema_settings(settings)
    event_log = open_event_log(settings.events, settings.home)
    try:
        inventory = InventoryService(open_reservation_store(settings.inventory, settings.home), event_log)
    except BaseException:
        event_log.close()
        raise
    return Platform(settings=settings, event_log=event_log, inventory=inventory)


def _check_schema_settings(settings: Settings) -> None:
    # The schema registry opens on first use; a misconfigured one must still fail at start-up.
    from shopops.schemas.backends import REGISTRY_CLIENTS, SCHEMA_STORES

    SCHEMA_STORES.config_for(settings.schemas.store)
    REGISTRY_CLIENTS.config_for(settings.schemas.registry)
