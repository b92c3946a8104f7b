"""Where results live: Parquet partitions per region and business day, and a run log in SQLite.

``<results>/exceptions/<region>/<YYYY-MM-DD>.parquet`` holds the open exceptions of one region-day,
``<results>/summary/<region>/<YYYY-MM-DD>.parquet`` its summary row. A run replaces the partitions
of its window: each file is written under a temporary name and renamed, under a lock shared by
every process, so a rerun writes nothing twice, readers never see half a partition, and two runs
over the same days do not interleave. An exception seen by an earlier run keeps its
``open_since``; one that is gone is resolved (counted in the run log).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shopops.core.errors import InvalidInputError
from shopops.core.sqlite import connect_wal
from shopops.reconciliation.model import ExceptionClass, RunReport

#: Threads writing partitions (bounded: the machine may be shared).
_WRITERS = min(4, os.cpu_count() or 1)

_RUNS_DDL = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    report TEXT NOT NULL,
    error TEXT,
    pid INTEGER
)
"""


def _slices(table: pa.Table) -> dict[tuple[str, date], tuple[int, int]]:
    """(region, business date) -> (offset, length) of its rows in ``table``, sorted by both."""
    if table.num_rows == 0:
        return {}
    runs = table.select(["region", "business_date"]).group_by(["region", "business_date"], use_threads=False)
    counts = runs.aggregate([([], "count_all")]).to_pylist()
    out: dict[tuple[str, date], tuple[int, int]] = {}
    offset = 0
    for row in counts:  # group_by keeps first-seen order, which is the sort order here
        out[(row["region"], row["business_date"])] = (offset, row["count_all"])
        offset += row["count_all"]
    return out


