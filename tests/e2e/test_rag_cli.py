"""`shopops rag` end to end: ingest (incrementally), search with citations, stats; bad input exits
non-zero with the reason; a second process on a local store is told what to do."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from tests.e2e.helpers import run_cli

#: Vectors computed by earlier runs are reused (the same cache as tests/integration/rag).
CACHE = {
    "SHOPOPS_RAG__EMBEDDING_CACHE": str(
        Path(tempfile.gettempdir()) / "shopops-test-cache" / "rag-embeddings.db"
    )
}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "kb"
    root.mkdir()
    (root / "returns.md").write_text(
        "---\ndoc_id: e2e-returns\ntitle: Returns\nlang: en\naudience: customer\n---\n# Returns\n\n"
        "## Window\n\nReturn items within 14 days of delivery in Singapore.\n"
    )
    (root / "returns.vi.md").write_text(
        "---\ndoc_id: e2e-returns-vi\ntitle: Đổi trả\nlang: vi\naudience: customer\n---\n# Đổi trả\n\n"
        "## Thời hạn\n\nBạn có thể trả hàng trong vòng 14 ngày sau khi nhận hàng tại Singapore.\n"
    )
    return root


def _json(stdout: str) -> object:
    return json.loads(stdout[min(i for i in (stdout.find("{"), stdout.find("[")) if i >= 0) :])


def test_ingest_search_stats(tmp_path: Path, corpus: Path) -> None:
    home = tmp_path / "data"
    first = run_cli(home, "rag", "ingest", str(corpus), "--json", **CACHE, timeout=300)
    assert first.returncode == 0, first.stderr
    report = _json(first.stdout)
    assert isinstance(report, dict)
    assert report["added"] == 2
    assert report["files_seen"] == 2

    table = run_cli(home, "rag", "search", "thoi han tra hang o singapore", "-k", "2", **CACHE, timeout=300)
    assert table.returncode == 0, table.stderr
    first_row = table.stdout[table.stdout.index("│ 1 ") :].split("\n")[0]
    assert "kb/returns.vi.md" in first_row
    assert "Đổi trả > Thời hạn" in first_row
    assert "kb/returns.md" in table.stdout

    again = run_cli(home, "rag", "ingest", str(corpus), "--json", **CACHE, timeout=300)
    assert again.returncode == 0, again.stderr
    second = _json(again.stdout)
    assert isinstance(second, dict)
    assert second["embedded"] == 0
    assert second["unchanged"] == 2

    stats = run_cli(home, "rag", "stats", "--json", timeout=300)
    assert stats.returncode == 0, stats.stderr
    info = _json(stats.stdout)
    assert isinstance(info, dict)
    assert (info["points"], info["files"]) == (2, 2)


def test_bad_input_exits_with_the_reason(tmp_path: Path, corpus: Path) -> None:
    home = tmp_path / "data"
    empty = run_cli(home, "rag", "search", "   ")
    assert empty.returncode == 2
    assert "the question is empty" in empty.stderr
    too_many = run_cli(home, "rag", "search", "refund", "-k", "0")
    assert too_many.returncode == 2
    assert "k must be between 1 and 50" in too_many.stderr
    missing = run_cli(home, "rag", "ingest", str(tmp_path / "nowhere"))
    assert missing.returncode == 3
    assert "does not exist" in missing.stderr
    (corpus / "broken.md").write_text("---\naudience: everyone\n---\n# Broken\n")
    partial = run_cli(home, "rag", "ingest", str(corpus), **CACHE, timeout=300)
    assert partial.returncode == 1
    assert "unknown audience" in partial.stderr


def test_local_store_held_by_another_process(tmp_path: Path) -> None:
    home = tmp_path / "data"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import time
                from pathlib import Path
                from shopops.rag.backends.qdrant import QdrantStore
                store = QdrantStore(collection="shopops_knowledge", dimensions=384,
                                    path=Path({str(home / "rag" / "qdrant")!r}))
                store.ensure_collection()
                print("ready", flush=True)
                time.sleep(120)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        done = run_cli(home, "rag", "stats")
        assert done.returncode == 69
        assert "open in another process" in done.stderr
        assert "rag.qdrant_url" in done.stderr
    finally:
        holder.kill()
        holder.wait(10)
