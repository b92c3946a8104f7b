"""Helpers of the inventory integration tests: a fake clock and per-backend store factories."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import redis

from shopops.core.registry import BackendSelection
from shopops.inventory.backends import open_reservation_store
from shopops.inventory.model import ReservationLimits
from shopops.inventory.port import ReservationStore
from shopops.inventory.service import InventoryService

REDIS_URL = os.environ.get("SHOPOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

#: Tests use holds of a few hundred milliseconds.
TEST_LIMITS = ReservationLimits(min_ttl_ms=50)

#: A fixed, realistic start time: 13-digit epoch milliseconds must survive every backend intact.
EPOCH_MS = 1_750_000_000_000


class FakeClock:
    """An injectable clock the test moves by hand."""

    def __init__(self, start_ms: int = EPOCH_MS) -> None:
        self.now_ms = start_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> int:
        self.now_ms += ms
        return self.now_ms


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


class StoreFactory:
    """Opens stores of one backend on one isolated namespace (file, key prefix or schema)."""

    def __init__(self, backend: str, home: Path, redis_url: str | None, postgres_dsn: str | None) -> None:
        self.backend = backend
        self.home = home
        self.redis_url = redis_url
        self.postgres_dsn = postgres_dsn
        self.namespace = _unique("t")
        self._opened: list[ReservationStore] = []

    def selection(self, **options: Any) -> BackendSelection:
        """The settings that open this test's store; a subprocess can rebuild it from them."""
        if self.backend == "redis":
            return BackendSelection(type="redis", url=self.redis_url, key_prefix=self.namespace, **options)
        if self.backend == "postgres":
            return BackendSelection(
                type="postgres", dsn=self.postgres_dsn, schema_name=self.namespace, **options
            )
        return BackendSelection(type="sqlite", path=str(self.home / "inventory.db"), **options)

    def __call__(self, **options: Any) -> ReservationStore:
        store = open_reservation_store(self.selection(**options), home=self.home)
        self._opened.append(store)
        return store

    def service(
        self, clock: Callable[[], int], store: ReservationStore | None = None, **kwargs: Any
    ) -> InventoryService:
        """A service over a new (or the given) store, with the test limits."""
        kwargs.setdefault("limits", TEST_LIMITS)
        return InventoryService(store if store is not None else self(), clock=clock, **kwargs)

    def cleanup(self) -> None:
        for store in self._opened:
            store.close()
        if self.backend == "redis" and self.redis_url is not None:
            client = redis.Redis.from_url(self.redis_url)
            try:
                keys = list(client.scan_iter(match="{" + self.namespace + "}*", count=1000))
                for start in range(0, len(keys), 500):
                    client.delete(*keys[start : start + 500])
            finally:
                client.close()
        if self.backend == "postgres" and self.postgres_dsn is not None:
            with psycopg.connect(self.postgres_dsn, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.namespace}" CASCADE')
