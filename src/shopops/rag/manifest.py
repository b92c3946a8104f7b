"""The ingestion manifest: which files are in the knowledge store, with which chunks.

SQLite at ``$SHOPOPS_HOME/rag/manifest.db``. Rows are scoped by ``store`` (the store's identity and
collection), so pointing the same data directory at another collection or a Qdrant server starts
from an empty manifest instead of believing chunks are there. A file's row and its chunk ids are
replaced in one transaction, after its points are written: a crash in between leaves the old rows,
and the next run writes the same points again (same ids) — nothing lost, nothing duplicated.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopops.core.sqlite import connect_wal
from shopops.rag.model import DocumentMeta, IngestReport

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    store TEXT NOT NULL,
    source TEXT NOT NULL,
    file_hash TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    title TEXT NOT NULL,
    lang TEXT NOT NULL,
    audience TEXT NOT NULL,
    region TEXT,
    chunks INTEGER NOT NULL,
    ingested_at REAL NOT NULL,
    PRIMARY KEY (store, source)
);
CREATE TABLE IF NOT EXISTS chunks (
    store TEXT NOT NULL,
    chunk_id TEXT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (store, chunk_id)
);
CREATE INDEX IF NOT EXISTS chunks_by_source ON chunks (store, source);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    store TEXT NOT NULL,
    finished_at REAL NOT NULL,
    report TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class FileRecord:
    source: str
    file_hash: str
    chunk_ids: frozenset[str]


class Manifest:
    """File → chunk ids of one data directory, per store."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = connect_wal(path, 10_000, "the RAG manifest")
        self._lock = threading.Lock()
        with self._lock:
            self._conn.executescript(_SCHEMA)

    def files(self, store: str, prefix: str | None = None) -> dict[str, FileRecord]:
        """Files of ``store`` (those whose source is ``prefix`` or lies under ``prefix/``)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT source, file_hash FROM files WHERE store = ?", (store,)
            ).fetchall()
            chunk_rows = self._conn.execute(
                "SELECT source, chunk_id FROM chunks WHERE store = ?", (store,)
            ).fetchall()
        by_source: dict[str, set[str]] = {}
        for source, chunk_id in chunk_rows:
            by_source.setdefault(source, set()).add(chunk_id)
        records: dict[str, FileRecord] = {}
        for source, file_hash in rows:
            if prefix is not None and not (source == prefix or source.startswith(prefix.rstrip("/") + "/")):
                continue
            records[source] = FileRecord(source, file_hash, frozenset(by_source.get(source, ())))
        return records

    def all_chunk_ids(self, store: str) -> dict[str, str]:
        """chunk id → source of every chunk ``store`` should hold."""
        with self._lock:
            rows = self._conn.execute("SELECT chunk_id, source FROM chunks WHERE store = ?", (store,))
            return {chunk_id: source for chunk_id, source in rows}

    def put_file(
        self, store: str, source: str, file_hash: str, meta: DocumentMeta, chunk_ids: Iterable[str]
    ) -> None:
        """Record ``source`` with exactly ``chunk_ids`` (replacing what it had), atomically."""
        ids = sorted(set(chunk_ids))
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute("DELETE FROM chunks WHERE store = ? AND source = ?", (store, source))
                self._conn.executemany(
                    "INSERT OR REPLACE INTO chunks (store, chunk_id, source) VALUES (?, ?, ?)",
                    [(store, chunk_id, source) for chunk_id in ids],
                )
                self._conn.execute(
                    "INSERT OR REPLACE INTO files (store, source, file_hash, doc_id, title, lang, audience,"
                    " region, chunks, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (store, source, file_hash, meta.doc_id, meta.title, meta.lang, meta.audience,
                     meta.region, len(ids), time.time()),
                )  # fmt: skip
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def forget_chunks(self, store: str, chunk_ids: Iterable[str]) -> set[str]:
        """Drop chunk rows the store turned out not to hold; their files must be re-read (their
        hash is cleared). Returns the sources concerned."""
        ids = list(chunk_ids)
        if not ids:
            return set()
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                sources: set[str] = set()
                for start in range(0, len(ids), 500):
                    part = ids[start : start + 500]
                    marks = ",".join("?" * len(part))
                    sources.update(
                        s
                        for (s,) in self._conn.execute(
                            f"SELECT DISTINCT source FROM chunks WHERE store = ? AND chunk_id IN ({marks})",  # noqa: S608
                            (store, *part),
                        )
                    )
                    self._conn.execute(
                        f"DELETE FROM chunks WHERE store = ? AND chunk_id IN ({marks})",  # noqa: S608
                        (store, *part),
                    )
                self._conn.executemany(
                    "UPDATE files SET file_hash = '' WHERE store = ? AND source = ?",
                    [(store, s) for s in sources],
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        return sources

    def remove_file(self, store: str, source: str) -> None:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute("DELETE FROM chunks WHERE store = ? AND source = ?", (store, source))
                self._conn.execute("DELETE FROM files WHERE store = ? AND source = ?", (store, source))
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def clear(self, store: str) -> None:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute("DELETE FROM chunks WHERE store = ?", (store,))
                self._conn.execute("DELETE FROM files WHERE store = ?", (store,))
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def record_run(self, store: str, report: IngestReport) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO runs (store, finished_at, report) VALUES (?, ?, ?)",
                (store, time.time(), json.dumps(report.to_dict())),
            )

    def last_run(self, store: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT finished_at, report FROM runs WHERE store = ? ORDER BY run_id DESC LIMIT 1", (store,)
            ).fetchone()
        if row is None:
            return None
        report: dict[str, Any] = json.loads(row[1])
        report["finished_at"] = row[0]
        return report

    def summary(self, store: str) -> tuple[int, int, dict[str, int], dict[str, int]]:
        """Files, chunks, chunks by language, chunks by audience."""
        with self._lock:
            files, chunks = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(chunks), 0) FROM files WHERE store = ?", (store,)
            ).fetchone()
            by_lang = dict(
                self._conn.execute(
                    "SELECT lang, SUM(chunks) FROM files WHERE store = ? GROUP BY lang ORDER BY lang",
                    (store,),
                ).fetchall()
            )
            by_audience = dict(
                self._conn.execute(
                    "SELECT audience, SUM(chunks) FROM files WHERE store = ?"
                    " GROUP BY audience ORDER BY audience",
                    (store,),
                ).fetchall()
            )
        return int(files), int(chunks), by_lang, by_audience

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("ROLLBACK")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
