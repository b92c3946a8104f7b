"""The knowledge store port: chunks with a dense and a sparse vector, searched by both at once."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from shopops.rag.model import Chunk

#: A sparse vector: sorted term indices and their weights.
Sparse = tuple[list[int], list[float]]


@dataclass(frozen=True)
class StoredPoint:
    """A chunk with its vectors, as written to the store (id = ``chunk.chunk_id``)."""

    chunk: Chunk
    dense: list[float]
    sparse: Sparse


@dataclass(frozen=True)
class Hit:
    payload: dict[str, Any]
    score: float


class KnowledgeStore(ABC):
    """Where chunks live. Writes are idempotent (a point is keyed by its chunk id)."""

    #: Where the store is (``local:/path`` or the server's URL), for reports and the manifest.
    identity: str
    collection: str

    @abstractmethod
    def ensure_collection(self) -> bool:
        """Create the collection if missing (True) or check that it fits (False)."""

    @abstractmethod
    def recreate(self) -> None:
        """Drop the collection and create it empty."""

    @abstractmethod
    def upsert(self, points: Sequence[StoredPoint]) -> None: ...

    @abstractmethod
    def delete_source(self, source: str, keep: Collection[str] = ()) -> None:
        """Delete every point of ``source`` whose id is not in ``keep``."""

    @abstractmethod
    def delete_ids(self, ids: Collection[str]) -> None: ...

    @abstractmethod
    def ids(self) -> set[str]:
        """Every point id in the collection."""

    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def query(
        self,
        *,
        dense: list[float] | None,
        sparse: Sparse | None,
        limit: int,
        prefetch_limit: int,
        weights: tuple[float, float] = (1.0, 1.0),
        filters: dict[str, str] | None = None,
    ) -> list[Hit]:
        """Best ``limit`` points: by both vectors fused with reciprocal rank fusion (``weights`` =
        dense, sparse), or by the one given. ``filters`` are payload equalities."""

    @abstractmethod
    def close(self) -> None: ...
