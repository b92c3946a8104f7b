"""Incremental ingestion: new, changed and deleted files; nothing re-embedded twice; bad files."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from tests.integration.rag.conftest import CountingEmbedder, settings_for

from shopops.core.errors import InvalidInputError, NotFoundError
from shopops.rag.model import IngestReport
from shopops.rag.service import RagService, build_rag_service


def _store_ids(service: RagService) -> set[str]:
    return service.store.ids()


def test_ingest_then_unchanged_run_embeds_nothing(
    small: RagService, corpus: Path, counting: CountingEmbedder
) -> None:
    first = small.ingest(corpus)
    assert first.files_seen == 4
    assert first.added == first.embedded == first.encoded > 0
    assert not first.errors
    assert first.files_changed == 4
    stats = small.stats()
    assert stats.points == stats.chunks == first.added
    assert stats.by_lang == {"en": stats.by_lang["en"], "vi": stats.by_lang["vi"]}
    assert stats.by_audience["customer"] > 0

    encoded = counting.encoded
    second = small.ingest(corpus)
    assert second.embedded == 0
    assert second.unchanged == first.added
    assert second.files_unchanged == 4
    assert counting.encoded == encoded  # the model was not asked for anything


def test_changed_file_reembeds_only_its_changed_chunks(
    small: RagService, corpus: Path, counting: CountingEmbedder
) -> None:
    small.ingest(corpus)
    before = _store_ids(small)
    path = corpus / "policies" / "returns.md"
    path.write_text(path.read_text().replace("5-10 business days", "3-5 business days"))
    encoded = counting.encoded
    report = small.ingest(corpus)
    assert (report.added, report.changed, report.removed) == (0, 1, 1)
    assert report.files_changed == 1
    assert counting.encoded == encoded + 1
    after = _store_ids(small)
    assert len(after) == len(before)
    assert len(after - before) == 1
    hit = small.search("how long until the refund reaches my card", 1, mode="sparse")[0]
    assert "3-5 business days" in hit.text
    assert hit.source.endswith("kb/policies/returns.md")
    assert hit.heading_path == ("Returns", "Money back")


def test_deleted_file_loses_its_points(small: RagService, corpus: Path) -> None:
    small.ingest(corpus)
    (corpus / "runbooks" / "drift.md").unlink()
    report = small.ingest(corpus)
    assert report.files_removed == 1
    assert report.removed == 1
    assert all("drift" not in p.source for p in small.search("schemas replay subject", 5))
    assert small.stats().points == small.stats().chunks


def test_ingesting_a_subfolder_leaves_other_files_alone(small: RagService, corpus: Path) -> None:
    small.ingest(corpus)
    points = small.stats().points
    report = small.ingest(corpus / "runbooks")
    assert report.files_seen == 2
    assert report.files_removed == 0
    assert small.stats().points == points


def test_a_bad_file_is_reported_and_keeps_its_previous_chunks(small: RagService, corpus: Path) -> None:
    small.ingest(corpus)
    bad = corpus / "policies" / "returns.md"
    bad.write_text("---\naudience: everyone\n---\n# Returns\n")
    (corpus / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    report = small.ingest(corpus)
    assert set(report.errors) == {corpus.name + "/policies/returns.md", corpus.name + "/latin1.txt"}
    assert "unknown audience" in report.errors[corpus.name + "/policies/returns.md"]
    assert "not UTF-8" in report.errors[corpus.name + "/latin1.txt"]
    assert report.removed == 0
    assert any(p.source.endswith("policies/returns.md") for p in small.search("return window days", 5))


def test_rebuild_takes_vectors_from_the_cache(
    small: RagService, corpus: Path, counting: CountingEmbedder
) -> None:
    first = small.ingest(corpus)
    encoded = counting.encoded
    report = small.ingest(corpus, rebuild=True)
    assert report.rebuilt
    assert report.added == first.added
    assert report.cache_hits == first.added
    assert counting.encoded == encoded
    assert small.stats().points == first.added


def test_store_emptied_behind_its_back_is_refilled(small: RagService, corpus: Path) -> None:
    first = small.ingest(corpus)
    some = sorted(small.store.ids())[:2]
    small.store.delete_ids(some)
    report = small.ingest(corpus)
    assert report.embedded == 2
    assert small.store.ids() >= set(some)
    assert small.stats().points == first.added


def test_bad_paths(small: RagService, corpus: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        small.ingest(corpus / "missing")
    with pytest.raises(InvalidInputError, match="not a document"):
        small.ingest(corpus / "notes.bin")


def test_search_filters_and_modes(small: RagService, corpus: Path) -> None:
    small.ingest(corpus)
    vi = small.search("trả hàng trong bao nhiêu ngày", 3)
    assert vi[0].source.endswith("returns.vi.md")
    assert vi[0].lang == "vi"
    assert {p.lang for p in small.search("refund", 5, lang="vi")} == {"vi"}
    assert {p.audience for p in small.search("refund", 5, audience="internal")} <= {"internal"}
    html = small.search("hub outage operations desk", 1)[0]
    assert html.source.endswith("faq.html")
    assert html.heading_path == ("Carrier FAQ", "Hub outage")
    assert html.title == "Carrier FAQ"
    with pytest.raises(InvalidInputError):
        small.search("refund", 5, mode="magic")
    assert len(small.embed(["refund policy", "hoàn tiền"])[0]) == 384
    with pytest.raises(InvalidInputError):
        small.embed("not a list")  # type: ignore[arg-type]


class GatedEmbedder(CountingEmbedder):
    """The real embedder, whose first call waits until the test lets it go."""

    def __init__(self, inner: CountingEmbedder) -> None:
        super().__init__(inner.inner)
        self.entered = threading.Event()
        self.release = threading.Event()

    def encode(self, texts: list[str], batch_size: int = 64) -> npt.NDArray[np.float32]:
        self.entered.set()
        assert self.release.wait(60)
        return super().encode(texts, batch_size)


def test_closing_stops_an_ingestion_between_slices_and_the_next_run_completes(
    tmp_path: Path, counting: CountingEmbedder
) -> None:
    (tmp_path / ".git").mkdir()
    corpus = tmp_path / "many"
    corpus.mkdir()
    for i in range(40):
        (corpus / f"note-{i:02d}.md").write_text(f"# Note {i}\n\nParcel {i} waits at hub {i * 7}.\n")
    gated = GatedEmbedder(counting)
    service = build_rag_service(settings_for(tmp_path / "home"), embedder=gated)  # type: ignore[arg-type]
    reports: list[IngestReport] = []
    worker = threading.Thread(target=lambda: reports.append(service.ingest(corpus)))
    worker.start()
    assert gated.entered.wait(120)
    closer = threading.Thread(target=service.close)
    closer.start()
    time.sleep(0.2)
    gated.release.set()
    worker.join(120)
    closer.join(120)
    assert reports
    assert reports[0].interrupted
    assert reports[0].embedded == 40  # planned, not all written
    assert gated.encoded < 40

    again = build_rag_service(settings_for(tmp_path / "home"), embedder=counting)  # type: ignore[arg-type]
    try:
        report = again.ingest(corpus)
        assert report.files_seen == 40
        assert again.stats().points == again.stats().chunks == 40
        assert again.store.count() == 40
    finally:
        again.close()
