"""What every PostgreSQL-backed store shares: its options, its pool, and its session settings."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout
from pydantic import Field, field_validator

from shopops.core.errors import ShopopsError
from shopops.core.registry import BackendConfig

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


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
