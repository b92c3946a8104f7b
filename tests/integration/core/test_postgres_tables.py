"""PostgreSQL stores create their tables safely when several processes start at once."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
from tests.support.postgres import scratch_database

from shopops.catalog.backends.postgres import PostgresCatalogStore
from shopops.core.errors import BackendUnavailableError
from shopops.core.postgres import create_tables_once
from shopops.governance.backends.postgres import PostgresAuditStore, PostgresKeyStore
from shopops.quality.backends.postgres import PostgresResultsStore
from shopops.schemas.backends.postgres import PostgresSchemaStore

STORES: dict[str, Any] = {
    "catalog": PostgresCatalogStore,
    "schemas": PostgresSchemaStore,
    "keys": PostgresKeyStore,
    "audit": PostgresAuditStore,
    "quality": PostgresResultsStore,
}


@pytest.mark.parametrize("kind", sorted(STORES))
def test_clients_starting_together_all_open_the_store(kind: str) -> None:
    # One connection per thread: to PostgreSQL these are separate sessions racing, as separate
    # processes would be (without the lock, CREATE SCHEMA/TABLE IF NOT EXISTS fail on pg_namespace).
    store_class = STORES[kind]
    n = 6
    barrier = threading.Barrier(n)
    outcomes: list[str] = []

    def open_store(dsn: str) -> None:
        barrier.wait(timeout=60)
        try:
            store_class(store_class.Config(dsn=dsn, schema_name="race")).close()
            outcomes.append("ok")
        except Exception as exc:  # reported to the test, which fails with it
            outcomes.append(f"{type(exc).__name__}: {exc}")

    with scratch_database(f"ddl_{kind}") as dsn:
        threads = [threading.Thread(target=open_store, args=(dsn,)) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert outcomes == ["ok"] * n
        with psycopg.connect(dsn) as conn:
            count = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'race'"
            ).fetchone()
        assert count is not None
        assert count[0] >= 1


def test_a_table_missing_from_an_existing_schema_is_created() -> None:
    with scratch_database("ddl_upgrade") as dsn:
        config = PostgresCatalogStore.Config(dsn=dsn, schema_name="cat")
        PostgresCatalogStore(config).close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE cat.column_edges")
        PostgresCatalogStore(config).close()
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT to_regclass('cat.column_edges')").fetchone()
        assert row is not None
        assert row[0] is not None


def test_bad_ddl_and_unreachable_server_raise_the_store_error() -> None:
    with scratch_database("ddl_bad") as dsn:
        config = PostgresCatalogStore.Config(dsn=dsn, schema_name="bad")
        with pytest.raises(BackendUnavailableError, match="cannot create the tables of the test store"):
            create_tables_once(
                config,
                ["CREATE TABLE IF NOT EXISTS t (a int)", "CREATE TABLE IF NOT EXISTS u (a nosuchtype)"],
                what="the test store",
                setting="test.dsn",
                error=BackendUnavailableError,
            )
        # All or nothing: the first table was rolled back with the second.
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT to_regclass('bad.t')").fetchone()
        assert row is not None
        assert row[0] is None
    unreachable = PostgresCatalogStore.Config(dsn="postgresql://postgres@127.0.0.1:1/x", schema_name="x")
    with pytest.raises(BackendUnavailableError, match="cannot connect to PostgreSQL for the test store"):
        create_tables_once(
            unreachable, [], what="the test store", setting="test.dsn", error=BackendUnavailableError
        )
