"""Embeddings already computed, by model and text: a rebuild or a metadata edit re-embeds nothing.

A chunk whose id changes while its text does not (its file moved, its title changed, the
collection was rebuilt, the store was switched to a server) gets its vector from here instead of
from the model. SQLite, keyed by ``sha256(model + text)``; vectors as float32 bytes. Safe to share
between data directories and processes (WAL); deleting the file only costs time.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt

from shopops.core.sqlite import connect_wal


class EmbeddingCache:
    """``model, text → vector`` of ``dimensions`` float32 values."""

    def __init__(self, path: Path, model: str, dimensions: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.model = model
        self.dimensions = dimensions
        self._lock = threading.Lock()
        self._conn = connect_wal(path, 10_000, "the embedding cache")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vector BLOB NOT NULL)"
        )

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.model}\n{text}".encode()).hexdigest()

    def get(self, texts: list[str]) -> dict[int, npt.NDArray[np.float32]]:
        """Vectors found, by position in ``texts``."""
        keys = [self._key(t) for t in texts]
        found: dict[str, bytes] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                part = keys[start : start + 500]
                marks = ",".join("?" * len(part))
                found.update(
                    self._conn.execute(
                        f"SELECT key, vector FROM embeddings WHERE key IN ({marks})",  # noqa: S608
                        part,
                    ).fetchall()
                )
        out: dict[int, npt.NDArray[np.float32]] = {}
        for position, key in enumerate(keys):
            blob = found.get(key)
            if blob is not None and len(blob) == 4 * self.dimensions:
                out[position] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put(self, texts: list[str], vectors: npt.NDArray[np.float32]) -> None:
        rows = [
            (self._key(t), np.asarray(v, dtype=np.float32).tobytes())
            for t, v in zip(texts, vectors, strict=True)
        ]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("INSERT OR REPLACE INTO embeddings (key, vector) VALUES (?, ?)", rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()
