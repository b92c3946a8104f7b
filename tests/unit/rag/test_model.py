"""Search arguments, passages and ingestion reports."""

from __future__ import annotations

import pytest

from shopops.core.errors import InvalidInputError
from shopops.rag.model import IngestReport, Passage, check_query, passage_from_payload


@pytest.mark.parametrize(
    ("query", "k", "lang", "audience", "message"),
    [
        ("   ", 5, None, None, "empty"),
        ("x" * 2001, 5, None, None, "characters long"),
        ("refunds", 0, None, None, "between 1 and 50"),
        ("refunds", 51, None, None, "between 1 and 50"),
        ("refunds", 5, "english", None, "two-letter"),
        ("refunds", 5, None, "everyone", "unknown audience"),
    ],
)
def test_bad_search_arguments(
    query: str, k: int, lang: str | None, audience: str | None, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        check_query(query, k, lang, audience)


def test_valid_query_is_stripped() -> None:
    assert check_query("  refunds  ", 5, "vi", "customer") == "refunds"


def test_passage_citation_and_dict() -> None:
    passage = passage_from_payload(
        {
            "chunk_id": "c1",
            "text": "Refunds take 5-10 days.",
            "source": "docs/knowledge/policies/refunds-and-returns.md",
            "heading_path": ["Refunds and returns", "When"],
            "lang": "en",
            "doc_id": "policy-refunds-and-returns",
            "title": "Refunds and returns",
            "audience": "customer",
            "region": "all",
        },
        0.5,
    )
    assert isinstance(passage, Passage)
    assert passage.citation == "docs/knowledge/policies/refunds-and-returns.md > Refunds and returns > When"
    body = passage.to_dict()
    assert body["heading_path"] == ["Refunds and returns", "When"]
    assert body["citation"] == passage.citation


def test_ingest_report_counts() -> None:
    report = IngestReport(path="/kb", added=3, changed=2, removed=1, unchanged=10, seconds=2.0)
    assert report.embedded == 5
    assert report.chunks_per_s == 2.5
    assert report.to_dict()["embedded"] == 5
