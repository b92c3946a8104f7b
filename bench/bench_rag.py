"""Knowledge base: retrieval latency over 10,000 chunks, and ingestion chunks/s.

    python bench/bench_rag.py [--chunks 10000] [--queries 3] [--native-queries 20] [--json out.json]

**Retrieval.** ``--chunks`` synthetic chunks are made from the knowledge base's own text: each
takes 2-6 sentences of docs/knowledge at random (seeded), under a heading of the knowledge base,
in 500 synthetic files of both languages. Its dense vector is the normalised mean of its
sentences' MiniLM vectors (every sentence is embedded once; the vectors are cached under
``/tmp/shopops-bench-rag``), its sparse vector the BM25 weights of its text. They are written into
a fresh Qdrant local-mode collection, then every question of the golden set
(tests/golden/rag.yaml) is asked ``--queries`` times:

- **baseline**: dense only, one ``query_points`` call (the question's vector computed beforehand);
- **hybrid**: dense + BM25 fused by reciprocal rank fusion, as ``RagService.search`` does (the
  BM25 side on the in-memory sparse index, the default in local mode);
- **hybrid, Qdrant-local sparse**: the same fusion with the BM25 side scored by Qdrant local mode
  itself (``rag.local_lexical = "qdrant"``), ``--native-queries`` questions only (it is slow);
- **search end to end**: ``RagService.search``, the question's embedding included.

**Ingestion.** The knowledge base (docs/knowledge) is ingested into a fresh data directory with
an empty embedding cache (``RagService.ingest``: read, chunk, embed, BM25, write, manifest), next
to the baseline measured in the same run: ``MiniLM encode`` of the same chunks' texts alone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from shopops.core.logging import configure_logging
from shopops.core.settings import Settings
from shopops.rag.backends.qdrant import QdrantStore
from shopops.rag.cache import EmbeddingCache
from shopops.rag.chunking import chunk_document, kind_of
from shopops.rag.embedder import shared_embedder
from shopops.rag.evaluation import load_golden
from shopops.rag.model import DocumentMeta, make_chunk
from shopops.rag.port import StoredPoint
from shopops.rag.service import RagService, build_rag_service, discover
from shopops.rag.text import detect_lang, document_vector, query_vector

console = Console()
REPO = Path(__file__).resolve().parents[1]
KNOWLEDGE = REPO / "docs" / "knowledge"
CACHE_DIR = Path(tempfile.gettempdir()) / "shopops-bench-rag"
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]  # noqa: E731
    return {"p50_ms": round(pick(0.5) * 1000, 2), "p95_ms": round(pick(0.95) * 1000, 2), "n": len(values)}


def _knowledge_chunks() -> list[Any]:
    chunks = []
    for file in discover(KNOWLEDGE):
        kind = kind_of(file.name)
        assert kind is not None
        _, found = chunk_document(
            file.relative_to(REPO).as_posix(), file.read_text(), kind, size=1000, overlap=150, model="bench"
        )
        chunks.extend(found)
    return chunks


def _synthetic(n: int, seed: int) -> list[StoredPoint]:
    """``n`` chunks of knowledge-base sentences, with real MiniLM sentence vectors averaged."""
    chunks = _knowledge_chunks()
    sentences = sorted(
        {s.strip() for c in chunks for s in _SENTENCE.split(c.text) if len(s.strip()) > 20 and "|" not in s}
    )
    headings = sorted({c.heading_path for c in chunks if c.heading_path})
    embedder = shared_embedder()
    cache = EmbeddingCache(CACHE_DIR / "embeddings.db", embedder.model_name, embedder.dimensions)
    cached = cache.get(sentences)
    missing = [i for i in range(len(sentences)) if i not in cached]
    if missing:
        with console.status(f"embedding {len(missing):,} knowledge-base sentences (cached for later runs)"):
            fresh = embedder.encode([sentences[i] for i in missing])
        cache.put([sentences[i] for i in missing], fresh)
        cached = cache.get(sentences)
    vectors = np.stack([cached[i] for i in range(len(sentences))])
    cache.close()
    rng = np.random.default_rng(seed)
    points = []
    for i in range(n):
        picked = rng.choice(len(sentences), size=int(rng.integers(2, 7)), replace=False)
        text = " ".join(sentences[j] for j in picked)
        dense = vectors[picked].mean(axis=0)
        dense /= np.linalg.norm(dense)
        heading = headings[int(rng.integers(len(headings)))]
        lang = detect_lang(text)
        meta = DocumentMeta(f"synthetic-{i // 20}", heading[0], lang, "customer" if i % 3 else "internal")
        chunk = make_chunk(f"bench/synthetic/doc-{i // 20:04d}.md", meta, heading, text, i, "bench")
        points.append(
            StoredPoint(chunk, dense.astype(np.float32).tolist(), document_vector(chunk.embedding_text()))
        )
    return points


def bench_retrieval(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    points = _synthetic(args.chunks, args.seed)
    store = QdrantStore(collection="bench", dimensions=384, path=tmp / "qdrant")
    store.ensure_collection()
    started = time.perf_counter()
    for start in range(0, len(points), 512):
        store.upsert(points[start : start + 512])
    upsert_s = time.perf_counter() - started
    _, golden = load_golden(REPO / "tests" / "golden" / "rag.yaml")
    questions = [q.question for q in golden]
    embedder = shared_embedder()
    dense = {q: embedder.encode([q])[0].tolist() for q in questions}
    sparse = {q: query_vector(q) for q in questions}
    store.query(dense=dense[questions[0]], sparse=sparse[questions[0]], limit=5, prefetch_limit=40)  # warm

    def run(fn: Any, qs: list[str]) -> dict[str, float]:
        times = []
        for _ in range(args.queries):
            for q in qs:
                began = time.perf_counter()
                fn(q)
                times.append(time.perf_counter() - began)
        return _percentiles(times)

    results: dict[str, Any] = {"chunks": len(points), "upsert_s": round(upsert_s, 1)}
    results["baseline_dense"] = run(
        lambda q: store.query(dense=dense[q], sparse=None, limit=5, prefetch_limit=40), questions
    )
    results["hybrid"] = run(
        lambda q: store.query(dense=dense[q], sparse=sparse[q], limit=5, prefetch_limit=40), questions
    )
    store.close()
    native = QdrantStore(collection="bench", dimensions=384, path=tmp / "qdrant", lexical="qdrant")
    native.ensure_collection()
    saved = args.queries
    args.queries = 1
    results["hybrid_qdrant_sparse"] = run(
        lambda q: native.query(dense=dense[q], sparse=sparse[q], limit=5, prefetch_limit=40),
        questions[: args.native_queries],
    )
    args.queries = saved
    native.close()

    service = RagService(
        home=tmp / "svc",
        store_factory=lambda: QdrantStore(collection="bench", dimensions=384, path=tmp / "qdrant"),
    )
    results["search_end_to_end"] = run(lambda q: service.search(q, 5), questions)
    service.close()
    return results


def bench_ingestion(tmp: Path) -> dict[str, Any]:
    texts = [c.embedding_text() for c in _knowledge_chunks()]
    embedder = shared_embedder()
    embedder.encode(["warm up"])
    started = time.perf_counter()
    embedder.encode(texts, 64)
    raw_s = time.perf_counter() - started
    (tmp / "repo" / ".git").mkdir(parents=True)
    corpus = tmp / "repo" / "knowledge"
    shutil.copytree(KNOWLEDGE, corpus)
    service = build_rag_service(
        Settings(home=tmp / "ingest", rag={"embedding_cache": str(tmp / "ingest.db")})
    )
    report = service.ingest(corpus)
    service.close()
    return {
        "chunks": report.embedded,
        "raw_encode_per_s": round(len(texts) / raw_s, 1),
        "ingest_per_s": round(report.embedded / report.seconds, 1),
        "ingest_s": round(report.seconds, 1),
        "embed_s": round(report.embed_seconds, 1),
        "raw_encode_s": round(raw_s, 1),
    }


def _print_retrieval(retrieval: dict[str, Any]) -> None:
    table = Table(
        title=f"retrieval over {retrieval['chunks']:,} chunks, Qdrant local mode, {os.cpu_count()} cores "
        f"(upsert {retrieval['upsert_s']} s)"
    )
    for column in ("query", "p50 ms", "p95 ms", "queries"):
        table.add_column(column, justify="left" if column == "query" else "right")
    for name, label in (
        ("baseline_dense", "baseline: dense only (query_points)"),
        ("hybrid", "hybrid: dense + BM25 index, RRF"),
        ("hybrid_qdrant_sparse", "hybrid: dense + Qdrant-local sparse, RRF"),
        ("search_end_to_end", "RagService.search (question embedded)"),
    ):
        row = retrieval[name]
        table.add_row(label, f"{row['p50_ms']:.1f}", f"{row['p95_ms']:.1f}", str(row["n"]))
    console.print(table)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=3, help="times each golden question is asked")
    parser.add_argument("--native-queries", type=int, default=20, help="questions for the slow native path")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-retrieval", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    configure_logging("WARNING")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-rag-") as tmp_name:
        tmp = Path(tmp_name)
        retrieval = None if args.skip_retrieval else bench_retrieval(args, tmp)
        ingestion = None if args.skip_ingest else bench_ingestion(tmp)
    if retrieval:
        _print_retrieval(retrieval)
    if ingestion:
        console.print(
            f"ingestion of docs/knowledge: {ingestion['chunks']} chunks in {ingestion['ingest_s']} s = "
            f"{ingestion['ingest_per_s']} chunks/s (embedding {ingestion['embed_s']} s); baseline raw MiniLM "
            f"encode of the same chunks: {ingestion['raw_encode_per_s']} chunks/s "
            f"({ingestion['ingest_per_s'] / ingestion['raw_encode_per_s']:.2f}x)"
        )
    if args.json:
        args.json.write_text(json.dumps({"retrieval": retrieval, "ingestion": ingestion}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
