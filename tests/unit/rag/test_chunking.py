"""Documents into chunks: front-matter, heading paths, cutting with overlap, HTML and text, ids."""

from __future__ import annotations

import itertools

import pytest

from shopops.core.errors import InvalidInputError
from shopops.rag.chunking import (
    chunk_document,
    html_sections,
    kind_of,
    markdown_sections,
    parse_document,
    split_front_matter,
    split_text,
)

DOC = """---
doc_id: policy-test
title: Test policy
lang: en
audience: customer
region: vn
---
# Test policy

Intro paragraph.

## Returns

You can return items within 7 days.

```bash
# not a heading: inside a fence
shopops rag search "returns"
```

### Exceptions

Food cannot be returned.

## Refunds

Refunds take 5-10 business days.
"""


def test_kind_of() -> None:
    assert kind_of("a/b.md") == "markdown"
    assert kind_of("x.HTML") == "html"
    assert kind_of("notes.txt") == "text"
    assert kind_of("image.png") is None


def test_front_matter_and_heading_paths() -> None:
    meta, sections = parse_document("docs/knowledge/policies/test.md", DOC, "markdown")
    assert (meta.doc_id, meta.title, meta.lang, meta.audience, meta.region) == (
        "policy-test",
        "Test policy",
        "en",
        "customer",
        "vn",
    )
    paths = [s.heading_path for s in sections]
    assert paths == [
        ("Test policy",),
        ("Test policy", "Returns"),
        ("Test policy", "Returns", "Exceptions"),
        ("Test policy", "Refunds"),
    ]
    assert "# not a heading" in sections[1].text


def test_defaults_without_front_matter() -> None:
    meta, _ = parse_document(
        "docs/kb/Hoàn tiền.md", "# Hoàn tiền\n\nTiền được hoàn trong 5 ngày.", "markdown"
    )
    assert meta.title == "Hoàn tiền"
    assert meta.lang == "vi"
    assert meta.audience == "internal"
    assert meta.doc_id == "docs-kb-ho-n-ti-n" or meta.doc_id.startswith("docs-kb-")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("---\ntitle: [unclosed\n---\nbody", "not valid YAML"),
        ("---\n- a list\n---\nbody", "must be a mapping"),
        ("---\ntitle: x\nbody without end", "not closed"),
        ("---\naudience: everyone\n---\nbody", "unknown audience"),
        ("---\nlang: english\n---\nbody", "two-letter"),
        ("---\nregion: mars\n---\nbody", "unknown region"),
        ("---\ndoc_id: Not Valid!\n---\nbody", "not a valid id"),
    ],
)
def test_bad_front_matter_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_document("x.md", text, "markdown")


def test_front_matter_absent_when_not_at_the_top() -> None:
    front, body = split_front_matter("text\n---\ntitle: x\n---\n")
    assert front == {}
    assert body.startswith("text")


def test_split_text_respects_size_and_overlaps() -> None:
    sentences = [f"Sentence number {i} talks about refunds and returns." for i in range(40)]
    pieces = split_text(" ".join(sentences), size=300, overlap=60)
    assert len(pieces) > 3
    assert all(len(p) <= 300 + 60 for p in pieces)
    for before, after in itertools.pairwise(pieces):
        assert after[:20] in before  # each piece starts with the end of the previous one
    assert "Sentence number 39" in pieces[-1]


def test_a_cut_table_repeats_its_header() -> None:
    rows = "\n".join(f"| carrier {i} | {i} days |" for i in range(60))
    table = f"| carrier | days |\n| --- | --- |\n{rows}"
    pieces = split_text(table, size=400, overlap=50)
    assert len(pieces) > 1
    assert all(p.startswith("| carrier | days |\n| --- | --- |") for p in pieces)


def test_a_long_word_is_hard_cut() -> None:
    pieces = split_text("x" * 1000, size=300, overlap=0)
    assert [len(p) for p in pieces] == [300, 300, 300, 100]


def test_html_sections_meta_and_skipped_parts() -> None:
    page = """<html lang="vi"><head><title>Mẫu trả lời</title>
    <meta name="doc_id" content="html-doc"><meta name="audience" content="customer">
    <script>var x = "# not text";</script></head><body><nav>menu</nav>
    <h1>Mẫu trả lời</h1><p>Giới thiệu.</p><h2>Hoàn tiền</h2><p>Tiền về trong <b>5</b> ngày.</p>
    <ul><li>thẻ</li><li>ví</li></ul></body></html>"""
    sections, title, front = html_sections(page)
    assert title == "Mẫu trả lời"
    assert front == {"lang": "vi", "doc_id": "html-doc", "audience": "customer"}
    assert [s.heading_path for s in sections] == [("Mẫu trả lời",), ("Mẫu trả lời", "Hoàn tiền")]
    assert "Tiền về trong 5 ngày." in sections[1].text
    assert "- thẻ" in sections[1].text
    assert all("menu" not in s.text and "var x" not in s.text for s in sections)
    meta, _ = parse_document("page.html", page, "html")
    assert (meta.doc_id, meta.lang, meta.audience) == ("html-doc", "vi", "customer")


def test_plain_text_with_front_matter() -> None:
    meta, chunks = chunk_document(
        "notes.txt",
        "---\ntitle: Notes\n---\nOne line.\n\nAnother.",
        "text",
        size=1000,
        overlap=100,
        model="m",
    )
    assert meta.title == "Notes"
    assert [c.heading_path for c in chunks] == [()]


def test_chunk_ids_follow_content_and_context() -> None:
    _, first = chunk_document("a.md", DOC, "markdown", size=1000, overlap=100, model="m")
    _, again = chunk_document("a.md", DOC, "markdown", size=1000, overlap=100, model="m")
    assert [c.chunk_id for c in first] == [c.chunk_id for c in again]
    _, edited = chunk_document(
        "a.md", DOC.replace("5-10 business days", "3 days"), "markdown", size=1000, overlap=100, model="m"
    )
    changed = {c.chunk_id for c in edited} ^ {c.chunk_id for c in first}
    assert len(changed) == 2  # only the Refunds chunk, old and new
    _, moved = chunk_document("b.md", DOC, "markdown", size=1000, overlap=100, model="m")
    assert not {c.chunk_id for c in moved} & {c.chunk_id for c in first}
    _, other_model = chunk_document("a.md", DOC, "markdown", size=1000, overlap=100, model="other")
    assert not {c.chunk_id for c in other_model} & {c.chunk_id for c in first}


def test_identical_pieces_of_one_file_get_distinct_ids() -> None:
    text = "# T\n\n## A\n\nSame text.\n\n## A\n\nSame text.\n"
    _, chunks = chunk_document("d.md", text, "markdown", size=1000, overlap=0, model="m")
    assert len(chunks) == 2
    assert chunks[0].chunk_id != chunks[1].chunk_id


def test_embedding_text_carries_title_and_headings() -> None:
    _, chunks = chunk_document("a.md", DOC, "markdown", size=1000, overlap=100, model="m")
    refunds = next(c for c in chunks if c.heading_path[-1] == "Refunds")
    assert refunds.embedding_text().startswith("Test policy > Refunds\n")
    sections, first_h1 = markdown_sections("no heading here")
    assert first_h1 is None
    assert sections[0].heading_path == ()
