"""PostgreSQL stores create their tables safely when several processes start at once."""

from __future__ import annotations

import multiprocessing
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


def _open(kind: str, dsn: str, schema: str, barrier: Any, results: Any) -> None:
    store_class = STORES[kind]
    barrier.wait(timeout=60)
    try:
        store = store_class(store_class.Config(dsn=dsn, schema_name=schema))
        store.close()
        results.put("ok")
    except Exception as exc:  # reported to the test, which fails with it
        results.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize("kind", sorted(STORES))
def test_processes_starting_together_all_open_the_store(kind: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    n = 6
    barrier = ctx.Barrier(n)
    results = ctx.Queue()
    with scratch_database(f"ddl_{kind}") as dsn:
        procs = [ctx.Process(target=_open, args=(kind, dsn, "race", barrier, results)) for _ in range(n)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        outcomes = [results.get(timeout=5) for _ in range(n)]
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
