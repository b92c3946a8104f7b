"""A process killed in the middle of an ingestion loses nothing and duplicates nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.integration.rag.conftest import KNOWLEDGE, SHARED_CACHE, Knowledge, settings_for

from shopops.rag.chunking import chunk_document, kind_of
from shopops.rag.service import build_rag_service, discover
from shopops.rag.text import TOKENIZER_VERSION

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from shopops.core.settings import Settings
    from shopops.rag.service import build_rag_service

    home, corpus, cache = (Path(a) for a in sys.argv[1:4])
    service = build_rag_service(Settings(home=home, rag={"embedding_cache": str(cache), "embed_batch": 8}))
    service.write_batch = 16  # files are confirmed a few at a time: the kill lands between two groups

    def progress(done, total):
        if done >= 100:
            os.kill(os.getpid(), signal.SIGKILL)

    service.ingest(corpus, progress=progress)
    """
)


def test_kill_mid_ingestion_then_rerun(tmp_path: Path, knowledge: Knowledge) -> None:
    # The session fixture filled the shared embedding cache with the knowledge base's vectors, so
    # the child needs no model: it is killed in the middle of writing points, not of loading torch.
    assert knowledge.service.stats().points > 100
    (tmp_path / ".git").mkdir()
    corpus = tmp_path / "kb"
    shutil.copytree(KNOWLEDGE, corpus)
    home = tmp_path / "home"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(home), str(corpus), str(SHARED_CACHE)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == -9, child.stderr

    service = build_rag_service(settings_for(home, embedding_cache=str(SHARED_CACHE), embed_batch=8))
    try:
        before = service.store.ids()
        committed = service.stats().chunks
        assert 0 < committed < len(before) or committed < 100 <= len(before)  # killed mid-way
        report = service.ingest(corpus)
        assert not report.errors
        assert report.files_unchanged > 0  # files confirmed before the kill are not redone
        expected: set[str] = set()
        for file in discover(corpus):
            kind = kind_of(file.name)
            assert kind is not None
            _, chunks = chunk_document(
                file.relative_to(tmp_path).as_posix(),
                file.read_text(encoding="utf-8"),
                kind,
                size=service.chunk_size,
                overlap=service.chunk_overlap,
                model=f"{service.embedder.model_name}|{TOKENIZER_VERSION}",
            )
            expected |= {c.chunk_id for c in chunks}
        assert service.store.ids() == expected
        assert service.store.count() == len(expected) == service.stats().chunks
        again = service.ingest(corpus)
        assert again.embedded == 0
    finally:
        service.close()
