"""The Iceberg catalog of the lake: a SQL catalog on SQLite (embedded) or PostgreSQL."""

from __future__ import annotations

import random
import time
from pathlib import Path

from pyiceberg.catalog.sql import SqlCatalog

from shopops.core.errors import BackendUnavailableError


def open_catalog(uri: str | None, warehouse: str | None, home: Path) -> SqlCatalog:
    """``uri`` is a SQLAlchemy URL (default: SQLite under the data directory); ``warehouse`` a path or URL."""
    lake = home / "lake"
    lake.mkdir(parents=True, exist_ok=True)
    uri = uri or f"sqlite:///{(lake / 'catalog.db').resolve()}"
    warehouse = warehouse or f"file://{(lake / 'warehouse').resolve()}"
    error: Exception | None = None
    for attempt in range(5):
        try:
            return SqlCatalog("shopops", uri=uri, warehouse=warehouse)
        except Exception as exc:  # SQLAlchemy raises its own errors; workers starting together race
            error = exc
            time.sleep(0.05 * (attempt + 1) + random.random() * 0.05)
    raise BackendUnavailableError(f"cannot open the lake catalog at {uri} ({error})")
