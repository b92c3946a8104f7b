"""The embedded schema store: one SQLite file under the data directory.

Writes run in ``BEGIN IMMEDIATE`` transactions, which take the database's single write lock before
reading anything, so a registration's compatibility check and the version it writes are one
serialised step for every thread and process that opens the file, and ids come from one
``AUTOINCREMENT`` sequence that never reuses a value. Reads run in WAL mode and never block writers.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from shopops.core.registry import BackendConfig
from shopops.core.sqlite import connect_wal
from shopops.schemas.backends._sql import Cursor, SqlSchemaStore, iter_statements, refs_json
from shopops.schemas.errors import StoreError
from shopops.schemas.model import NewSchema

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schemas (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL UNIQUE,
    schema_type TEXT NOT NULL,
    schema_text TEXT NOT NULL,
    refs        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    subject   TEXT NOT NULL,
    version   INTEGER NOT NULL,
    schema_id INTEGER NOT NULL,
    deleted   INTEGER NOT NULL,
    PRIMARY KEY (subject, version)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS versions_by_schema ON versions (schema_id);
CREATE TABLE IF NOT EXISTS refs (
    schema_id INTEGER NOT NULL,
    name      TEXT NOT NULL,
    subject   TEXT NOT NULL,
    version   INTEGER NOT NULL,
    PRIMARY KEY (schema_id, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS refs_by_target ON refs (subject, version);
CREATE TABLE IF NOT EXISTS settings (
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (kind, subject)
) WITHOUT ROWID
"""


class SqliteSchemaStore(SqlSchemaStore):
    """The :class:`~shopops.schemas.port.SchemaStore` port on one SQLite file."""

    class Config(BackendConfig):
        """Options of the ``sqlite`` schema store."""

        #: The database file; relative paths are relative to the data directory.
        path: Path = Path("schemas.db")
        #: How long a writer waits for another process's transaction before failing.
        busy_timeout_ms: int = Field(default=30_000, ge=0)

    def __init__(self, config: Config, home: Path) -> None:
        self.config = config
        self.path = config.path if config.path.is_absolute() else Path(home) / config.path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection, one thread at a time: threads queue on this lock rather than on
        # SQLite's busy handler, which sleeps and polls.
        self._lock = threading.RLock()
        self._closed = False
        with self._errors():
            self._conn = self._connect()
            with self._transaction(write=True) as cur:
                for statement in iter_statements(_SCHEMA):
                    cur.execute(statement)

    def _connect(self) -> sqlite3.Connection:
        return connect_wal(self.path, self.config.busy_timeout_ms, "the schema store")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise StoreError(
                    f"Error in the backend data store: {self.path} stayed locked by another writer for "
                    f"{self.config.busy_timeout_ms} ms",
                    hint="retry; raise schemas.store.busy_timeout_ms if writers are slow",
                ) from exc
            raise StoreError(
                f"Error in the backend data store {self.path}: {text}",
                hint="check free disk space and file permissions",
            ) from exc
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"Error in the backend data store: {self.path} is unusable: {exc}",
                hint="restore it from a backup",
            ) from exc

    @contextlib.contextmanager
    def _transaction(self, write: bool) -> Iterator[Cursor]:
        with self._lock, self._errors():
            if self._closed:
                raise StoreError(f"the schema store {self.path} is closed")
            cur = self._conn.cursor()
            # IMMEDIATE takes the write lock before the first read, so what a writer checks
            # cannot change before it writes.
            cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            finally:
                cur.close()

    def _q(self, sql: str) -> str:
        return sql

    def _lock_subject(self, cur: Cursor, subject: str) -> None:
        """Nothing to do: a write transaction already holds the database's only write lock."""

    def _insert_schema(self, cur: Cursor, schema: NewSchema) -> int:
        cur.execute("SELECT id FROM schemas WHERE fingerprint = ?", (schema.fingerprint,))
        row = cur.fetchone()
        if row is not None:
            return int(row[0])
        cur.execute(
            "INSERT INTO schemas (fingerprint, schema_type, schema_text, refs) VALUES (?, ?, ?, ?)",
            (schema.fingerprint, schema.schema_type.value, schema.text, refs_json(schema.references)),
        )
        cur.execute("SELECT last_insert_rowid()")
        schema_id = int(cur.fetchone()[0])
        self._insert_refs(cur, schema_id, schema.references)
        return schema_id

    def _upsert_setting(self, cur: Cursor, kind: str, subject: str, value: str) -> None:
        cur.execute(
            "INSERT INTO settings (kind, subject, value) VALUES (?, ?, ?) "
            "ON CONFLICT (kind, subject) DO UPDATE SET value = excluded.value",
            (kind, subject, value),
        )

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
