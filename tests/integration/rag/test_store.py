"""The Qdrant store: the in-memory sparse index agrees with Qdrant's own sparse search; a server
that cannot be reached is a clear error; one local folder, one process."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.integration.rag.conftest import REPO, Knowledge

from shopops.core.errors import BackendUnavailableError, ConfigError
from shopops.rag.backends.qdrant import QdrantStore
from shopops.rag.evaluation import load_golden
from shopops.rag.text import query_vector

# The unreachable-server test: the client warns (later, when collected) that it cannot check the
# server's version; the test is about the error it raises.
pytestmark = pytest.mark.filterwarnings("ignore:Failed to obtain server version")


def test_index_ranks_exactly_like_qdrant_local_sparse_search(knowledge: Knowledge) -> None:
    path = knowledge.home / "rag" / "qdrant"
    collection = knowledge.settings.rag.collection
    native = QdrantStore(collection=collection, dimensions=384, path=path, lexical="qdrant")
    indexed = QdrantStore(collection=collection, dimensions=384, path=path, lexical="index")
    try:
        native.ensure_collection()
        indexed.ensure_collection()
        _, questions = load_golden(REPO / "tests" / "golden" / "rag.yaml")
        for q in questions:
            sparse = query_vector(q.question)
            ours = indexed.query(dense=None, sparse=sparse, limit=10, prefetch_limit=10)
            theirs = native.query(dense=None, sparse=sparse, limit=10, prefetch_limit=10)
            assert len(ours) == len(theirs), q.id
            for a, b in zip(ours, theirs, strict=True):
                assert math.isclose(a.score, b.score, rel_tol=1e-5), q.id
            # Ties may be ordered differently; above the last score the sets must agree.
            if ours:
                last = ours[-1].score
                assert {h.payload["chunk_id"] for h in ours if h.score > last * (1 + 1e-5)} == {
                    h.payload["chunk_id"] for h in theirs if h.score > last * (1 + 1e-5)
                }, q.id
            for lang in ("en", "vi"):
                filtered = indexed.query(
                    dense=None, sparse=sparse, limit=5, prefetch_limit=5, filters={"lang": lang}
                )
                assert all(h.payload["lang"] == lang for h in filtered)
    finally:
        native.close()
        indexed.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_unreachable_server_is_backend_unavailable() -> None:
    store = QdrantStore(collection="c", dimensions=384, url=f"http://127.0.0.1:{_free_port()}", timeout_s=2)
    try:
        with pytest.raises(BackendUnavailableError, match="failed to open the collection") as err:
            store.ensure_collection()
        assert err.value.hint is not None
        assert "rag.qdrant_url" in err.value.hint
    finally:
        store.close()


def test_store_needs_a_path_or_a_url() -> None:
    with pytest.raises(ConfigError):
        QdrantStore(collection="c", dimensions=384)


def test_a_second_process_on_the_same_folder_is_told_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "qdrant"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from pathlib import Path
                from shopops.rag.backends.qdrant import QdrantStore
                store = QdrantStore(collection="c", dimensions=384, path=Path({str(path)!r}))
                store.ensure_collection()
                print("ready", flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(BackendUnavailableError, match="open in another process") as err:
            QdrantStore(collection="c", dimensions=384, path=path)
        assert "POST /v1/rag/search" in (err.value.hint or "")
    finally:
        holder.kill()
        holder.wait(10)
