"""The embedded reservation store: one SQLite file under the data directory.

Every write runs in a ``BEGIN IMMEDIATE`` transaction, which takes the database's single write
lock before reading anything: the availability check and the hold it grants are one serialised
step across every thread and process that opens the file, so two checkouts can never both take
the last unit. Reads run in WAL mode and never block writers. Throughput is bounded by that one
write lock (a few thousand reservations a second on one machine); beyond that, or across
machines, use the redis or postgres backend.

Durability: WAL with ``synchronous=NORMAL``: a committed reservation survives the process being
killed (SIGKILL included); only a power loss can lose the last transactions.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from shopops.core.errors import BackendUnavailableError, ConfigError
from shopops.core.registry import BackendConfig
from shopops.core.sqlite import connect_wal
from shopops.inventory.backends._sql import Cursor, SqlReservationStore

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stock (
    sku           TEXT NOT NULL,
    warehouse     TEXT NOT NULL,
    on_hand       INTEGER NOT NULL CHECK (on_hand >= 0),
    committed     INTEGER NOT NULL CHECK (committed >= 0),
    held_total    INTEGER NOT NULL CHECK (held_total >= 0),
    blocked       INTEGER NOT NULL,
    -- The item's clock: the latest time any writer used on it (never decreases).
    clock_ms      INTEGER NOT NULL,
    PRIMARY KEY (sku, warehouse)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reservations (
    id              TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    lines           TEXT NOT NULL,
    status          TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    expires_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS reservations_due ON reservations (expires_at_ms) WHERE status = 'held';
CREATE TABLE IF NOT EXISTS holds (
    reservation_id TEXT NOT NULL,
    sku            TEXT NOT NULL,
    warehouse      TEXT NOT NULL,
    quantity       INTEGER NOT NULL CHECK (quantity > 0),
    expires_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (reservation_id, sku, warehouse)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS holds_by_item ON holds (sku, warehouse, expires_at_ms);
CREATE TABLE IF NOT EXISTS outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL,
    data          TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS relay_lease (
    name     TEXT PRIMARY KEY,
    owner    TEXT NOT NULL,
    until_ms INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO relay_lease (name, owner, until_ms) VALUES ('outbox', '', 0)
"""


def _connect(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    conn = connect_wal(path, busy_timeout_ms, "the reservation store")
    conn.execute("PRAGMA foreign_keys = OFF")
    return conn


class SqliteReservationStore(SqlReservationStore):
    """The :class:`~shopops.inventory.port.ReservationStore` port on one SQLite file."""

    # SQLite's expression depth limit (1,000) bounds an OR chain; larger key sets use IN (VALUES).
    or_match_up_to = 200

    class Config(BackendConfig):
        """Options of the ``sqlite`` reservation store."""

        #: The database file; relative paths are relative to the data directory.
        path: Path = Path("inventory.db")
        #: How long a writer waits for another process's transaction before failing.
        busy_timeout_ms: int = Field(default=30_000, ge=0)

    def __init__(self, config: Config, home: Path) -> None:
        self.config = config
        self.path = config.path if config.path.is_absolute() else Path(home) / config.path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_ms = config.busy_timeout_ms
        # One connection per store, used by one thread at a time: threads of a process queue on
        # this lock (cheap, fair) instead of on SQLite's busy handler (sleeps and polls).
        self._lock = threading.RLock()
        self._closed = False
        with self._errors():
            self._conn = _connect(self.path, self._busy_ms)
            self._init_schema()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise BackendUnavailableError(
                    f"the reservation store {self.path} stayed locked by another writer "
                    f"for {self._busy_ms} ms",
                    hint="raise inventory.busy_timeout_ms, or look for a process holding a long transaction",
                ) from exc
            raise BackendUnavailableError(
                f"the reservation store {self.path} failed: {text}",
                hint="check free disk space and file permissions",
            ) from exc
        except sqlite3.DatabaseError as exc:
            raise BackendUnavailableError(
                f"the reservation store {self.path} is unusable: {exc}",
                hint="restore it from a backup; the stock can be set again from the warehouse CDC stream",
            ) from exc

    def _init_schema(self) -> None:
        with self._write() as cur:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    cur.execute(statement)
            cur.execute("SELECT value FROM meta WHERE key = 'schema_version'")
            row = cur.fetchone()
            if row is None:
                cur.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise ConfigError(
                    f"the reservation store {self.path} has schema version {row[0]}, "
                    f"this shopops reads {SCHEMA_VERSION}",
                    hint="use the shopops version that wrote it, or point inventory.path at a new file",
                )

    def _check_open(self) -> None:
        if self._closed:
            raise BackendUnavailableError(
                f"the reservation store {self.path} is closed", hint="open a new one"
            )

    @contextlib.contextmanager
    def _write(self) -> Iterator[Cursor]:
        with self._lock, self._errors():
            self._check_open()
            cur = self._conn.cursor()
            # IMMEDIATE takes the write lock before the first read: the check and the write
            # that depends on it cannot interleave with any other writer.
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            finally:
                cur.close()

    @contextlib.contextmanager
    def _read(self) -> Iterator[Cursor]:
        with self._lock, self._errors():
            self._check_open()
            cur = self._conn.cursor()
            try:
                yield cur
            finally:
                cur.close()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
