"""Backends of the catalog: its store (``catalog.store.type``) and where OpenLineage events go
(``catalog.openlineage.type``), looked up by name."""

from __future__ import annotations

from pathlib import Path

from shopops.catalog.port import CatalogStore, LineageTransport
from shopops.core.registry import BackendRegistry, BackendSelection

CATALOG_STORES: BackendRegistry[CatalogStore] = BackendRegistry(
    "catalog store",
    {
        "sqlite": "shopops.catalog.backends.sqlite:SqliteCatalogStore",
        "postgres": "shopops.catalog.backends.postgres:PostgresCatalogStore",
    },
)

LINEAGE_TRANSPORTS: BackendRegistry[LineageTransport] = BackendRegistry(
    "OpenLineage transport",
    {
        "file": "shopops.catalog.backends.openlineage:FileLineageTransport",
        "http": "shopops.catalog.backends.openlineage:HttpLineageTransport",
        "none": "shopops.catalog.backends.openlineage:NoLineageTransport",
    },
)


def open_catalog_store(selection: BackendSelection, home: Path) -> CatalogStore:
    """Open the catalog store named by the settings (``home`` is the data directory)."""
    return CATALOG_STORES.create(selection, home=home)


def open_lineage_transport(selection: BackendSelection, home: Path) -> LineageTransport:
    """Open the OpenLineage transport named by the settings."""
    return LINEAGE_TRANSPORTS.create(selection, home=home)
