"""The embedded results store: one SQLite file (WAL) under ``$SHOPOPS_HOME/quality/``."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from shopops.core.errors import BackendUnavailableError
from shopops.core.registry import BackendConfig
from shopops.core.sqlite import connect_wal
from shopops.quality.backends._sql import (
    SqlReads,
    ddl,
    failure_params,
    inserts,
    result_params,
    run_params,
)
from shopops.quality.model import RunRecord
from shopops.quality.port import ResultsStore

INSERT_RUN, INSERT_RESULT, INSERT_FAILURE = inserts("?")


class SqliteResultsConfig(BackendConfig):
    """``path`` relative to the data directory (default ``quality/results.db``)."""

    path: Path = Path("quality/results.db")
    busy_timeout_ms: int = 10_000


class SqliteResultsStore(SqlReads, ResultsStore):
    """Runs, results and failing rows in SQLite; one write transaction per run."""

    Config = SqliteResultsConfig

    def __init__(self, config: SqliteResultsConfig, home: Path) -> None:
        self.path = config.path if config.path.is_absolute() else home / config.path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = connect_wal(self.path, config.busy_timeout_ms, "the quality results store")
            self._conn.execute("BEGIN IMMEDIATE")
            for statement in ddl("INTEGER", "REAL"):
                self._conn.execute(statement)
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise BackendUnavailableError(
                f"cannot open the quality results store {self.path}: {exc}",
                hint="check that the data directory is writable (quality.store.path)",
            ) from exc
        # One connection shared by threads: sqlite3 serialises calls, the lock keeps a transaction whole.
        self._lock = threading.Lock()

    def record(self, run: RunRecord) -> bool:
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute(
                    INSERT_RUN,
                    run_params(run),
                )
                if cur.rowcount == 0:
                    conn.execute("ROLLBACK")
                    return False
                conn.executemany(
                    INSERT_RESULT,
                    result_params(run),
                )
                conn.executemany(
                    INSERT_FAILURE,
                    failure_params(run),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return True

    def _all(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            rows: list[tuple[Any, ...]] = self._conn.execute(sql, params).fetchall()
            return rows

    def ping(self) -> None:
        self._all("SELECT 1")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
