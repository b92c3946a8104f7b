"""Reservation-store backends, looked up by the ``inventory.type`` setting."""

from __future__ import annotations

from pathlib import Path

from shopops.core.registry import BackendRegistry, BackendSelection
from shopops.inventory.port import ReservationStore

INVENTORY_STORES: BackendRegistry[ReservationStore] = BackendRegistry(
    "inventory",
    {
        "sqlite": "shopops.inventory.backends.sqlite:SqliteReservationStore",
        "redis": "shopops.inventory.backends.redis:RedisReservationStore",
        "postgres": "shopops.inventory.backends.postgres:PostgresReservationStore",
    },
)


def open_reservation_store(selection: BackendSelection, home: Path) -> ReservationStore:
    """Open the reservation store named by the settings (``home`` is the data directory)."""
    return INVENTORY_STORES.create(selection, home=home)
