"""Fixtures of the knowledge-base tests: the real MiniLM model, Qdrant local mode, small corpora.

The repository's knowledge base is ingested once per session (``knowledge``). Computed vectors are
kept in an embedding cache under the system's temporary folder, shared by test sessions: the
vectors are the model's own output for the same text, so later sessions skip only the waiting.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from shopops.core.settings import Settings
from shopops.rag.embedder import MiniLMEmbedder, shared_embedder
from shopops.rag.service import RagService, build_rag_service

REPO = Path(__file__).resolve().parents[3]
KNOWLEDGE = REPO / "docs" / "knowledge"
SHARED_CACHE = Path(tempfile.gettempdir()) / "shopops-test-cache" / "rag-embeddings.db"


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to encode."""

    def __init__(self, inner: MiniLMEmbedder) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.dimensions = inner.dimensions
        self.encoded = 0

    def encode(self, texts: list[str], batch_size: int = 64) -> npt.NDArray[np.float32]:
        self.encoded += len(texts)
        return self.inner.encode(texts, batch_size)


def settings_for(home: Path, **rag: object) -> Settings:
    return Settings(home=home, rag={"knowledge_dir": str(KNOWLEDGE), **rag})


@dataclass
class Knowledge:
    home: Path
    service: RagService
    settings: Settings


@pytest.fixture(scope="session")
def knowledge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Knowledge]:
    """The repository's knowledge base, ingested once into a session data directory."""
    home = tmp_path_factory.mktemp("rag-kb")
    settings = settings_for(home, embedding_cache=str(SHARED_CACHE))
    service = build_rag_service(settings)
    report = service.ingest(KNOWLEDGE)
    assert not report.errors, report.errors
    yield Knowledge(home, service, settings)
    service.close()


@pytest.fixture
def counting() -> CountingEmbedder:
    return CountingEmbedder(shared_embedder())


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A small knowledge folder: two policies (one in Vietnamese), a runbook, an HTML page."""
    (tmp_path / ".git").mkdir()  # a checkout: sources are relative to it, whatever subfolder is ingested
    root = tmp_path / "kb"
    (root / "policies").mkdir(parents=True)
    (root / "runbooks").mkdir()
    (root / "policies" / "returns.md").write_text(
        "---\ndoc_id: t-returns\ntitle: Returns\nlang: en\naudience: customer\n---\n# Returns\n\n"
        "## Window\n\nReturn items within 7 days of delivery.\n\n"
        "## Money back\n\nRefunds reach cards in 5-10 business days.\n"
    )
    (root / "policies" / "returns.vi.md").write_text(
        "---\ndoc_id: t-returns-vi\ntitle: Đổi trả\nlang: vi\naudience: customer\n---\n# Đổi trả\n\n"
        "## Thời hạn\n\nBạn có thể trả hàng trong vòng 7 ngày sau khi nhận hàng.\n\n"
        "## Hoàn tiền\n\nTiền hoàn về thẻ trong 5-10 ngày làm việc.\n"
    )
    (root / "runbooks" / "drift.md").write_text(
        "---\ndoc_id: t-drift\ntitle: Schema drift\naudience: internal\n---\n# Schema drift\n\n"
        "## Replay\n\nRun `shopops schemas replay --subject S` once the schema is accepted.\n"
    )
    (root / "runbooks" / "faq.html").write_text(
        "<html><head><title>Carrier FAQ</title></head><body><h1>Carrier FAQ</h1>"
        "<h2>Hub outage</h2><p>Call the carrier's operations desk when a hub is down.</p></body></html>"
    )
    (root / "notes.bin").write_bytes(b"\x00\x01 not a document")  # skipped: not a known type
    return root


@pytest.fixture
def small(tmp_path: Path, counting: CountingEmbedder) -> Iterator[RagService]:
    """A service on a fresh data directory (its own embedding cache) with a counting embedder."""
    service = build_rag_service(settings_for(tmp_path / "home"), embedder=counting)  # type: ignore[arg-type]
    yield service
    service.close()
