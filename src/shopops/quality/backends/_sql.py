"""What the SQLite and PostgreSQL results stores share: the tables and the row shapes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import orjson

from shopops.quality.model import RunRecord

RUN_COLUMNS = (
    "run_id",
    "dataset",
    "mode",
    "source",
    "contract_id",
    "contract_version",
    "started_at_ms",
    "finished_at_ms",
    "rows_checked",
    "rows_failed",
    "outcome",
    "checks_total",
    "checks_failed",
)
RESULT_COLUMNS = (
    "run_id",
    "position",
    "check_name",
    "kind",
    "level",
    "columns",
    "severity",
    "outcome",
    "rows_checked",
    "rows_failed",
    "observed",
    "expected",
    "message",
)
FAILURE_COLUMNS = ("run_id", "check_name", "position", "row_key", "reason")


def inserts(mark: str) -> tuple[str, str, str]:
    """The three INSERT statements with the dialect's parameter mark (a run id already stored is
    left alone: recording a run twice stores it once)."""

    def values(n: int) -> str:
        return ", ".join([mark] * n)

    # Only constant column names and marks are formatted in; values are bound parameters.
    run_cols, result_cols, failure_cols = (
        ", ".join(c) for c in (RUN_COLUMNS, RESULT_COLUMNS, FAILURE_COLUMNS)
    )
    runs = f"INSERT INTO quality_runs ({run_cols}) VALUES ({values(len(RUN_COLUMNS))})"  # noqa: S608
    results = f"INSERT INTO quality_results ({result_cols}) VALUES ({values(len(RESULT_COLUMNS))})"  # noqa: S608
    failures = f"INSERT INTO quality_failures ({failure_cols}) VALUES ({values(len(FAILURE_COLUMNS))})"  # noqa: S608
    return runs + " ON CONFLICT (run_id) DO NOTHING", results, failures


def select_run(mark: str) -> str:
    return f"SELECT {', '.join(RUN_COLUMNS)} FROM quality_runs WHERE run_id = {mark}"  # noqa: S608


def select_results(mark: str) -> str:
    columns = ", ".join(RESULT_COLUMNS)
    return f"SELECT {columns} FROM quality_results WHERE run_id = {mark} ORDER BY position"  # noqa: S608


def ddl(bigint: str, double: str) -> list[str]:
    """The tables, in the dialect's integer and float names."""
    return [
        f"""CREATE TABLE IF NOT EXISTS quality_runs (
            run_id TEXT PRIMARY KEY, dataset TEXT NOT NULL, mode TEXT NOT NULL, source TEXT NOT NULL,
            contract_id TEXT NOT NULL, contract_version TEXT NOT NULL,
            started_at_ms {bigint} NOT NULL, finished_at_ms {bigint} NOT NULL,
            rows_checked {bigint} NOT NULL, rows_failed {bigint} NOT NULL, outcome TEXT NOT NULL,
            checks_total INTEGER NOT NULL, checks_failed INTEGER NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS quality_runs_by_dataset ON quality_runs (dataset, finished_at_ms)",
        "CREATE INDEX IF NOT EXISTS quality_runs_by_time ON quality_runs (finished_at_ms)",
        f"""CREATE TABLE IF NOT EXISTS quality_results (
            run_id TEXT NOT NULL, position INTEGER NOT NULL, check_name TEXT NOT NULL, kind TEXT NOT NULL,
            level TEXT NOT NULL, columns TEXT NOT NULL, severity TEXT NOT NULL, outcome TEXT NOT NULL,
            rows_checked {bigint} NOT NULL, rows_failed {bigint} NOT NULL, observed {double},
            expected TEXT NOT NULL, message TEXT NOT NULL, PRIMARY KEY (run_id, check_name))""",
        """CREATE TABLE IF NOT EXISTS quality_failures (
            run_id TEXT NOT NULL, check_name TEXT NOT NULL, position INTEGER NOT NULL,
            row_key TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (run_id, check_name, position))""",
    ]


def run_params(run: RunRecord) -> tuple[Any, ...]:
    return (
        run.run_id,
        run.dataset,
        run.mode,
        run.source,
        run.contract_id,
        run.contract_version,
        run.started_at_ms,
        run.finished_at_ms,
        run.rows_checked,
        run.rows_failed,
        run.outcome,
        len(run.checks),
        run.checks_failed,
    )


def result_params(run: RunRecord) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for i, c in enumerate(run.checks):
        d = c.to_dict()
        out.append(
            (
                run.run_id,
                i,
                c.check,
                c.kind,
                c.level,
                orjson.dumps(c.columns).decode(),
                c.severity,
                d["outcome"],
                c.rows_checked,
                c.rows_failed,
                c.observed,
                c.expected,
                c.message,
            )
        )
    return out


def failure_params(run: RunRecord) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for c in run.checks:
        for i, f in enumerate(c.samples):
            out.append(
                (run.run_id, c.check, i, orjson.dumps(f.key, option=orjson.OPT_SORT_KEYS).decode(), f.reason)
            )
    return out


def run_row(row: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(RUN_COLUMNS, row, strict=True))


def result_row(row: Sequence[Any]) -> dict[str, Any]:
    d = dict(zip(RESULT_COLUMNS, row, strict=True))
    d.pop("run_id")
    d.pop("position")
    d["check"] = d.pop("check_name")
    d["columns"] = orjson.loads(d["columns"])
    return d


def failure_row(row: Sequence[Any]) -> dict[str, Any]:
    return {"check": row[0], "key": orjson.loads(row[1]), "reason": row[2]}


def run_filters(dataset: str | None, mode: str | None, failed_only: bool, mark: str) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if dataset is not None:
        clauses.append(f"dataset = {mark}")
        params.append(dataset)
    if mode is not None:
        clauses.append(f"mode = {mark}")
        params.append(mode)
    if failed_only:
        clauses.append("(outcome = 'failed' OR checks_failed > 0)")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def select_runs(where: str, mark: str) -> str:
    # Only constant column names and placeholders are formatted in; values are bound parameters.
    columns = ", ".join(RUN_COLUMNS)
    return f"SELECT {columns} FROM quality_runs{where} ORDER BY finished_at_ms DESC, run_id LIMIT {mark}"  # noqa: S608


def select_latest(mark: str, with_mode: bool) -> str:
    """The newest run of each dataset (ties on the finishing time: any one of them, deduplicated by
    the caller)."""
    where = f" WHERE mode = {mark}" if with_mode else ""
    inner = f"SELECT dataset, MAX(finished_at_ms) AS m FROM quality_runs{where} GROUP BY dataset"  # noqa: S608
    also = f" AND r.mode = {mark}" if with_mode else ""
    return (
        f"SELECT {', '.join('r.' + c for c in RUN_COLUMNS)} FROM quality_runs r JOIN ({inner}) l "  # noqa: S608
        f"ON r.dataset = l.dataset AND r.finished_at_ms = l.m{also} ORDER BY r.dataset, r.run_id"
    )


def first_per_dataset(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for r in rows:
        if r["dataset"] not in seen:
            seen.add(r["dataset"])
            out.append(r)
    return out


class SqlReads(ABC):
    """The reading half of a results store, written once for both SQL dialects."""

    #: The driver's parameter placeholder (``?`` for sqlite3, ``%s`` for psycopg).
    placeholder = "?"

    @abstractmethod
    def _all(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Every row ``sql`` returns."""

    def runs(
        self,
        dataset: str | None = None,
        *,
        mode: str | None = None,
        failed_only: bool = False,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        where, params = run_filters(dataset, mode, failed_only, self.placeholder)
        return [run_row(r) for r in self._all(select_runs(where, self.placeholder), [*params, limit])]

    def run(self, run_id: str) -> dict[str, Any] | None:
        rows = self._all(select_run(self.placeholder), (run_id,))
        if not rows:
            return None
        out = run_row(rows[0])
        results = self._all(select_results(self.placeholder), (run_id,))
        out["checks"] = [result_row(r) for r in results]
        return out

    def failures(self, run_id: str, check: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        ph = self.placeholder  # the driver's placeholder, never user input
        where = f"run_id = {ph}" + (f" AND check_name = {ph}" if check is not None else "")
        sql = (
            "SELECT check_name, row_key, reason FROM quality_failures "  # noqa: S608 - placeholders only
            f"WHERE {where} ORDER BY check_name, position LIMIT {ph}"
        )
        params: list[Any] = [run_id]
        if check is not None:
            params.append(check)
        return [failure_row(r) for r in self._all(sql, [*params, limit])]

    def latest(self, mode: str | None = "table") -> list[dict[str, Any]]:
        params = [mode, mode] if mode is not None else []
        return first_per_dataset(
            [run_row(r) for r in self._all(select_latest(self.placeholder, mode is not None), params)]
        )
