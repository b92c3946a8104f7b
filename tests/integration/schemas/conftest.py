"""Schema stores of each backend for the registry tests.

- sqlite: a file in the test's tmp_path;
- postgres: the server on 127.0.0.1:5432, one database for the session (dropped at the end) and a
  PostgreSQL schema unique to each test.

A server that does not answer fails the test with the command that starts it; nothing is skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.support.postgres import scratch_database

from shopops.core.registry import BackendSelection
from shopops.schemas.backends import open_schema_store
from shopops.schemas.port import SchemaStore
from shopops.schemas.service import SchemaRegistry


@pytest.fixture(scope="session")
def schemas_pg_dsn() -> Iterator[str]:
    """A database created for this test session on the test PostgreSQL server, dropped at the end."""
    with scratch_database("shopops_schemas") as dsn:
        yield dsn


class StoreFactory:
    """Opens schema stores of one backend on one location; closes them at teardown."""

    def __init__(self, backend: str, home: Path, dsn: str | None) -> None:
        self.backend = backend
        self.home = home
        self.dsn = dsn
        self.pg_schema = f"t_{uuid.uuid4().hex[:12]}"
        self._opened: list[SchemaStore] = []

    def selection(self, **options: Any) -> BackendSelection:
        """Settings that open this store; a subprocess rebuilds the same store from them."""
        if self.backend == "postgres":
            return BackendSelection(type="postgres", dsn=self.dsn, schema_name=self.pg_schema, **options)
        return BackendSelection(type="sqlite", path=str(self.home / "schemas.db"), **options)

    def __call__(self, **options: Any) -> SchemaStore:
        store = open_schema_store(self.selection(**options), self.home)
        self._opened.append(store)
        return store

    def registry(self, **options: Any) -> SchemaRegistry:
        return SchemaRegistry(self(**options))

    def cleanup(self) -> None:
        for store in self._opened:
            store.close()
        if self.backend == "postgres" and self.dsn:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.pg_schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Builds schema stores of each backend through the backend registry, as the platform does."""
    backend: str = request.param
    dsn = request.getfixturevalue("schemas_pg_dsn") if backend == "postgres" else None
    factory = StoreFactory(backend, tmp_path, dsn)
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[SchemaRegistry]:
    """The registry on the embedded store."""
    factory = StoreFactory("sqlite", tmp_path, None)
    try:
        yield factory.registry()
    finally:
        factory.cleanup()