class ResultStore:
    """Reads and writes the stored results under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._db = connect_wal(root / "runs.db", 10_000, "reconciliation run log")
        self._db.execute(_RUNS_DDL)

    def close(self) -> None:
        self._db.close()

    # --- writing ------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _path(self, kind: str, region: str, day: date) -> Path:
        return self.root / kind / region / f"{day.isoformat()}.parquet"

    @staticmethod
    def _write(table: pa.Table, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)

    def replace_partitions(
        self,
        exceptions: pa.Table,
        summary: pa.Table,
        regions: list[str],
        days: list[date],
        now: datetime,
    ) -> tuple[int, int]:
        """Replace every (region, day) partition of the window; returns (partitions, resolved).

        ``exceptions`` and ``summary`` must be sorted by region and business date.
        """
        exc_slices = _slices(exceptions)
        sum_slices = _slices(summary)

        def replace(region: str, day: date) -> int:
            start, length = exc_slices.get((region, day), (0, 0))
            part = exceptions.slice(start, length)
            path = self._path("exceptions", region, day)
            part, gone = self._carry_open_since(part, path, now)
            self._write(part, path)
            start, length = sum_slices.get((region, day), (0, 0))
            self._write(summary.slice(start, length), self._path("summary", region, day))
            return gone

        # Parquet encoding and compression release the GIL: partitions are written in parallel,
        # each still whole or not at all (temporary name, then rename), all under the lock.
        with self._locked(), ThreadPoolExecutor(max_workers=_WRITERS) as pool:
            gone = list(pool.map(lambda key: replace(*key), [(r, d) for r in regions for d in days]))
        return len(gone), sum(gone)

    @staticmethod
    def _carry_open_since(part: pa.Table, path: Path, now: datetime) -> tuple[pa.Table, int]:
        """``part`` with its ``open_since`` (an id stored before keeps its own), and how many of the
        stored exceptions are gone. Exception ids are unique within a partition."""
        stamp = pa.scalar(now, type=pa.timestamp("us", tz="UTC"))
        if not path.exists():
            return part.append_column("open_since", pa.repeat(stamp, part.num_rows)), 0
        previous = pq.read_table(path, columns=["exception_id", "open_since"])
        # Vectorised lookup (the GIL is released, so the writer threads run in parallel).
        stored = previous.column("exception_id").combine_chunks()
        at = pc.index_in(part.column("exception_id"), value_set=stored)
        since = pc.fill_null(pc.take(previous.column("open_since").combine_chunks(), at), stamp)
        still = part.num_rows - at.null_count
        return part.append_column("open_since", since), previous.num_rows - still

    # --- run log --------------------------------------------------------------------------------

    def start_run(self, report: RunReport) -> None:
        self._reap()
        self._db.execute(
            "INSERT INTO runs (run_id, started_at, status, report, pid) VALUES (?, ?, 'running', ?, ?)",
            (
                report.run_id,
                report.started_at.isoformat(),
                orjson.dumps(report.to_dict()).decode(),
                os.getpid(),
            ),
        )

    def _reap(self) -> None:
        """Mark runs whose process died (killed, crashed) as ``interrupted``."""
        for run_id, pid in self._db.execute(
            "SELECT run_id, pid FROM runs WHERE status = 'running'"
        ).fetchall():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                self._db.execute(
                    "UPDATE runs SET status = 'interrupted', error = 'the process ended mid-run' "
                    "WHERE run_id = ? AND status = 'running'",
                    (run_id,),
                )
            except PermissionError:
                continue  # alive, another user's process

    def finish_run(self, report: RunReport, status: str, error: str | None = None) -> None:
        with self._db:
            self._db.execute(
                "UPDATE runs SET finished_at = ?, status = ?, report = ?, error = ? WHERE run_id = ?",
                (
                    datetime.now(UTC).isoformat(),
                    status,
                    orjson.dumps(report.to_dict()).decode(),
                    error,
                    report.run_id,
                ),
            )

    def runs(self, limit: int = 20, run_id: str | None = None) -> list[dict[str, Any]]:
        """The latest ``limit`` runs, newest first (or the one run ``run_id``)."""
        where, params = ("WHERE run_id = ? ", (run_id, limit)) if run_id else ("", (limit,))
        rows = self._db.execute(
            "SELECT run_id, started_at, finished_at, status, report, error FROM runs "  # noqa: S608
            f"{where}ORDER BY started_at DESC LIMIT ?",
            params,
        ).fetchall()
        return [
            {
                "run_id": r[0],
                "started_at": r[1],
                "finished_at": r[2],
                "status": r[3],
                "error": r[5],
                **{k: v for k, v in orjson.loads(r[4]).items() if k not in ("run_id", "started_at")},
            }
            for r in rows
        ]

    def run(self, run_id: str) -> dict[str, Any] | None:
        found = self.runs(1, run_id)
        return found[0] if found else None

    # --- reading ----------------------------------------------------------------------------------

    def _files(self, kind: str) -> str | None:
        base = self.root / kind
        if not any(base.glob("*/*.parquet")):
            return None
        return str(base / "*" / "*.parquet")

    def query(
        self,
        kind: str,
        *,
        regions: list[str] | None = None,
        start: date | None = None,
        end: date | None = None,
        classes: list[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        order: str = "business_date, region",
    ) -> pa.Table:
        """Stored rows of ``kind`` (``exceptions`` or ``summary``) matching the filters."""
        if classes:
            unknown = [c for c in classes if c not in ExceptionClass.__members__.values()]
            if unknown:
                raise InvalidInputError(
                    f"unknown exception class(es): {', '.join(unknown)}",
                    hint=f"known: {', '.join(c.value for c in ExceptionClass)}",
                )
        files = self._files(kind)
        if files is None:
            return pa.table({})
        where: list[str] = ["TRUE"]
        params: list[object] = []
        if regions:
            where.append(f"region IN ({', '.join('?' for _ in regions)})")
            params.extend(regions)
        if start is not None:
            where.append("business_date >= ?")
            params.append(start)
        if end is not None:
            where.append("business_date <= ?")
            params.append(end)
        if classes:
            where.append(f"class IN ({', '.join('?' for _ in classes)})")
            params.extend(classes)
        # Only placeholders and fixed column names are interpolated; values are bound parameters.
        sql = "SELECT * FROM read_parquet(?, union_by_name = true) WHERE "
        sql += f"{' AND '.join(where)} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        with duckdb.connect() as con:
            return con.sql(sql, params=[files, *params]).to_arrow_table()

    def open_by_class(self) -> list[tuple[str, str, int, datetime | None]]:
        """(region, class, open exceptions, oldest open_since) over every stored partition."""
        files = self._files("exceptions")
        if files is None:
            return []
        with duckdb.connect() as con:
            rows = con.execute(
                "SELECT region, class, count(*), min(open_since) FROM read_parquet(?) "
                "GROUP BY ALL ORDER BY ALL",
                [files],
            ).fetchall()
        return [(r[0], r[1], int(r[2]), r[3]) for r in rows]
