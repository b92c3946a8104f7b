"""An in-memory inverted index of the store's sparse vectors, for Qdrant local mode.

Qdrant local mode scores a sparse query against every point with a pure-Python merge loop: about
2 s per query at 10,000 chunks on two cores, while its dense search takes milliseconds. This index
holds the same sparse vectors as posting lists (numpy arrays per term) and computes exactly what
Qdrant computes for a ``Modifier.IDF`` sparse vector:

    score(point) = sum over shared terms of query_weight * idf(term) * point_weight
    idf(term)    = ln((N - df + 0.5) / (df + 0.5) + 1)     (N, df over live points)

and returns the points that share at least one term, best first, after payload filters — in a few
milliseconds. It mirrors every write the store makes (upserts, deletes by id or by source), and is
rebuilt from the collection when the store opens. ``tests/integration/rag`` checks its rankings
against Qdrant's own sparse search.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class _Row:
    indices: np.ndarray
    values: np.ndarray
    payload: dict[str, str]


class LexicalIndex:
    """Sparse vectors by point id; term → (rows, weights) posting lists, rebuilt after writes."""

    #: Payload fields kept per point (filters and source deletes need them).
    FIELDS = ("source", "lang", "audience", "doc_id")

    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}
        self._lock = threading.Lock()
        self._dirty = True
        self._ids: list[str] = []
        self._postings: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._fields: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def put(
        self, point_id: str, indices: Iterable[int], values: Iterable[float], payload: dict[str, object]
    ) -> None:
        row = _Row(
            np.asarray(list(indices), dtype=np.int64),
            np.asarray(list(values), dtype=np.float64),
            {f: "" if payload.get(f) is None else str(payload.get(f)) for f in self.FIELDS},
        )
        with self._lock:
            self._rows[point_id] = row
            self._dirty = True

    def delete_ids(self, ids: Iterable[str]) -> None:
        with self._lock:
            for point_id in ids:
                if self._rows.pop(point_id, None) is not None:
                    self._dirty = True

    def delete_source(self, source: str, keep: Collection[str] = ()) -> None:
        with self._lock:
            doomed = [
                pid for pid, row in self._rows.items() if row.payload["source"] == source and pid not in keep
            ]
            for point_id in doomed:
                del self._rows[point_id]
            self._dirty = self._dirty or bool(doomed)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self._dirty = True

    def _rebuild(self) -> None:
        ids = list(self._rows)
        rows = [self._rows[i] for i in ids]
        self._ids = ids
        self._fields = {f: np.asarray([r.payload[f] for r in rows], dtype=object) for f in self.FIELDS}
        if not rows:
            self._postings = {}
            self._dirty = False
            return
        lengths = np.fromiter((len(r.indices) for r in rows), dtype=np.int64, count=len(rows))
        terms = np.concatenate([r.indices for r in rows]) if lengths.sum() else np.zeros(0, np.int64)
        weights = np.concatenate([r.values for r in rows]) if lengths.sum() else np.zeros(0)
        owners = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
        order = np.argsort(terms, kind="stable")
        terms, weights, owners = terms[order], weights[order], owners[order]
        starts = np.flatnonzero(np.r_[True, terms[1:] != terms[:-1]]) if len(terms) else np.zeros(0, np.int64)
        ends = np.r_[starts[1:], len(terms)] if len(terms) else starts
        self._postings = {
            int(terms[s]): (owners[s:e], weights[s:e])
            for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
        }
        self._dirty = False

    def search(
        self,
        indices: list[int],
        values: list[float],
        limit: int,
        filters: dict[str, str] | None = None,
    ) -> list[tuple[str, float]]:
        """``(point id, score)`` of the best ``limit`` points sharing a term with the query."""
        with self._lock:
            if self._dirty:
                self._rebuild()
            total = len(self._ids)
            if total == 0:
                return []
            scores = np.zeros(total)
            touched = np.zeros(total, dtype=bool)
            for term, weight in zip(indices, values, strict=True):
                posting = self._postings.get(int(term))
                if posting is None:
                    continue
                rows, point_weights = posting
                df = len(rows)
                idf = math.log((total - df + 0.5) / (df + 0.5) + 1)
                scores[rows] += weight * idf * point_weights
                touched[rows] = True
            mask = touched
            for field, value in (filters or {}).items():
                column = self._fields.get(field)
                if column is None:
                    return []
                mask = mask & (column == value)
            candidates = np.flatnonzero(mask)
            if len(candidates) == 0:
                return []
            # Best first; ties keep insertion order, as a stable sort on the negated score does.
            ranked = candidates[np.argsort(-scores[candidates], kind="stable")][:limit]
            return [(self._ids[i], float(scores[i])) for i in ranked.tolist()]
