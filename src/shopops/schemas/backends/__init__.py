"""Schema-store backends (``schemas.store.type``) and registry-client backends
(``schemas.registry.type``), looked up by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from shopops.core.registry import BackendRegistry, BackendSelection
from shopops.schemas.port import SchemaStore

if TYPE_CHECKING:
    from shopops.schemas.client import RegistryClient
    from shopops.schemas.service import SchemaRegistry

SCHEMA_STORES: BackendRegistry[SchemaStore] = BackendRegistry(
    "schema store",
    {
        "sqlite": "shopops.schemas.backends.sqlite:SqliteSchemaStore",
        "postgres": "shopops.schemas.backends.postgres:PostgresSchemaStore",
    },
)


def open_schema_store(selection: BackendSelection, home: Path) -> SchemaStore:
    """Open the schema store named by the settings (``home`` is the data directory)."""
    return SCHEMA_STORES.create(selection, home=home)


REGISTRY_CLIENTS: BackendRegistry[RegistryClient] = BackendRegistry(
    "schema registry client",
    {
        "builtin": "shopops.schemas.client:BuiltinRegistryClient",
        "http": "shopops.schemas.backends.http_client:HttpRegistryClient",
    },
)


def open_registry_client(
    selection: BackendSelection, home: Path, builtin: Callable[[], SchemaRegistry]
) -> RegistryClient:
    """Open the registry client named by the settings; ``builtin`` gives the platform's own registry
    (called only by the ``builtin`` backend, so an external registry opens no local store)."""
    return REGISTRY_CLIENTS.create(selection, home=home, builtin=builtin)
