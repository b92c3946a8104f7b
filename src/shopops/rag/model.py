"""The knowledge base's domain: documents, chunks, passages, ingestion reports. Pure, no I/O."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from shopops.core.errors import InvalidInputError

#: Changing chunking or metadata handling changes chunk ids: bump to re-embed everything.
PIPELINE_VERSION = "rag-v1"

AUDIENCES = ("customer", "internal")
Audience = Literal["customer", "internal"]

MAX_QUERY_CHARS = 2_000
MAX_K = 50


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk, with what a citation needs: its file and heading path.

    ``source`` is the file's path relative to the repository (or the ingested folder's parent),
    e.g. ``docs/knowledge/policies/refunds-and-returns.md``; ``score`` is the fused rank score
    (reciprocal rank fusion of the dense and BM25 lists: higher is better, comparable within one
    answer only).
    """

    chunk_id: str
    text: str
    source: str
    heading_path: tuple[str, ...]
    score: float
    lang: str
    doc_id: str
    title: str
    audience: str = "internal"
    region: str | None = None

    @property
    def citation(self) -> str:
        """``source > heading > sub-heading``: where the passage comes from, for people."""
        return " > ".join((self.source, *self.heading_path))

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["heading_path"] = list(self.heading_path)
        body["citation"] = self.citation
        return body


@dataclass(frozen=True)
class DocumentMeta:
    """Front-matter of a knowledge document (defaults filled in by the parser)."""

    doc_id: str
    title: str
    lang: str
    audience: str
    region: str | None = None


@dataclass(frozen=True)
class Section:
    """A run of text under one heading path (the headings from the top level down)."""

    heading_path: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class Chunk:
    """A piece of a document small enough to embed, identified by its content.

    ``chunk_id`` is a UUID derived from ``chunk_hash``: the hash covers the pipeline version, the
    embedding model and term tokenizer (``model``), the source, the document's metadata, the
    heading path and the text, so an unchanged chunk keeps its id (and its vectors) across runs and
    anything that would change its vectors or payload gives it a new id.
    """

    chunk_id: str
    chunk_hash: str
    source: str
    meta: DocumentMeta
    heading_path: tuple[str, ...]
    text: str

    def embedding_text(self) -> str:
        """What is embedded and indexed: title and headings give a short section its context."""
        path = self.heading_path
        head = path if path and path[0] == self.meta.title else (self.meta.title, *path)
        return "\n".join((" > ".join(head), self.text))

    def payload(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "chunk_hash": self.chunk_hash,
            "text": self.text,
            "source": self.source,
            "heading_path": list(self.heading_path),
            "doc_id": self.meta.doc_id,
            "title": self.meta.title,
            "lang": self.meta.lang,
            "audience": self.meta.audience,
            "region": self.meta.region,
        }


def make_chunk(
    source: str, meta: DocumentMeta, heading_path: tuple[str, ...], text: str, occurrence: int, model: str
) -> Chunk:
    """A chunk with its content-derived id (``occurrence`` tells identical pieces of one file apart)."""
    material = json.dumps(
        [PIPELINE_VERSION, model, source, asdict(meta), list(heading_path), text, occurrence],
        ensure_ascii=False,
    )
    digest = hashlib.sha256(material.encode()).hexdigest()
    return Chunk(str(uuid.UUID(digest[:32])), digest, source, meta, heading_path, text)


def passage_from_payload(payload: dict[str, Any], score: float) -> Passage:
    return Passage(
        chunk_id=str(payload["chunk_id"]),
        text=str(payload["text"]),
        source=str(payload["source"]),
        heading_path=tuple(str(h) for h in payload.get("heading_path") or ()),
        score=float(score),
        lang=str(payload.get("lang", "")),
        doc_id=str(payload.get("doc_id", "")),
        title=str(payload.get("title", "")),
        audience=str(payload.get("audience", "internal")),
        region=payload.get("region"),
    )


@dataclass
class IngestReport:
    """What one ingestion did. Chunk counts: ``added`` (of new files), ``changed`` (new or edited
    chunks of known files), ``removed`` (of edited or deleted files), ``unchanged`` (kept as is);
    ``embedded`` = ``added + changed``."""

    path: str
    files_seen: int = 0
    files_changed: int = 0
    files_removed: int = 0
    files_unchanged: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    #: Of the embedded chunks: vectors computed by the model now, and taken from the cache.
    encoded: int = 0
    cache_hits: int = 0
    rebuilt: bool = False
    #: The service closed mid-way: the counts are what was planned; finished files are whole.
    interrupted: bool = False
    #: Files that could not be read or parsed: ``{source: reason}``; their previous chunks stay.
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def embedded(self) -> int:
        return self.added + self.changed

    @property
    def chunks_per_s(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["embedded"] = self.embedded
        body["chunks_per_s"] = round(self.chunks_per_s, 1)
        body["seconds"] = round(self.seconds, 3)
        body["embed_seconds"] = round(self.embed_seconds, 3)
        return body


@dataclass(frozen=True)
class RagStats:
    """The knowledge store at a glance."""

    store: str
    collection: str
    points: int
    files: int
    chunks: int
    by_lang: dict[str, int]
    by_audience: dict[str, int]
    model: str
    dimensions: int
    last_ingest: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_query(query: str, k: int, lang: str | None, audience: str | None) -> str:
    """Validate search arguments; returns the stripped query."""
    text = query.strip() if isinstance(query, str) else ""
    if not text:
        raise InvalidInputError(
            "the question is empty", hint="ask something, e.g. 'how long do refunds take?'"
        )
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidInputError(
            f"the question is {len(text):,} characters long (at most {MAX_QUERY_CHARS:,})",
            hint="shorten it to the question itself",
        )
    if not 1 <= k <= MAX_K:
        raise InvalidInputError(f"k must be between 1 and {MAX_K}, got {k}", hint="e.g. -k 5")
    if lang is not None and (len(lang) != 2 or not lang.isalpha() or not lang.islower()):
        raise InvalidInputError(
            f"lang {lang!r} is not a two-letter language code", hint="use e.g. 'en' or 'vi'"
        )
    if audience is not None and audience not in AUDIENCES:
        raise InvalidInputError(f"unknown audience {audience!r}", hint=f"use one of: {', '.join(AUDIENCES)}")
    return text
