"""The embedded catalog store: one SQLite file, ``$SHOPOPS_HOME/catalog/catalog.db`` by default.

Writes run in ``BEGIN IMMEDIATE`` transactions, which take the database's single write lock before
reading anything: a run event's duplicate check, the merge of the run's state and the edges it
adds are one serialised step for every thread and process that opens the file. Reads run in WAL
mode and never block writers.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from shopops.catalog.backends._sql import Cursor, SqlCatalogStore, iter_statements
from shopops.core.errors import BackendUnavailableError
from shopops.core.registry import BackendConfig
from shopops.core.sqlite import connect_wal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    name          TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    domain        TEXT NOT NULL,
    doc           TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS datasets_by_kind ON datasets (kind, name);
CREATE INDEX IF NOT EXISTS datasets_by_domain ON datasets (domain, name);
CREATE TABLE IF NOT EXISTS jobs (
    name          TEXT PRIMARY KEY,
    namespace     TEXT NOT NULL,
    description   TEXT NOT NULL,
    last_run_id   TEXT,
    updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    run_id        TEXT PRIMARY KEY,
    job           TEXT NOT NULL,
    state         TEXT NOT NULL,
    started_at_ms INTEGER,
    ended_at_ms   INTEGER,
    inputs        TEXT NOT NULL,
    outputs       TEXT NOT NULL,
    facets        TEXT NOT NULL,
    error         TEXT,
    updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS runs_by_job ON runs (job, started_at_ms);
CREATE TABLE IF NOT EXISTS run_datasets (
    run_id    TEXT NOT NULL,
    dataset   TEXT NOT NULL,
    direction TEXT NOT NULL,
    PRIMARY KEY (run_id, dataset, direction)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS run_datasets_by_dataset ON run_datasets (dataset);
CREATE TABLE IF NOT EXISTS edges (
    job           TEXT NOT NULL,
    dataset       TEXT NOT NULL,
    direction     TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    last_run_id   TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (job, dataset, direction)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS flows (
    job           TEXT NOT NULL,
    in_dataset    TEXT NOT NULL,
    out_dataset   TEXT NOT NULL,
    last_run_id   TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (job, in_dataset, out_dataset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS column_edges (
    job            TEXT NOT NULL,
    in_dataset     TEXT NOT NULL,
    in_column      TEXT NOT NULL,
    out_dataset    TEXT NOT NULL,
    out_column     TEXT NOT NULL,
    transformation TEXT NOT NULL,
    updated_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (job, in_dataset, in_column, out_dataset, out_column)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS column_edges_by_out ON column_edges (out_dataset);
CREATE INDEX IF NOT EXISTS column_edges_by_in ON column_edges (in_dataset);
CREATE TABLE IF NOT EXISTS events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id         TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    event_time_ms  INTEGER NOT NULL,
    payload        TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    sent_at_ms     INTEGER,
    lease_until_ms INTEGER,
    attempts       INTEGER NOT NULL,
    last_error     TEXT,
    UNIQUE (run_id, event_type)
);
CREATE INDEX IF NOT EXISTS events_unsent ON events (seq) WHERE sent_at_ms IS NULL
"""


class SqliteCatalogStore(SqlCatalogStore):
    """The :class:`~shopops.catalog.port.CatalogStore` port on one SQLite file."""

    class Config(BackendConfig):
        """Options of the ``sqlite`` catalog store."""

        #: The database file; relative paths are relative to the data directory.
        path: Path = Path("catalog/catalog.db")
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
            self._conn = connect_wal(self.path, config.busy_timeout_ms, "the catalog store")
            with self._transaction() as cur:
                for statement in iter_statements(_SCHEMA):
                    cur.execute(statement)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise BackendUnavailableError(
                    f"the catalog store {self.path} stayed locked by another writer for "
                    f"{self.config.busy_timeout_ms} ms",
                    hint="retry; raise catalog.store.busy_timeout_ms if writers are slow",
                ) from exc
            raise BackendUnavailableError(
                f"the catalog store {self.path} failed: {text}", hint="check free disk space and permissions"
            ) from exc
        except sqlite3.DatabaseError as exc:
            raise BackendUnavailableError(
                f"the catalog store {self.path} is unusable: {exc}",
                hint="restore it from a backup, or remove it and run `shopops catalog sync` "
                "(lineage recorded so far would be lost)",
            ) from exc

    @contextlib.contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Cursor]:
        with self._lock, self._errors():
            if self._closed:
                raise BackendUnavailableError(f"the catalog store {self.path} is closed")
            cur = self._conn.cursor()
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

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
