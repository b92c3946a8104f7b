"""The Iceberg catalog of the lake: a SQL catalog on SQLite (embedded) or PostgreSQL, with a local
or S3 warehouse."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyiceberg.catalog.sql import SqlCatalog
from sqlalchemy import event
from sqlalchemy.exc import ArgumentError

from shopops.core.errors import BackendUnavailableError, ConfigError
from shopops.core.settings import LakeSettings, Settings
from shopops.core.sqlite import connect_wal


def catalog_properties(lake: LakeSettings) -> dict[str, str]:
    """pyiceberg FileIO properties from the lake settings (only those that are set)."""
    props = {
        "s3.endpoint": lake.s3_endpoint,
        "s3.region": lake.s3_region,
        "s3.access-key-id": lake.s3_access_key_id,
        "s3.secret-access-key": (
            lake.s3_secret_access_key.get_secret_value() if lake.s3_secret_access_key else None
        ),
    }
    return {k: v for k, v in props.items() if v}


def open_catalog(
    uri: str | None, warehouse: str | None, home: Path, properties: Mapping[str, str] | None = None
) -> SqlCatalog:
    """``uri`` is a SQLAlchemy URL (default: SQLite under the data directory); ``warehouse`` a path
    or URL (``file://``, ``s3://``); ``properties`` more catalog/FileIO properties (S3 access)."""
    lake = home / "lake"
    lake.mkdir(parents=True, exist_ok=True)
    uri = uri or f"sqlite:///{(lake / 'catalog.db').resolve()}"
    warehouse = warehouse or f"file://{(lake / 'warehouse').resolve()}"
    if properties is None and warehouse.startswith(("s3://", "s3a://")):
        # Callers that pass only the URI and warehouse (the worker of ``shopops up``) get the S3
        # access settings from the same configuration sources.
        from shopops.core.settings import load_settings

        properties = catalog_properties(load_settings().lake)
    error: Exception | None = None
    for attempt in range(5):
        try:
            if uri.startswith("sqlite:///"):
                _wal(Path(uri.removeprefix("sqlite:///")))
            catalog = SqlCatalog("shopops", uri=uri, warehouse=warehouse, **dict(properties or {}))
            if uri.startswith("sqlite"):
                _sqlite_pragmas(catalog)
            return catalog
        except ArgumentError as exc:
            raise ConfigError(
                f"lake.catalog_uri {uri!r} is not a SQLAlchemy URL ({exc})",
                hint="e.g. postgresql+psycopg://user@host:5432/lake or sqlite:////path/catalog.db",
            ) from None
        except Exception as exc:  # SQLAlchemy raises its own errors; workers starting together race
            error = exc
            time.sleep(0.05 * (attempt + 1) + random.random() * 0.05)
    raise BackendUnavailableError(
        f"cannot open the lake catalog at {uri} ({error})",
        hint="check lake.catalog_uri (SHOPOPS_LAKE__CATALOG_URI) and that its database server answers",
    )


def _wal(path: Path) -> None:
    """Put the SQLite catalog in WAL mode (once per file; it stays so)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connect_wal(path, 10_000, "the lake catalog").close()


def _sqlite_pragmas(catalog: SqlCatalog) -> None:
    """Every connection of a SQLite catalog: WAL with ``synchronous=NORMAL`` (a commit survives a
    process kill without an fsync per commit, which cost ~30 ms here) and a busy timeout, so that
    workers in several processes wait for each other instead of failing."""

    def on_connect(conn: Any, _record: Any) -> None:
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA synchronous = NORMAL")

    event.listen(catalog.engine, "connect", on_connect)
    catalog.engine.dispose()  # connections opened before the listener get replaced


def open_lake_catalog(settings: Settings) -> SqlCatalog:
    """The catalog the settings describe (``lake.catalog_uri``, ``lake.warehouse``, ``lake.s3_*``)."""
    lake = settings.lake
    return open_catalog(lake.catalog_uri, lake.warehouse, settings.home, catalog_properties(lake))
