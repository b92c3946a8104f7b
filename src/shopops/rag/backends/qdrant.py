"""The knowledge store on Qdrant: local mode (a folder, the default) or a Qdrant server (a URL).

Both are the same code through ``qdrant_client.QdrantClient``; only how it is opened differs, and
in local mode, by default, who scores the sparse side (below).

Points carry two named vectors: ``dense`` (MiniLM, 384 floats, pre-normalised, DOT distance —
with COSINE, local mode re-normalises the whole collection on every query) and ``bm25`` (sparse,
``Modifier.IDF``: the store multiplies query weights by the terms' inverse document frequency).
Hybrid search is one call of the Query API: a dense and a sparse ``prefetch``, fused by
reciprocal rank fusion (``RrfQuery``, optionally weighted).

**The sparse side in local mode.** Local mode scores sparse vectors with a pure-Python loop over
every point (about 2 s a query at 10,000 chunks on two cores). With ``lexical="index"`` (the default)
the store keeps the same sparse vectors in an in-memory inverted index
(:class:`~shopops.rag.backends.lexical.LexicalIndex`, the same BM25-with-IDF arithmetic), asks
Qdrant for the dense list only, and fuses both lists with the Qdrant client's own reciprocal rank
fusion — the function local mode's Query API uses — so the answer is the Query API's, in
milliseconds. ``lexical="qdrant"`` sends the whole hybrid query to local mode instead. A server
always gets the Query API call: its sparse index is native.

**Local mode allows one client per folder.** Qdrant locks the folder against other processes; in
this process every store opened on the same folder shares one client (reference-counted), and
calls on it are serialised by a lock, because the local engine is plain Python state. Another
process that needs the same knowledge base must go through the running platform's API or use a
Qdrant server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from shopops.core.errors import BackendUnavailableError, ConfigError
from shopops.core.logging import get_logger
from shopops.rag.backends.lexical import LexicalIndex
from shopops.rag.port import Hit, KnowledgeStore, Sparse, StoredPoint

if TYPE_CHECKING:
    from qdrant_client import QdrantClient, models

log = get_logger("shopops.rag")

DENSE = "dense"
SPARSE = "bm25"
T = TypeVar("T")

_local: dict[Path, tuple[QdrantClient, threading.RLock, int]] = {}
_local_guard = threading.Lock()


def _open_local(path: Path) -> tuple[QdrantClient, threading.RLock]:
    """This process's client of the local store at ``path`` (opened once, shared)."""
    with _local_guard:
        if path in _local:
            client, lock, users = _local[path]
            _local[path] = (client, lock, users + 1)
            return client, lock
        from qdrant_client import QdrantClient

        path.mkdir(parents=True, exist_ok=True)
        try:
            # The lock below serialises every call, so the client may be used from any thread.
            client = QdrantClient(path=str(path), force_disable_check_same_thread=True)
        except RuntimeError as exc:
            if "already accessed" not in str(exc):
                raise
            raise BackendUnavailableError(
                f"the knowledge store {path} is open in another process (Qdrant local mode allows "
                "one process per folder)",
                hint="stop that process (e.g. `shopops up`) or ask it: POST /v1/rag/search; to share the "
                "knowledge base between processes set rag.qdrant_url to a Qdrant server",
            ) from None
        lock = threading.RLock()
        _local[path] = (client, lock, 1)
        return client, lock


def _close_local(path: Path) -> None:
    with _local_guard:
        entry = _local.get(path)
        if entry is None:
            return
        client, lock, users = entry
        if users > 1:
            _local[path] = (client, lock, users - 1)
            return
        del _local[path]
        with lock:
            client.close()


