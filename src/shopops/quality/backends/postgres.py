"""The results store on PostgreSQL, shared by every process of the platform."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from shopops.core.errors import BackendUnavailableError
from shopops.core.postgres import PostgresStoreConfig, create_tables_once, open_pool
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

INSERT_RUN, INSERT_RESULT, INSERT_FAILURE = inserts("%s")


class PostgresResultsConfig(PostgresStoreConfig):
    schema_name: str = "quality"
    pool_max_size: int = 4


class _Errors:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, psycopg.OperationalError):
            raise BackendUnavailableError(
                f"PostgreSQL for the quality results cannot be used: {exc}",
                hint="start PostgreSQL and check quality.store.dsn",
            ) from exc


class PostgresResultsStore(SqlReads, ResultsStore):
    """Runs, results and failing rows in PostgreSQL; one transaction per run."""

    Config = PostgresResultsConfig
    placeholder = "%s"

    def __init__(self, config: PostgresResultsConfig, home: Path | None = None) -> None:
        create_tables_once(
            config,
            ddl("BIGINT", "DOUBLE PRECISION"),
            what="the quality results",
            setting="quality.store.dsn",
            error=BackendUnavailableError,
        )
        self._pool = open_pool(
            config,
            name="quality-results",
            what="the quality results",
            setting="quality.store.dsn",
            error=BackendUnavailableError,
        )

    def record(self, run: RunRecord) -> bool:
        with _Errors(), self._pool.connection() as conn, conn.transaction():
            cur = conn.execute(
                INSERT_RUN,
                run_params(run),
            )
            if cur.rowcount == 0:
                return False
            with conn.cursor() as c:
                c.executemany(
                    INSERT_RESULT,
                    result_params(run),
                )
                failures = failure_params(run)
                if failures:
                    c.executemany(
                        INSERT_FAILURE,
                        failures,
                    )
            return True

    def _all(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with _Errors(), self._pool.connection() as conn:
            rows: list[tuple[Any, ...]] = conn.execute(sql, params).fetchall()
            return rows

    def ping(self) -> None:
        self._all("SELECT 1")

    def close(self) -> None:
        self._pool.close()
