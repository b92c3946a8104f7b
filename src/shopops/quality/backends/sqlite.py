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
    ddl,
    failure_params,
    failure_row,
    first_per_dataset,
    inserts,
    result_params,
    result_row,
    run_filters,
    run_params,
    run_row,
    select_latest,
    select_results,
    select_run,
    select_runs,
)
from shopops.quality.model import RunRecord
from shopops.quality.port import ResultsStore

INSERT_RUN, INSERT_RESULT, INSERT_FAILURE = inserts("?")


class SqliteResultsConfig(BackendConfig):
    """``path`` relative to the data directory (default ``quality/results.db``)."""

    path: Path = Path("quality/results.db")
    busy_timeout_ms: int = 10_000


class SqliteResultsStore(ResultsStore):
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

    def runs(
        self,
        dataset: str | None = None,
        *,
        mode: str | None = None,
        failed_only: bool = False,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        where, params = run_filters(dataset, mode, failed_only, "?")
        return [run_row(r) for r in self._all(select_runs(where, "?"), [*params, limit])]

    def run(self, run_id: str) -> dict[str, Any] | None:
        rows = self._all(select_run("?"), (run_id,))
        if not rows:
            return None
        out = run_row(rows[0])
        results = self._all(
            select_results("?"),
            (run_id,),
        )
        out["checks"] = [result_row(r) for r in results]
        return out

    def failures(self, run_id: str, check: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        sql = "SELECT check_name, row_key, reason FROM quality_failures WHERE run_id = ?"
        params: list[Any] = [run_id]
        if check is not None:
            sql += " AND check_name = ?"
            params.append(check)
        sql += " ORDER BY check_name, position LIMIT ?"
        return [failure_row(r) for r in self._all(sql, [*params, limit])]

    def latest(self, mode: str | None = "table") -> list[dict[str, Any]]:
        params = [mode, mode] if mode is not None else []
        return first_per_dataset(
            [run_row(r) for r in self._all(select_latest("?", mode is not None), params)]
        )

    def ping(self) -> None:
        self._all("SELECT 1")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
