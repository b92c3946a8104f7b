"""Schema stores of each backend for the registry tests.

- sqlite: a file in the test's tmp_path;
- postgres: the server on 127.0.0.1:5432, one database for the session (dropped at the end) and a
  PostgreSQL schema unique to each test.

A server that does not answer fails the test with the command that starts it; nothing is skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from shopops.core.registry import BackendSelection
from shopops.schemas.backends import open_schema_store
from shopops.schemas.port import SchemaStore
from shopops.schemas.service import SchemaRegistry

PG_ADMIN_DSN = os.environ.get("SHOPOPS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def schemas_pg_dsn() -> Iterator[str]:
    """A database created for this session on the test PostgreSQL server, dropped at the end."""
    name = f"shopops_schemas_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL does not answer at {PG_ADMIN_DSN} ({exc}). Start it with "
            "`pg_ctlcluster 15 main start` (Debian package postgresql-15; trust auth for user "
            "postgres on 127.0.0.1), or set SHOPOPS_TEST_PG_DSN.",
            pytrace=False,
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        info = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_DSN)
        info["dbname"] = name
        try:
            yield psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items() if v is not None})
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
