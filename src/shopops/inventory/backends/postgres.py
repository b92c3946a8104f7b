"""The PostgreSQL reservation store: row locks, in key order, at READ COMMITTED.

Medusa #16569 is what goes wrong without them: two transactions read ``available = 1`` at READ
COMMITTED, both insert a reservation, both commit. Here each write transaction first takes the
``stock`` rows it needs with ``SELECT ... FOR UPDATE ORDER BY sku, warehouse``; a second
checkout of the same item waits on the lock and then reads the row as the first one committed
it, so the availability check and the hold are one step. Locking always in the same
(bytewise, ``COLLATE "C"``) key order means no two transactions can wait on each other in a
cycle, however many items a cart spans. No serialisation retries are needed.

Connections come from a psycopg 3 pool; the schema is created idempotently at start-up under an
advisory lock (several processes may start at once).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool, PoolTimeout
from pydantic import Field, field_validator

from shopops.core.errors import BackendUnavailableError, ConfigError
from shopops.core.registry import BackendConfig
from shopops.inventory.backends._sql import Cursor, SqlReservationStore

SCHEMA_VERSION = 1

# An arbitrary constant: the advisory lock that serialises schema creation between processes.
_SCHEMA_LOCK_ID = 0x5F0F_1A7E

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   text PRIMARY KEY,
    value bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS stock (
    sku           text NOT NULL,
    warehouse     text NOT NULL,
    on_hand       bigint NOT NULL CHECK (on_hand >= 0),
    committed     bigint NOT NULL CHECK (committed >= 0),
    held_total    bigint NOT NULL CHECK (held_total >= 0),
    blocked       bigint NOT NULL,
    -- The item's clock: the latest time any writer used on it (never decreases).
    clock_ms      bigint NOT NULL,
    PRIMARY KEY (sku, warehouse)
);
CREATE TABLE IF NOT EXISTS reservations (
    id              text PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    lines           text NOT NULL,
    status          text NOT NULL,
    created_at_ms   bigint NOT NULL,
    expires_at_ms   bigint NOT NULL,
    updated_at_ms   bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS reservations_due ON reservations (expires_at_ms) WHERE status = 'held';
CREATE TABLE IF NOT EXISTS holds (
    reservation_id text NOT NULL,
    sku            text NOT NULL,
    warehouse      text NOT NULL,
    quantity       bigint NOT NULL CHECK (quantity > 0),
    expires_at_ms  bigint NOT NULL,
    PRIMARY KEY (reservation_id, sku, warehouse)
);
CREATE INDEX IF NOT EXISTS holds_by_item ON holds (sku, warehouse, expires_at_ms);
CREATE TABLE IF NOT EXISTS outbox (
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL,
    data          text NOT NULL,
    created_at_ms bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS relay_lease (
    name     text PRIMARY KEY,
    owner    text NOT NULL,
    until_ms bigint NOT NULL
);
INSERT INTO relay_lease (name, owner, until_ms) VALUES ('outbox', '', 0) ON CONFLICT (name) DO NOTHING
"""

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresReservationStore(SqlReservationStore):
    """The :class:`~shopops.inventory.port.ReservationStore` port on PostgreSQL (12 or later)."""

    lock_rows = " FOR UPDATE"
    lock_rows_skip_locked = " FOR UPDATE SKIP LOCKED"
    key_collation = ' COLLATE "C"'
    greatest = "GREATEST"

    class Config(BackendConfig):
        """Options of the ``postgres`` reservation store."""

        #: libpq connection string or URL, e.g. ``postgresql://shopops@db:5432/shopops``.
        dsn: str = "postgresql://postgres@127.0.0.1:5432/shopops"
        #: The PostgreSQL schema holding the tables (created when missing).
        schema_name: str = "inventory"
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

    def __init__(self, config: Config, home: Path | None = None) -> None:
        self.config = config
        self.schema = config.schema_name
        self._closed = False
        self._pool = ConnectionPool(
            config.dsn,
            min_size=config.pool_min_size,
            max_size=max(config.pool_min_size, config.pool_max_size),
            timeout=config.pool_timeout_s,
            kwargs={"connect_timeout": config.connect_timeout_s, "autocommit": False},
            configure=self._configure,
            open=False,
            name="shopops-inventory",
        )
        try:
            self._pool.open(wait=True, timeout=config.pool_timeout_s)
        except PoolTimeout as exc:
            self._pool.close()
            raise BackendUnavailableError(
                f"cannot connect to PostgreSQL for the reservation store ({self._where()}): {exc}",
                hint="start PostgreSQL (e.g. `pg_ctlcluster 15 main start`) and check inventory.dsn",
            ) from exc
        try:
            self._init_schema()
        except BaseException:
            self._pool.close()
            raise

    def _where(self) -> str:
        # The DSN may hold a password: show only where it points.
        try:
            info = psycopg.conninfo.conninfo_to_dict(self.config.dsn)
        except psycopg.ProgrammingError:
            return "an unparsable dsn"
        return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        with conn.cursor() as cur:
            cur.execute(f'SET search_path TO "{self.schema}"')
            cur.execute(f"SET lock_timeout = {int(self.config.lock_timeout_ms)}")
            # Explicit: the guarantees are argued at READ COMMITTED; a server default of
            # SERIALIZABLE would add retry errors this code does not need.
            cur.execute("SET default_transaction_isolation = 'read committed'")
        conn.commit()

    def _schema_version(self, cur: Cursor) -> int | None:
        cur.execute("SELECT to_regclass(%s)", (f'"{self.schema}".meta',))
        if cur.fetchone()[0] is None:
            return None
        cur.execute("SELECT value FROM meta WHERE key = 'schema_version'")
        row = cur.fetchone()
        return int(row[0]) if row is not None else None

    def _check_version(self, version: int) -> None:
        if version != SCHEMA_VERSION:
            raise ConfigError(
                f"the reservation schema {self.schema!r} has version {version}, "
                f"this shopops reads {SCHEMA_VERSION}",
                hint="use the shopops version that wrote it, or set inventory.schema_name to a new one",
            )

    def _init_schema(self) -> None:
        # DDL only when the schema is missing: even CREATE INDEX IF NOT EXISTS locks its table
        # (SHARE), which would deadlock against reservations running in other processes.
        with self._write() as cur:
            version = self._schema_version(cur)
        if version is not None:
            self._check_version(version)
            return
        with self._write() as cur:
            # Processes starting together on an empty database create it one at a time.
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_ID,))
            cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            version = self._schema_version(cur)
            if version is not None:
                self._check_version(version)
                return
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    cur.execute(statement)
            cur.execute("INSERT INTO meta (key, value) VALUES ('schema_version', %s)", (SCHEMA_VERSION,))

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except psycopg.errors.LockNotAvailable as exc:
            raise BackendUnavailableError(
                f"a stock row stayed locked for more than {self.config.lock_timeout_ms} ms",
                hint="retry; if it persists, look for long transactions in pg_stat_activity",
            ) from exc
        except PoolTimeout as exc:
            raise BackendUnavailableError(
                f"no PostgreSQL connection free within {self.config.pool_timeout_s} s ({self._where()})",
                hint="raise inventory.pool_max_size or check that PostgreSQL is up",
            ) from exc
        except psycopg.errors.TransactionRollback as exc:
            # Locks are always taken in one order, so this is not expected; the transaction was
            # rolled back whole and can be retried.
            raise BackendUnavailableError(
                f"PostgreSQL aborted a reservation-store transaction: {exc}",
                hint="retry the request; nothing of it was written",
            ) from exc
        except psycopg.OperationalError as exc:
            raise BackendUnavailableError(
                f"PostgreSQL failed for the reservation store ({self._where()}): {exc}",
                hint="check that PostgreSQL is up (e.g. `pg_ctlcluster 15 main start`)",
            ) from exc

    def _check_open(self) -> None:
        if self._closed:
            raise BackendUnavailableError("the reservation store is closed", hint="open a new one")

    @contextlib.contextmanager
    def _write(self) -> Iterator[Cursor]:
        self._check_open()
        with self._errors(), self._pool.connection() as conn, conn.cursor() as cur:
            # The pool's context commits when the block ends and rolls back on an exception.
            yield cur

    @contextlib.contextmanager
    def _read(self) -> Iterator[Cursor]:
        self._check_open()
        with self._errors(), self._pool.connection() as conn, conn.cursor() as cur:
            yield cur

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool.close()