class QdrantStore(KnowledgeStore):
    """Chunks in one Qdrant collection; ``url`` None means local mode in ``path``."""

    def __init__(
        self,
        *,
        collection: str,
        dimensions: int,
        path: Path | None = None,
        url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        lexical: str = "index",
    ) -> None:
        if (path is None) == (url is None):
            raise ConfigError("a Qdrant store needs either a local path or a server URL, not both")
        self.collection = collection
        self.dimensions = dimensions
        self._path = path.absolute() if path is not None else None
        self._closed = False
        if lexical not in ("index", "qdrant"):
            raise ConfigError(f"unknown lexical scorer {lexical!r}", hint="use 'index' or 'qdrant'")
        #: Local mode's in-memory sparse index (None: Qdrant scores the sparse side itself).
        self._index: LexicalIndex | None = LexicalIndex() if path is not None and lexical == "index" else None
        if self._path is not None:
            self.identity = f"local:{self._path}"
            self._client, self._lock = _open_local(self._path)
        else:
            from qdrant_client import QdrantClient

            assert url is not None
            self.identity = url.rstrip("/")
            self._client = QdrantClient(url=url, api_key=api_key, timeout=int(max(1, timeout_s)))
            self._lock = threading.RLock()

    @property
    def local(self) -> bool:
        return self._path is not None

    @contextmanager
    def _guard(self) -> Iterator[None]:
        if self._closed:
            raise BackendUnavailableError("the knowledge store is closed", hint="open the service again")
        if self.local:
            with self._lock:
                yield
        else:
            yield

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run a client call; a server that cannot be reached is a BackendUnavailableError."""
        with self._guard():
            if self.local:
                return fn()
            try:
                return fn()
            except ConfigError:
                raise
            except Exception as exc:  # httpx/grpc/qdrant errors of a remote server
                from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

                if isinstance(exc, ResponseHandlingException | UnexpectedResponse | OSError):
                    raise BackendUnavailableError(
                        f"Qdrant at {self.identity} failed to {what}: {exc}",
                        hint="check that the server runs and rag.qdrant_url / rag.qdrant_api_key are right",
                    ) from exc
                raise

    # --- collection -------------------------------------------------------------------------------

    def _create(self) -> None:
        from qdrant_client import models

        self._client.create_collection(
            self.collection,
            vectors_config={DENSE: models.VectorParams(size=self.dimensions, distance=models.Distance.DOT)},
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        if not self.local:  # local mode has no payload indexes (it scans)
            for field in ("source", "lang", "audience", "doc_id"):
                self._client.create_payload_index(
                    self.collection, field, field_schema=models.PayloadSchemaType.KEYWORD
                )

    def ensure_collection(self) -> bool:
        from qdrant_client import models

        def ensure() -> bool:
            if not self._client.collection_exists(self.collection):
                self._create()
                return True
            info = self._client.get_collection(self.collection)
            vectors = info.config.params.vectors
            dense = vectors.get(DENSE) if isinstance(vectors, dict) else None
            sparse = (info.config.params.sparse_vectors or {}).get(SPARSE)
            if (
                dense is None
                or dense.size != self.dimensions
                or dense.distance != models.Distance.DOT
                or sparse is None
                or sparse.modifier != models.Modifier.IDF
            ):
                raise ConfigError(
                    f"collection {self.collection!r} at {self.identity} was not made by this version of "
                    f"shopops (expects {self.dimensions}-d DOT vectors {DENSE!r} and IDF sparse {SPARSE!r})",
                    hint="rebuild it (shopops rag ingest PATH --rebuild) or set rag.collection to a new name",
                )
            return False

        created = self._call("open the collection", ensure)
        if self._index is not None:
            self._load_index()
        return created

    def _load_index(self) -> None:
        """Fill the in-memory sparse index from the collection (once, when the store opens)."""
        from qdrant_client import models

        assert self._index is not None
        index = self._index

        def load() -> None:
            index.clear()
            offset: Any = None
            while True:
                points, offset = self._client.scroll(
                    self.collection,
                    limit=1024,
                    offset=offset,
                    with_payload=list(LexicalIndex.FIELDS),
                    with_vectors=[SPARSE],
                )
                for point in points:
                    vectors = point.vector if isinstance(point.vector, dict) else {}
                    sparse = vectors.get(SPARSE)
                    if isinstance(sparse, models.SparseVector):
                        index.put(str(point.id), sparse.indices, sparse.values, dict(point.payload or {}))
                if offset is None:
                    return

        self._call("load the sparse index", load)

    def recreate(self) -> None:
        def recreate() -> None:
            if self._client.collection_exists(self.collection):
                self._client.delete_collection(self.collection)
            self._create()
            if self._index is not None:
                self._index.clear()

        self._call("recreate the collection", recreate)

    # --- writes -----------------------------------------------------------------------------------

    def upsert(self, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        from qdrant_client import models

        structs = [
            models.PointStruct(
                id=p.chunk.chunk_id,
                vector={
                    DENSE: p.dense,
                    SPARSE: models.SparseVector(indices=p.sparse[0], values=p.sparse[1]),
                },
                payload=p.chunk.payload(),
            )
            for p in points
        ]
        self._call("upsert points", lambda: self._client.upsert(self.collection, points=structs, wait=True))
        if self._index is not None:
            for p in points:
                self._index.put(p.chunk.chunk_id, p.sparse[0], p.sparse[1], p.chunk.payload())

    def delete_source(self, source: str, keep: Collection[str] = ()) -> None:
        from qdrant_client import models

        selector = models.Filter(
            must=[models.FieldCondition(key="source", match=models.MatchValue(value=source))],
            must_not=[models.HasIdCondition(has_id=list(keep))] if keep else None,
        )
        self._call(
            "delete points",
            lambda: self._client.delete(
                self.collection, points_selector=models.FilterSelector(filter=selector), wait=True
            ),
        )
        if self._index is not None:
            self._index.delete_source(source, set(keep))

    def delete_ids(self, ids: Collection[str]) -> None:
        if not ids:
            return
        from qdrant_client import models

        selector = models.PointIdsList(points=list(ids))
        self._call(
            "delete points", lambda: self._client.delete(self.collection, points_selector=selector, wait=True)
        )
        if self._index is not None:
            self._index.delete_ids(ids)

    # --- reads ------------------------------------------------------------------------------------

    def ids(self) -> set[str]:
        def scroll() -> set[str]:
            found: set[str] = set()
            offset: Any = None
            while True:
                points, offset = self._client.scroll(
                    self.collection, limit=2048, offset=offset, with_payload=False, with_vectors=False
                )
                found.update(str(p.id) for p in points)
                if offset is None:
                    return found

        return self._call("list points", scroll)

    def count(self) -> int:
        return self._call("count points", lambda: int(self._client.count(self.collection, exact=True).count))

    @staticmethod
    def _filter(filters: dict[str, str] | None) -> models.Filter | None:
        from qdrant_client import models

        if not filters:
            return None
        return models.Filter(
            must=[models.FieldCondition(key=k, match=models.MatchValue(value=v)) for k, v in filters.items()]
        )

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
        from qdrant_client import models

        if self._index is not None and sparse is not None and sparse[0]:
            return self._query_with_index(dense, sparse, limit, prefetch_limit, weights, filters)
        selector = self._filter(filters)
        sparse_vector = (
            models.SparseVector(indices=sparse[0], values=sparse[1]) if sparse and sparse[0] else None
        )
        if dense is not None and sparse_vector is not None:
            request: dict[str, Any] = {
                "prefetch": [
                    models.Prefetch(query=dense, using=DENSE, limit=prefetch_limit, filter=selector),
                    models.Prefetch(query=sparse_vector, using=SPARSE, limit=prefetch_limit, filter=selector),
                ],
                "query": models.RrfQuery(rrf=models.Rrf(weights=list(weights))),
            }
        elif dense is not None:
            request = {"query": dense, "using": DENSE, "query_filter": selector}
        elif sparse_vector is not None:
            request = {"query": sparse_vector, "using": SPARSE, "query_filter": selector}
        else:
            return []
        result = self._call(
            "search",
            lambda: self._client.query_points(self.collection, limit=limit, with_payload=True, **request),
        )
        return [Hit(dict(p.payload or {}), float(p.score)) for p in result.points]

    def _query_with_index(
        self,
        dense: list[float] | None,
        sparse: Sparse,
        limit: int,
        prefetch_limit: int,
        weights: tuple[float, float],
        filters: dict[str, str] | None,
    ) -> list[Hit]:
        """Local mode: Qdrant's dense list and the index's sparse list, fused as the Query API does."""
        from qdrant_client import models
        from qdrant_client.hybrid.fusion import reciprocal_rank_fusion

        assert self._index is not None
        lexical = [
            models.ScoredPoint(id=point_id, version=0, score=score)
            for point_id, score in self._index.search(
                sparse[0], sparse[1], prefetch_limit if dense is not None else limit, filters
            )
        ]
        if dense is None:
            ranked = lexical
        else:
            selector = self._filter(filters)
            semantic = self._call(
                "search",
                lambda: self._client.query_points(
                    self.collection,
                    query=dense,
                    using=DENSE,
                    query_filter=selector,
                    limit=prefetch_limit,
                    with_payload=False,
                ),
            ).points
            ranked = reciprocal_rank_fusion([semantic, lexical], limit=limit, weights=list(weights))
        if not ranked:
            return []
        records = self._call(
            "read points",
            lambda: self._client.retrieve(self.collection, ids=[p.id for p in ranked], with_payload=True),
        )
        payloads = {str(r.id): dict(r.payload or {}) for r in records}
        return [Hit(payloads[str(p.id)], float(p.score)) for p in ranked if str(p.id) in payloads]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._path is not None:
            _close_local(self._path)
        else:
            self._client.close()
