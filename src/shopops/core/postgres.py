"""What every PostgreSQL-backed store shares: its options, its pool, and its session settings."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout
from pydantic import Field, field_validator

from shopops.core.errors import ShopopsError
from shopops.core.registry import BackendConfig

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_CREATE_TABLE = re.compile(r"CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+([a-z_][a-z0-9_]*)", re.IGNORECASE)


class PostgresStoreConfig(BackendConfig):
    """Options of a store on PostgreSQL; subclasses set their own ``schema_name`` default."""

    #: libpq connection string or URL, e.g. ``postgresql://shopops@db:5432/shopops``.
    dsn: str = "postgresql://postgres@127.0.0.1:5432/shopops"
    #: The PostgreSQL schema holding the tables (created when missing).
    schema_name: str = "shopops"
    pool_min_size: int = Field(default=1, ge=1)
    pool_max_size: int = Field(default=10, ge=1)
    #: How long a request waits for a free pooled connection.
    pool_timeout_s: float = Field(default=10.0, gt=0)
    connect_timeout_s: int = Field(default=5, ge=1)
    #: A transaction waiting longer than this for a row lock fails instead of queueing forever.
    lock_timeout_ms: int = Field(default=10_000, ge=0)

    @field_validator("schema_name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _SCHEMA_NAME.match(value):
            raise ValueError("use a lower-case identifier: letters, digits and '_' (at most 63)")
        return value


def describe_dsn(dsn: str) -> str:
    """Where a DSN points (host:port/db), for messages: the DSN itself may hold a password."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "an unparsable dsn"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def open_pool(
    config: PostgresStoreConfig, *, name: str, what: str, setting: str, error: type[ShopopsError]
) -> ConnectionPool[Any]:
    """Open a connection pool whose sessions use the store's schema, lock timeout and READ
    COMMITTED; a server that cannot be reached raises ``error`` naming ``what`` and ``setting``."""

    def configure(conn: psycopg.Connection[Any]) -> None:
        with conn.cursor() as cur:
            cur.execute(f'SET search_path TO "{config.schema_name}"')
            cur.execute(f"SET lock_timeout = {int(config.lock_timeout_ms)}")
            # Explicit: the stores' guarantees are argued at READ COMMITTED; a server default of
            # SERIALIZABLE would add retry errors their code does not need.
            cur.execute("SET default_transaction_isolation = 'read committed'")
        conn.commit()

    pool: ConnectionPool[Any] = ConnectionPool(
        config.dsn,
        min_size=config.pool_min_size,
        max_size=max(config.pool_min_size, config.pool_max_size),
        timeout=config.pool_timeout_s,
        kwargs={"connect_timeout": config.connect_timeout_s, "autocommit": False},
        configure=configure,
        open=False,
        name=name,
    )
    try:
        pool.open(wait=True, timeout=config.pool_timeout_s)
    except PoolTimeout as exc:
        pool.close()
        raise error(
            f"cannot connect to PostgreSQL for {what} ({describe_dsn(config.dsn)}): {exc}",
            hint=f"start PostgreSQL (e.g. `pg_ctlcluster 15 main start`) and check {setting}",
        ) from exc
    return pool


def create_tables_once(
    config: PostgresStoreConfig,
    statements: Sequence[str],
    *,
    what: str,
    setting: str,
    error: type[ShopopsError],
) -> None:
    """Create the store's schema and run ``statements`` in it, unless every table they create exists.

    Processes that start together on an empty database create the tables one at a time: a
    session advisory lock (one per schema) serialises them, and each statement after it runs in
    autocommit, so the second process's check sees what the first one committed. (An advisory lock
    taken inside a transaction would not: that transaction's catalog snapshot predates the other
    commit, and two concurrent ``CREATE TABLE IF NOT EXISTS`` can fail on ``pg_type``'s unique
    index.) When every table exists nothing else runs: even ``CREATE INDEX IF NOT EXISTS`` takes a
    table lock that would queue behind transactions of running processes.
    """
    schema = config.schema_name
    tables = [m.group(1) for s in statements for m in _CREATE_TABLE.finditer(s)]
    lock_id = zlib.crc32(f"shopops-ddl:{schema}".encode())

    def complete(conn: psycopg.Connection[Any]) -> bool:
        for table in tables:
            row = conn.execute("SELECT to_regclass(%s)", (f'"{schema}".{table}',)).fetchone()
            if row is None or row[0] is None:
                return False
        return True

    try:
        with psycopg.connect(config.dsn, connect_timeout=config.connect_timeout_s, autocommit=True) as conn:
            if complete(conn):
                return
            conn.execute("SELECT pg_advisory_lock(%s)", (lock_id,))
            try:
                if not complete(conn):
                    with conn.transaction():
                        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                        conn.execute(f'SET LOCAL search_path TO "{schema}"')
                        for statement in statements:
                            conn.execute(statement)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (lock_id,))
    except psycopg.OperationalError as exc:
        raise error(
            f"cannot connect to PostgreSQL for {what} ({describe_dsn(config.dsn)}): {exc}",
            hint=f"start PostgreSQL (e.g. `pg_ctlcluster 15 main start`) and check {setting}",
        ) from exc
    except psycopg.Error as exc:
        raise error(
            f"cannot create the tables of {what} in schema {schema!r} ({describe_dsn(config.dsn)}): {exc}",
            hint=f"the user of {setting} needs CREATE on the database",
        ) from exc
