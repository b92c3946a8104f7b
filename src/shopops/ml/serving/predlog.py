"""The prediction log: every prediction served, for monitoring and drift checks, written off the
request path.

Requests append to an in-memory queue (a deque append, well under a microsecond); a background
thread writes what accumulated in one SQLite transaction every ``flush_interval_s`` (or sooner
when many are waiting). ``close()`` writes everything still queued, so a clean shutdown loses
nothing.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import Counter as MetricCounter

from shopops.core.logging import get_logger

log = get_logger(__name__)

LOGGED = MetricCounter(
    "shopops_ml_predictions_logged_total", "Predictions written to the prediction log", ["use_case"]
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    use_case TEXT NOT NULL,
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    entity TEXT NOT NULL,
    features TEXT NOT NULL,
    defaults TEXT NOT NULL,
    output TEXT NOT NULL,
    latency_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS predictions_use_case ON predictions (use_case, id);
"""


@dataclass(frozen=True, slots=True)
class Prediction:
    ts_ms: int
    request_id: str
    use_case: str
    model: str
    version: int
    entity: dict[str, str]
    features: dict[str, float]
    defaults: list[str]
    output: dict[str, Any]
    latency_us: int

    def row(self) -> tuple[Any, ...]:
        return (
            self.ts_ms,
            self.request_id,
            self.use_case,
            self.model,
            self.version,
            orjson.dumps(self.entity).decode(),
            orjson.dumps(self.features).decode(),
            orjson.dumps(self.defaults).decode(),
            orjson.dumps(self.output).decode(),
            self.latency_us,
        )


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(_SCHEMA)
    return conn


class PredictionLog:
    """Batched, asynchronous writes of :class:`Prediction` rows to a SQLite table."""

    def __init__(self, path: Path, *, flush_interval_s: float = 1.0, batch: int = 2000) -> None:
        self.path = path
        self.flush_interval_s = flush_interval_s
        self.batch = batch
        self._queue: deque[Prediction] = deque()
        self._conn = _connect(path)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def append(self, prediction: Prediction) -> None:
        self._queue.append(prediction)
        if len(self._queue) >= self.batch:
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            try:
                self.flush()
            except sqlite3.Error as exc:  # keep serving; the rows stay queued for the next try
                log.error("prediction log write failed", error=str(exc), queued=len(self._queue))
                time.sleep(self.flush_interval_s)

    def flush(self) -> int:
        """Write everything queued now; returns the rows written."""
        with self._write_lock:
            taken: list[Prediction] = []
            while self._queue:
                taken.append(self._queue.popleft())
            if not taken:
                return 0
            try:
                with self._conn:
                    self._conn.execute("BEGIN IMMEDIATE")
                    self._conn.executemany(
                        "INSERT INTO predictions (ts_ms, request_id, use_case, model, version, entity, "
                        "features, defaults, output, latency_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [p.row() for p in taken],
                    )
            except sqlite3.Error:
                self._queue.extendleft(reversed(taken))  # nothing lost: back at the head, in order
                raise
            for use_case, n in Counter(p.use_case for p in taken).items():
                LOGGED.labels(use_case).inc(n)
            return len(taken)

    @property
    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self.flush()
        self._conn.close()


def recent_inputs(path: Path, use_case: str, limit: int) -> list[dict[str, float]]:
    """The feature values of the newest ``limit`` predictions of ``use_case`` ([] without a log)."""
    if not path.is_file():
        return []
    conn = sqlite3.connect(path, timeout=30)
    try:
        rows = conn.execute(
            "SELECT features FROM predictions WHERE use_case = ? ORDER BY id DESC LIMIT ?", (use_case, limit)
        ).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()
    return [orjson.loads(r[0]) for r in rows]


def count(path: Path, use_case: str | None = None) -> int:
    if not path.is_file():
        return 0
    conn = sqlite3.connect(path, timeout=30)
    try:
        if use_case is None:
            row = conn.execute("SELECT COUNT(*) FROM predictions").fetchone()
        else:
            row = conn.execute("SELECT COUNT(*) FROM predictions WHERE use_case = ?", (use_case,)).fetchone()
        return int(row[0])
    finally:
        conn.close()


def append_many(path: Path, predictions: Sequence[Prediction]) -> None:
    """Write predictions synchronously (batch scoring, tests)."""
    conn = _connect(path)
    try:
        with conn:
            conn.executemany(
                "INSERT INTO predictions (ts_ms, request_id, use_case, model, version, entity, "
                "features, defaults, output, latency_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [p.row() for p in predictions],
            )
    finally:
        conn.close()
