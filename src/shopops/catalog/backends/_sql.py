"""The catalog store on SQL: the statements both backends share; each backend supplies transactions.

Statements are written with ``?`` placeholders; the PostgreSQL backend rewrites them to ``%s``.
Datasets are stored as one JSON document each (what :meth:`Dataset.content` gives, keys sorted),
with their kind and domain beside it for filtering: an equal registration is an equal string.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import orjson

from shopops.catalog.model import ColumnEdge, Dataset, DatasetKind, Edge, Flow, Job, Run, RunState
from shopops.catalog.port import CatalogStore, PendingEvent, RunEventRecord, UpsertCounts


class Cursor(Protocol):
    def execute(self, query: Any, params: Sequence[Any] = ...) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...

    @property
    def rowcount(self) -> int: ...


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


_RUN_COLUMNS = "run_id, job, state, started_at_ms, ended_at_ms, inputs, outputs, facets, error"


def _run(row: Sequence[Any]) -> Run:
    run_id, job, state, started, ended, inputs, outputs, facets, error = row
    return Run(
        run_id=str(run_id),
        job=str(job),
        state=RunState(state),
        started_at_ms=None if started is None else int(started),
        ended_at_ms=None if ended is None else int(ended),
        inputs=tuple(orjson.loads(inputs)),
        outputs=tuple(orjson.loads(outputs)),
        facets=orjson.loads(facets),
        error=error,
    )


def _dataset(doc: str, created: int, updated: int) -> Dataset:
    raw = orjson.loads(doc)
    raw["created_at_ms"], raw["updated_at_ms"] = int(created), int(updated)
    return Dataset.from_dict(raw)


def iter_statements(script: str) -> Iterator[str]:
    """The statements of a DDL script (separated by ``;``, no ``;`` inside statements)."""
    for statement in script.split(";"):
        if statement.strip():
            yield statement.strip()


class SqlCatalogStore(CatalogStore):
    """Queries shared by the SQL backends."""

    #: Appended to the outbox claim's SELECT (PostgreSQL: ``FOR UPDATE SKIP LOCKED``).
    _claim_lock = ""

    @abstractmethod
    def _transaction(self, write: bool = True) -> AbstractContextManager[Cursor]:
        """A transaction: committed on success, rolled back on error; ``write`` ones are serialised
        where the database needs it (SQLite takes its write lock up front)."""

    @abstractmethod
    def _q(self, sql: str) -> str:
        """The statement in the driver's placeholder style."""

    def _rows(self, cur: Cursor, sql: str, *params: Any) -> list[Any]:
        cur.execute(self._q(sql), params)
        return list(cur.fetchall())

    def _row(self, cur: Cursor, sql: str, *params: Any) -> Any:
        cur.execute(self._q(sql), params)
        return cur.fetchone()

    def _exec(self, cur: Cursor, sql: str, *params: Any) -> int:
        cur.execute(self._q(sql), params)
        return int(cur.rowcount)

    # --- datasets -------------------------------------------------------------------------------

    def upsert_datasets(
        self, datasets: Sequence[Dataset], now_ms: int, *, only_missing: bool = False
    ) -> UpsertCounts:
        created = updated = unchanged = 0
        with self._transaction() as cur:
            for ds in datasets:
                doc = _json(ds.content())
                inserted = self._exec(
                    cur,
                    "INSERT INTO datasets (name, kind, domain, doc, created_at_ms, updated_at_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                    ds.name,
                    ds.kind.value,
                    ds.domain,
                    doc,
                    now_ms,
                    now_ms,
                )
                if inserted:
                    created += 1
                    continue
                if only_missing:
                    unchanged += 1
                    continue
                changed = self._exec(
                    cur,
                    "UPDATE datasets SET kind = ?, domain = ?, doc = ?, updated_at_ms = ? "
                    "WHERE name = ? AND doc <> ?",
                    ds.kind.value,
                    ds.domain,
                    doc,
                    now_ms,
                    ds.name,
                    doc,
                )
                if changed:
                    updated += 1
                else:
                    unchanged += 1
        return UpsertCounts(created, updated, unchanged)

    def get_dataset(self, name: str) -> Dataset | None:
        with self._transaction(write=False) as cur:
            row = self._row(
                cur, "SELECT doc, created_at_ms, updated_at_ms FROM datasets WHERE name = ?", name
            )
        return _dataset(*row) if row else None

    def get_datasets(self, names: Sequence[str]) -> dict[str, Dataset]:
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return {}
        marks = ", ".join("?" * len(wanted))
        with self._transaction(write=False) as cur:
            rows = self._rows(
                cur,
                f"SELECT doc, created_at_ms, updated_at_ms FROM datasets WHERE name IN ({marks})",  # noqa: S608
                *wanted,
            )
        found = [_dataset(*r) for r in rows]
        return {d.name: d for d in found}

    def list_datasets(self, kind: DatasetKind | None = None, domain: str | None = None) -> list[Dataset]:
        where: list[str] = []
        params: list[Any] = []
        if kind is not None:
            where.append("kind = ?")
            params.append(kind.value)
        if domain is not None:
            where.append("domain = ?")
            params.append(domain)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self._transaction(write=False) as cur:
            rows = self._rows(
                cur,
                f"SELECT doc, created_at_ms, updated_at_ms FROM datasets{clause} ORDER BY name",  # noqa: S608 - fixed clauses
                *params,
            )
        return [_dataset(*r) for r in rows]

    def dataset_names(self) -> list[str]:
        with self._transaction(write=False) as cur:
            return [str(r[0]) for r in self._rows(cur, "SELECT name FROM datasets ORDER BY name")]

    # --- runs and lineage -----------------------------------------------------------------------

    def record_event(self, record: RunEventRecord, now_ms: int) -> bool:
        run = record.run
        with self._transaction() as cur:
            fresh = self._exec(
                cur,
                "INSERT INTO events (run_id, event_type, event_time_ms, payload, created_at_ms, attempts) "
                "VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (run_id, event_type) DO NOTHING",
                run.run_id,
                record.event_type.value,
                record.event_time_ms,
                _json(record.payload),
                now_ms,
            )
            if not fresh:
                return False
            self._exec(
                cur,
                f"INSERT INTO runs ({_RUN_COLUMNS}, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "  # noqa: S608 - fixed column list
                "ON CONFLICT (run_id) DO NOTHING",
                *self._run_params(run),
                now_ms,
            )
            # Lock the run's row (PostgreSQL; SQLite holds the database's write lock already), then
            # merge this event into what other events of the run said, whatever their order.
            lock_run = f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?{self._claim_lock_row}"  # noqa: S608
            row = self._row(cur, lock_run, run.run_id)
            merged = _run(row).merge(run)
            self._exec(
                cur,
                "UPDATE runs SET job = ?, state = ?, started_at_ms = ?, ended_at_ms = ?, inputs = ?, "
                "outputs = ?, facets = ?, error = ?, updated_at_ms = ? WHERE run_id = ?",
                *self._run_params(merged)[1:],
                now_ms,
                run.run_id,
            )
            job = record.job
            self._exec(
                cur,
                "INSERT INTO jobs (name, namespace, description, last_run_id, updated_at_ms) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET namespace = excluded.namespace, "
                "description = CASE WHEN excluded.description = '' THEN jobs.description "
                "ELSE excluded.description END, last_run_id = excluded.last_run_id, "
                "updated_at_ms = excluded.updated_at_ms",
                job.name,
                job.namespace,
                job.description,
                run.run_id,
                now_ms,
            )
            for edge in record.edges:
                self._exec(
                    cur,
                    "INSERT INTO edges (job, dataset, direction, last_run_id, updated_at_ms) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (job, dataset, direction) DO UPDATE SET "
                    "last_run_id = excluded.last_run_id, updated_at_ms = excluded.updated_at_ms",
                    edge.job,
                    edge.dataset,
                    edge.direction,
                    run.run_id,
                    now_ms,
                )
                self._exec(
                    cur,
                    "INSERT INTO run_datasets (run_id, dataset, direction) VALUES (?, ?, ?) "
                    "ON CONFLICT (run_id, dataset, direction) DO NOTHING",
                    run.run_id,
                    edge.dataset,
                    edge.direction,
                )
            for flow in record.flows:
                self._exec(
                    cur,
                    "INSERT INTO flows (job, in_dataset, out_dataset, last_run_id, updated_at_ms) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (job, in_dataset, out_dataset) DO UPDATE SET "
                    "last_run_id = excluded.last_run_id, updated_at_ms = excluded.updated_at_ms",
                    flow.job,
                    flow.in_dataset,
                    flow.out_dataset,
                    run.run_id,
                    now_ms,
                )
            for col in record.column_edges:
                self._exec(
                    cur,
                    "INSERT INTO column_edges (job, in_dataset, in_column, out_dataset, out_column, "
                    "transformation, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (job, in_dataset, in_column, out_dataset, out_column) DO UPDATE SET "
                    "transformation = excluded.transformation, updated_at_ms = excluded.updated_at_ms",
                    job.name,
                    col.in_dataset,
                    col.in_column,
                    col.out_dataset,
                    col.out_column,
                    col.transformation,
                    now_ms,
                )
        return True

    #: Appended to the SELECT of a run's row inside ``record_event`` (PostgreSQL: ``FOR UPDATE``).
    _claim_lock_row = ""

    @staticmethod
    def _run_params(run: Run) -> tuple[Any, ...]:
        return (
            run.run_id,
            run.job,
            run.state.value,
            run.started_at_ms,
            run.ended_at_ms,
            _json(list(run.inputs)),
            _json(list(run.outputs)),
            _json(dict(run.facets)),
            run.error,
        )

    def get_run(self, run_id: str) -> Run | None:
        with self._transaction(write=False) as cur:
            row = self._row(cur, f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", run_id)  # noqa: S608
        return _run(row) if row else None

    def runs(self, job: str | None = None, dataset: str | None = None, limit: int = 50) -> list[Run]:
        where: list[str] = []
        params: list[Any] = []
        if job is not None:
            where.append("job = ?")
            params.append(job)
        if dataset is not None:
            where.append("run_id IN (SELECT run_id FROM run_datasets WHERE dataset = ?)")
            params.append(dataset)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self._transaction(write=False) as cur:
            rows = self._rows(
                cur,
                f"SELECT {_RUN_COLUMNS} FROM runs{clause} "  # noqa: S608 - fixed clauses
                f"ORDER BY COALESCE(started_at_ms, updated_at_ms) DESC, run_id DESC LIMIT {int(limit)}",
                *params,
            )
        return [_run(r) for r in rows]

    def jobs(self) -> list[Job]:
        with self._transaction(write=False) as cur:
            rows = self._rows(
                cur, "SELECT name, namespace, description, last_run_id, updated_at_ms FROM jobs ORDER BY name"
            )
        return [Job(str(n), str(ns), str(d), lr, int(u)) for n, ns, d, lr, u in rows]

    def edges(self) -> list[Edge]:
        with self._transaction(write=False) as cur:
            rows = self._rows(cur, "SELECT job, dataset, direction FROM edges")
        return [Edge(str(j), str(d), "in" if direction == "in" else "out") for j, d, direction in rows]

    def flows(self) -> list[Flow]:
        with self._transaction(write=False) as cur:
            rows = self._rows(cur, "SELECT job, in_dataset, out_dataset FROM flows")
        return [Flow(str(j), str(i), str(o)) for j, i, o in rows]

    def column_edges(self, dataset: str) -> list[ColumnEdge]:
        with self._transaction(write=False) as cur:
            rows = self._rows(
                cur,
                "SELECT in_dataset, in_column, out_dataset, out_column, transformation FROM column_edges "
                "WHERE in_dataset = ? OR out_dataset = ? "
                "ORDER BY out_dataset, out_column, in_dataset, in_column",
                dataset,
                dataset,
            )
        return [ColumnEdge(*map(str, r)) for r in rows]

    # --- the OpenLineage outbox -----------------------------------------------------------------

    def claim_pending(self, limit: int, lease_ms: int, now_ms: int) -> list[PendingEvent]:
        with self._transaction() as cur:
            claim = (
                "SELECT seq, run_id, event_type, payload, attempts FROM events WHERE sent_at_ms IS NULL "  # noqa: S608 - fixed clauses
                "AND (lease_until_ms IS NULL OR lease_until_ms < ?) "
                f"ORDER BY seq LIMIT {int(limit)}{self._claim_lock}"
            )
            rows = self._rows(cur, claim, now_ms)
            for seq, *_ in rows:
                self._exec(cur, "UPDATE events SET lease_until_ms = ? WHERE seq = ?", now_ms + lease_ms, seq)
        return [PendingEvent(int(s), str(r), str(t), orjson.loads(p), int(a)) for s, r, t, p, a in rows]

    def mark_sent(self, seqs: Sequence[int], now_ms: int) -> None:
        if not seqs:
            return
        with self._transaction() as cur:
            for seq in seqs:
                self._exec(
                    cur,
                    "UPDATE events SET sent_at_ms = ?, lease_until_ms = NULL, attempts = attempts + 1, "
                    "last_error = NULL WHERE seq = ?",
                    now_ms,
                    seq,
                )

    def mark_failed(self, seqs: Sequence[int], error: str, now_ms: int) -> None:
        if not seqs:
            return
        with self._transaction() as cur:
            for seq in seqs:
                self._exec(
                    cur,
                    "UPDATE events SET lease_until_ms = NULL, attempts = attempts + 1, last_error = ? "
                    "WHERE seq = ? AND sent_at_ms IS NULL",
                    error[:2000],
                    seq,
                )

    def pending_count(self) -> int:
        with self._transaction(write=False) as cur:
            row = self._row(cur, "SELECT COUNT(*) FROM events WHERE sent_at_ms IS NULL")
        return int(row[0])

    def ping(self) -> None:
        with self._transaction(write=False) as cur:
            self._row(cur, "SELECT 1")
