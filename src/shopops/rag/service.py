"""The knowledge base service: incremental ingestion, hybrid retrieval, embeddings.

``RagService`` is what the rest of shopops uses (the LLM gateway's embeddings, the agents'
retrieval): ``ingest(path)``, ``search(query, k)``, ``embed(texts)``, ``stats()``.

Ingestion is incremental by content hash. For each file under the path: unchanged bytes → nothing
to do; otherwise its chunks are computed, only chunks whose id (a hash of their content and
context) is new are embedded and written, then the file's other points are deleted and its
manifest row replaced. Files gone from the path lose their points. Points are written before the
manifest, and writes are idempotent (a point's id is its content hash), so a crash at any moment
loses nothing and duplicates nothing: the next run redoes what the manifest does not confirm. At
the start of every run the manifest is checked against the ids actually in the store (points
missing → their files are read again; points nobody owns → deleted).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram

from shopops.core.errors import (
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from shopops.core.logging import get_logger
from shopops.rag.cache import EmbeddingCache
from shopops.rag.chunking import chunk_document, kind_of
from shopops.rag.embedder import Embedder, shared_embedder
from shopops.rag.manifest import Manifest
from shopops.rag.model import (
    PIPELINE_VERSION,
    Chunk,
    DocumentMeta,
    IngestReport,
    Passage,
    RagStats,
    check_query,
    passage_from_payload,
)
from shopops.rag.port import KnowledgeStore, StoredPoint
from shopops.rag.text import TOKENIZER_VERSION, detect_lang, document_vector, query_vector

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from shopops.core.settings import Settings

log = get_logger("shopops.rag")

SEARCHES = Counter("shopops_rag_searches_total", "Knowledge-base searches", ["mode", "query_lang"])
SEARCH_SECONDS = Histogram(
    "shopops_rag_search_duration_seconds",
    "Knowledge-base search time (embedding the question included)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INGESTED_CHUNKS = Counter(
    "shopops_rag_ingested_chunks_total", "Chunks written to or removed from the knowledge store", ["change"]
)
INGEST_RUNS = Counter("shopops_rag_ingest_runs_total", "Ingestion runs", ["status"])
STORE_CHUNKS = Gauge("shopops_rag_chunks", "Chunks in the knowledge store after the last ingestion")

#: Retrieval modes: hybrid (the default), and each side alone (for evaluation and benchmarks).
MODES = ("hybrid", "dense", "sparse")
MAX_EMBED_TEXTS = 2_048
_ENCODE_SLICE = 16
MAX_FILE_BYTES = 10 * 1024 * 1024
_SKIPPED_DIRS = frozenset({"node_modules", "__pycache__"})
#: Progress callback: (chunks embedded so far, chunks to embed in this run).
Progress = Callable[[int, int], None]


def default_knowledge_dir() -> Path:
    """``./docs/knowledge`` when it exists, else the ``docs/knowledge`` folder of the source
    checkout shopops runs from. The knowledge base is not package data: an installed wheel needs
    ``rag.knowledge_dir`` (or a path given to ``shopops rag ingest``)."""
    here = Path("docs/knowledge")
    if here.is_dir():
        return here.absolute()
    checkout = Path(__file__).resolve().parents[3] / "docs" / "knowledge"
    if checkout.is_dir():
        return checkout
    raise ConfigError(
        "no knowledge base folder found (neither ./docs/knowledge nor the source checkout's)",
        hint="set rag.knowledge_dir (SHOPOPS_RAG__KNOWLEDGE_DIR) to the folder of your documents",
    )


def source_root(path: Path) -> Path:
    """The folder sources are relative to: the enclosing repository (a folder with ``.git`` or
    ``pyproject.toml``), else the parent of the ingested folder — so outside a repository, ingest
    the same folder each time (a subfolder would name its files differently)."""
    start = path if path.is_dir() else path.parent
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists() or (candidate / "pyproject.toml").is_file():
            return candidate
    return start.parent


def discover(path: Path) -> list[Path]:
    """The readable documents at ``path`` (a file, or a folder searched recursively)."""
    if path.is_file():
        if kind_of(path.name) is None:
            raise InvalidInputError(
                f"{path} is not a document the knowledge base reads",
                hint="give a Markdown (.md), HTML (.html, .htm) or text (.txt) file, or a folder",
            )
        return [path]
    found = []
    for candidate in path.rglob("*"):
        relative = candidate.relative_to(path).parts
        if any(p.startswith(".") or p in _SKIPPED_DIRS for p in relative):
            continue
        if candidate.is_file() and kind_of(candidate.name) is not None:
            found.append(candidate)
    return sorted(found)


@dataclass
class _FileWork:
    source: str
    file_hash: str
    meta: DocumentMeta
    chunks: list[Chunk]
    fresh: list[Chunk]


class _InterruptedError(Exception):
    """The service is closing: ingestion stops between batches (every finished file is whole)."""


class RagService:
    """Ingestion into and retrieval from the knowledge store.

    ``store_factory`` opens the store on first use (searching or ingesting); ``embed`` never needs
    it. One service per process is enough; several may share a local store (one client per folder).
    """

    def __init__(
        self,
        *,
        home: Path,
        store_factory: Callable[[], KnowledgeStore],
        embedder: Embedder | None = None,
        chunk_size: int = 1000,
        chunk_overlap: int = 150,
        embed_batch: int = 64,
        write_batch: int = 256,
        dense_weight: float = 1.0,
        sparse_weight: float = 1.0,
        vi_dense_weight: float = 0.25,
        embedding_cache: Path | None = None,
    ) -> None:
        if chunk_overlap >= chunk_size:
            raise ConfigError(
                f"rag.chunk_overlap ({chunk_overlap}) must be smaller than rag.chunk_size ({chunk_size})",
                hint="e.g. chunk_size 1000, chunk_overlap 150",
            )
        self.home = home
        self.embedder: Embedder = embedder or shared_embedder()
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.embed_batch = embed_batch
        self.write_batch = write_batch
        self.dense_weight = dense_weight
        self.sparse_weight = sparse_weight
        self.vi_dense_weight = vi_dense_weight
        self._store_factory = store_factory
        #: Where computed vectors are kept by text (default ``$SHOPOPS_HOME/rag/embeddings.db``).
        self.embedding_cache_path = embedding_cache or home / "rag" / "embeddings.db"
        self._cache: EmbeddingCache | None = None
        self._store: KnowledgeStore | None = None
        self._manifest: Manifest | None = None
        self._open_lock = threading.Lock()
        self._ingest_lock = threading.Lock()
        self._closing = threading.Event()

    # --- plumbing ---------------------------------------------------------------------------------

    @property
    def rag_dir(self) -> Path:
        return self.home / "rag"

    def _open(self) -> tuple[KnowledgeStore, Manifest]:
        with self._open_lock:
            if self._closing.is_set():
                raise BackendUnavailableError(
                    "the knowledge base service is closed", hint="the process is shutting down; retry later"
                )
            if self._store is None:
                store = self._store_factory()
                try:
                    manifest = self._manifest or Manifest(self.rag_dir / "manifest.db")
                    self._manifest = manifest
                    if store.ensure_collection():
                        # A new (or vanished) collection holds nothing, whatever the manifest says.
                        manifest.clear(self._key(store))
                except BaseException:
                    store.close()
                    raise
                self._store = store
            assert self._manifest is not None
            return self._store, self._manifest

    @staticmethod
    def _key(store: KnowledgeStore) -> str:
        return f"{store.identity}#{store.collection}"

    @property
    def store(self) -> KnowledgeStore:
        """The knowledge store (opened on first use)."""
        return self._open()[0]

    @contextlib.contextmanager
    def _process_lock(self, timeout_s: float = 120.0) -> Iterator[None]:
        """One ingestion at a time per data directory, across processes (a server store may be
        shared; local mode is one process per folder anyway)."""
        self.rag_dir.mkdir(parents=True, exist_ok=True)
        with (self.rag_dir / "ingest.lock").open("a+") as handle:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise ConflictError(
                            f"another ingestion into {self.rag_dir} has run for over {timeout_s:.0f} s",
                            hint="wait for it to finish, then run this again",
                        ) from None
                    time.sleep(0.2)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _fingerprint(self) -> bytes:
        return (
            f"{PIPELINE_VERSION}|{TOKENIZER_VERSION}|{self.embedder.model_name}|"
            f"{self.chunk_size}|{self.chunk_overlap}|"
        ).encode()

    # --- embeddings -------------------------------------------------------------------------------

    def embed(self, texts: list[str]) -> list[list[float]]:
        """L2-normalised all-MiniLM-L6-v2 vectors (384 floats each), one per text."""
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise InvalidInputError("texts must be a list of strings", hint='e.g. ["refund policy"]')
        if len(texts) > MAX_EMBED_TEXTS:
            raise InvalidInputError(
                f"{len(texts):,} texts at once is too many (at most {MAX_EMBED_TEXTS:,})",
                hint="send them in smaller batches",
            )
        vectors: list[list[float]] = self.embedder.encode(texts, self.embed_batch).tolist()
        return vectors

    def warm_up(self) -> None:
        """Load the embedding model now (a few seconds) rather than on the first question."""
        self.embedder.encode(["warm up"])

    # --- retrieval --------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        lang: str | None = None,
        audience: str | None = None,
        mode: str = "hybrid",
    ) -> list[Passage]:
        """The ``k`` passages that best answer ``query``, best first.

        Hybrid by default: the question's MiniLM vector and its BM25 terms each rank the chunks,
        and reciprocal rank fusion merges the two lists. MiniLM reads English only, so for a
        question detected as Vietnamese the dense list weighs less (``vi_dense_weight``). ``lang``
        and ``audience`` restrict the chunks searched (e.g. ``audience="customer"`` for answers a
        customer may see).
        """
        text = check_query(query, k, lang, audience)
        if mode not in MODES:
            raise InvalidInputError(f"unknown search mode {mode!r}", hint=f"use one of: {', '.join(MODES)}")
        started = time.perf_counter()
        store, _ = self._open()
        dense = self.embedder.encode([text])[0].tolist() if mode != "sparse" else None
        sparse = query_vector(text) if mode != "dense" else None
        query_lang = detect_lang(text)
        weights = (self.vi_dense_weight if query_lang == "vi" else self.dense_weight, self.sparse_weight)
        filters = {name: value for name, value in (("lang", lang), ("audience", audience)) if value}
        hits = store.query(
            dense=dense,
            sparse=sparse,
            limit=k,
            prefetch_limit=max(40, 4 * k),
            weights=weights,
            filters=filters or None,
        )
        SEARCHES.labels(mode, query_lang).inc()
        SEARCH_SECONDS.observe(time.perf_counter() - started)
        return [passage_from_payload(hit.payload, hit.score) for hit in hits]

    # --- ingestion --------------------------------------------------------------------------------

    def ingest(self, path: Path, *, progress: Progress | None = None, rebuild: bool = False) -> IngestReport:
        """Bring the store in line with the documents under ``path`` (a folder or one file).

        Only new or changed chunks are embedded; chunks of changed or deleted files are removed.
        ``rebuild`` empties the collection first (after a model or settings change). A file that
        cannot be read or parsed is listed in ``errors`` and keeps its previous chunks.
        """
        target = Path(path).expanduser().absolute()
        if not target.exists():
            raise NotFoundError(f"{path} does not exist", hint="give a folder of documents or one file")
        files = discover(target)
        root = source_root(target)
        prefix = target.relative_to(root).as_posix()
        report = IngestReport(path=str(target), rebuilt=rebuild)
        started = time.perf_counter()
        status = "error"
        try:
            with self._ingest_lock, self._process_lock():
                store, manifest = self._open()
                key = self._key(store)
                if rebuild:
                    store.recreate()
                    manifest.clear(key)
                self._check_manifest(store, manifest)
                known = manifest.files(key, None if prefix == "." else prefix)
                work = self._plan(files, root, known, report)
                seen = {f.relative_to(root).as_posix() for f in files}
                self._write(store, manifest, work, report, progress)
                for source in sorted(set(known) - seen):
                    self._check_open()
                    store.delete_source(source)
                    manifest.remove_file(key, source)
                    report.removed += len(known[source].chunk_ids)
                    report.files_removed += 1
                report.seconds = time.perf_counter() - started
                manifest.record_run(key, report)
                STORE_CHUNKS.set(manifest.summary(key)[1])
            status = "ok" if not report.errors else "partial"
            for change in ("added", "changed", "removed"):
                INGESTED_CHUNKS.labels(change).inc(getattr(report, change))
        except _InterruptedError:
            status = "interrupted"
            report.interrupted = True
            log.warning("ingestion interrupted: the service is closing", path=str(target))
        finally:
            report.seconds = time.perf_counter() - started
            INGEST_RUNS.labels(status).inc()
        return report

    def _check_manifest(self, store: KnowledgeStore, manifest: Manifest) -> None:
        """Make the manifest say what the store holds (after a crash, or a store emptied by hand)."""
        key = self._key(store)
        expected = manifest.all_chunk_ids(key)
        actual = store.ids()
        missing = expected.keys() - actual
        orphans = actual - expected.keys()
        if missing:
            sources = manifest.forget_chunks(key, missing)
            log.warning(
                "chunks missing from the store will be written again", chunks=len(missing), files=len(sources)
            )
        if orphans:
            store.delete_ids(orphans)
            log.warning("points no file owns were deleted from the store", points=len(orphans))

    def _plan(
        self, files: list[Path], root: Path, known: dict[str, Any], report: IngestReport
    ) -> list[_FileWork]:
        fingerprint = self._fingerprint()
        work: list[_FileWork] = []
        for file in files:
            source = file.relative_to(root).as_posix()
            report.files_seen += 1
            try:
                if file.stat().st_size > MAX_FILE_BYTES:
                    raise InvalidInputError(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
                raw = file.read_bytes()
            except (OSError, InvalidInputError) as exc:
                report.errors[source] = f"cannot read it: {getattr(exc, 'message', exc)}"
                continue
            file_hash = hashlib.sha256(fingerprint + raw).hexdigest()
            record = known.get(source)
            if record is not None and record.file_hash == file_hash:
                report.files_unchanged += 1
                report.unchanged += len(record.chunk_ids)
                continue
            kind = kind_of(file.name)
            assert kind is not None
            try:
                text = raw.decode("utf-8-sig")
                meta, chunks = chunk_document(
                    source,
                    text,
                    kind,
                    size=self.chunk_size,
                    overlap=self.chunk_overlap,
                    model=f"{self.embedder.model_name}|{TOKENIZER_VERSION}",
                )
            except UnicodeDecodeError as exc:
                report.errors[source] = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
                continue
            except InvalidInputError as exc:
                report.errors[source] = str(exc)
                continue
            old: frozenset[str] = record.chunk_ids if record is not None else frozenset()
            new_ids = {c.chunk_id for c in chunks}
            fresh = [c for c in chunks if c.chunk_id not in old]
            if record is None:
                report.added += len(fresh)
            else:
                report.changed += len(fresh)
            report.unchanged += len(new_ids & old)
            report.removed += len(old - new_ids)
            report.files_changed += 1
            work.append(_FileWork(source, file_hash, meta, chunks, fresh))
        return work

    def _check_open(self) -> None:
        if self._closing.is_set():
            raise _InterruptedError

    def _write(
        self,
        store: KnowledgeStore,
        manifest: Manifest,
        work: list[_FileWork],
        report: IngestReport,
        progress: Progress | None,
    ) -> None:
        """Embed and write the fresh chunks, a group of files at a time; then, per file, delete its
        stale points and record it (so a file is confirmed only once all its points are in)."""
        key = self._key(store)
        total = sum(len(w.fresh) for w in work)
        done = 0
        if progress is not None:
            progress(0, total)
        group: list[_FileWork] = []
        pending = 0
        for index, item in enumerate(work):
            group.append(item)
            pending += len(item.fresh)
            if pending < self.write_batch and index < len(work) - 1:
                continue
            # Similar lengths side by side: the model pads every text of a batch to its longest.
            fresh = sorted((c for w in group for c in w.fresh), key=lambda c: len(c.embedding_text()))
            for start in range(0, len(fresh), self.embed_batch):
                self._check_open()
                batch = fresh[start : start + self.embed_batch]
                texts = [c.embedding_text() for c in batch]
                began = time.perf_counter()
                vectors = self._vectors(texts, report)
                report.embed_seconds += time.perf_counter() - began
                store.upsert(
                    [
                        StoredPoint(chunk, vector.tolist(), document_vector(text))
                        for chunk, vector, text in zip(batch, vectors, texts, strict=True)
                    ]
                )
                done += len(batch)
                if progress is not None:
                    progress(done, total)
            for finished in group:
                store.delete_source(finished.source, keep={c.chunk_id for c in finished.chunks})
                manifest.put_file(
                    key,
                    finished.source,
                    finished.file_hash,
                    finished.meta,
                    [c.chunk_id for c in finished.chunks],
                )
            group, pending = [], 0

    def _vectors(self, texts: list[str], report: IngestReport) -> npt.NDArray[np.float32]:
        """Vectors of ``texts``: from the embedding cache when known, else from the model."""
        import numpy as np

        if self._cache is None:
            self._cache = EmbeddingCache(
                self.embedding_cache_path, self.embedder.model_name, self.embedder.dimensions
            )
        cached = self._cache.get(texts)
        missing = [i for i in range(len(texts)) if i not in cached]
        vectors = np.zeros((len(texts), self.embedder.dimensions), dtype=np.float32)
        # A few texts at a time, so that closing the service (shutdown) waits seconds, not a batch.
        for start in range(0, len(missing), _ENCODE_SLICE):
            self._check_open()
            part = missing[start : start + _ENCODE_SLICE]
            fresh = self.embedder.encode([texts[i] for i in part], self.embed_batch)
            self._cache.put([texts[i] for i in part], fresh)
            vectors[part] = fresh
        for position, vector in cached.items():
            vectors[position] = vector
        report.encoded += len(missing)
        report.cache_hits += len(cached)
        return vectors

    # --- status -----------------------------------------------------------------------------------

    def stats(self) -> RagStats:
        """Points in the store, files and chunks per the manifest, the last ingestion."""
        store, manifest = self._open()
        key = self._key(store)
        files, chunks, by_lang, by_audience = manifest.summary(key)
        return RagStats(
            store=store.identity,
            collection=store.collection,
            points=store.count(),
            files=files,
            chunks=chunks,
            by_lang=by_lang,
            by_audience=by_audience,
            model=self.embedder.model_name,
            dimensions=self.embedder.dimensions,
            last_ingest=manifest.last_run(key),
        )

    def close(self) -> None:
        """Stop a running ingestion between two batches, then close the store and the manifest."""
        self._closing.set()
        with self._ingest_lock, self._open_lock:
            if self._store is not None:
                self._store.close()
                self._store = None
            if self._manifest is not None:
                self._manifest.close()
                self._manifest = None
            if self._cache is not None:
                self._cache.close()
                self._cache = None


def build_rag_service(settings: Settings, *, embedder: Embedder | None = None) -> RagService:
    """A service from the ``rag`` settings: Qdrant local mode under ``$SHOPOPS_HOME/rag/qdrant``,
    or the server at ``rag.qdrant_url``."""
    from shopops.rag.backends.qdrant import QdrantStore

    cfg = settings.rag
    chosen = embedder or shared_embedder(cfg.embed_threads)
    home = settings.home

    def open_store() -> KnowledgeStore:
        if cfg.qdrant_url:
            key = cfg.qdrant_api_key.get_secret_value() if cfg.qdrant_api_key else None
            return QdrantStore(
                collection=cfg.collection,
                dimensions=chosen.dimensions,
                url=cfg.qdrant_url,
                api_key=key,
                timeout_s=cfg.timeout_s,
            )
        return QdrantStore(
            collection=cfg.collection,
            dimensions=chosen.dimensions,
            path=home / "rag" / "qdrant",
            lexical=cfg.local_lexical,
        )

    return RagService(
        home=home,
        store_factory=open_store,
        embedder=chosen,
        chunk_size=cfg.chunk_size,
        chunk_overlap=cfg.chunk_overlap,
        embed_batch=cfg.embed_batch,
        dense_weight=cfg.dense_weight,
        sparse_weight=cfg.sparse_weight,
        vi_dense_weight=cfg.vi_dense_weight,
        embedding_cache=cfg.embedding_cache,
    )
