"""Documents into chunks: front-matter, headings kept as a path, sections cut to size with overlap.

Pure: text in, chunks out. Markdown is split at its ATX headings (``#`` … ``######``, never inside
a fenced code block); HTML at ``<h1>``…``<h6>`` (stdlib parser; scripts, styles and navigation
skipped); plain text is one section. A section longer than the chunk size is cut at paragraph
boundaries, then sentences, then words, and each piece after the first starts with the end of the
previous one (the overlap), so a fact split across a boundary is still whole in one piece. A
Markdown table that must be cut repeats its header row in every piece.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Any

import yaml

from shopops.core.errors import InvalidInputError
from shopops.domain.regions import REGIONS
from shopops.rag.model import AUDIENCES, Chunk, DocumentMeta, Section, make_chunk
from shopops.rag.text import detect_lang

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
TEXT_SUFFIXES = frozenset({".txt", ".text"})
SUPPORTED_SUFFIXES = MARKDOWN_SUFFIXES | HTML_SUFFIXES | TEXT_SUFFIXES

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^[ \t]*(```|~~~)")
_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+")
_DOC_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


def kind_of(name: str) -> str | None:
    """``markdown``, ``html``, ``text``, or None for a file the knowledge base does not read."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    if suffix in HTML_SUFFIXES:
        return "html"
    if suffix in TEXT_SUFFIXES:
        return "text"
    return None


# --- front-matter -----------------------------------------------------------------------------------


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """``---`` YAML ``---`` at the very top → (mapping, rest). No front-matter → ({}, text)."""
    if not text.startswith("---"):
        return {}, text
    lines = text.split("\n")
    if lines[0].strip() != "---":
        return {}, text
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            block = "\n".join(lines[1:i])
            try:
                data = yaml.safe_load(block) if block.strip() else {}
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f" at line {mark.line + 2}" if mark is not None else ""
                raise InvalidInputError(
                    f"front-matter is not valid YAML{where}: {getattr(exc, 'problem', exc)}",
                    hint="fix the block between the two --- lines",
                ) from None
            if data is None:
                data = {}
            if not isinstance(data, dict):
                raise InvalidInputError(
                    "front-matter must be a mapping (key: value lines)", hint="e.g. 'title: Refunds'"
                )
            return data, "\n".join(lines[i + 1 :])
    raise InvalidInputError("front-matter is not closed", hint="end it with a line of three dashes (---)")


def document_meta(front: dict[str, Any], *, source: str, title: str | None, body: str) -> DocumentMeta:
    """Validate front-matter fields and fill in defaults (id from the path, title from the first
    heading, language detected from the text, audience ``internal``)."""
    doc_id = front.get("doc_id", front.get("id"))
    if doc_id is None:
        doc_id = re.sub(r"[^a-z0-9._-]+", "-", PurePosixPath(source).with_suffix("").as_posix().lower())
        doc_id = doc_id.strip("-.") or "document"
    doc_id = str(doc_id)
    if not _DOC_ID.match(doc_id):
        raise InvalidInputError(
            f"doc_id {doc_id!r} is not a valid id", hint="lower-case letters, digits, '.', '_' and '-'"
        )
    title_value = front.get("title") or title or PurePosixPath(source).stem.replace("-", " ").capitalize()
    lang = str(front.get("lang") or detect_lang(body))
    if len(lang) != 2 or not lang.isalpha() or not lang.islower():
        raise InvalidInputError(f"lang {lang!r} is not a two-letter language code", hint="use 'en' or 'vi'")
    audience = str(front.get("audience") or "internal")
    if audience not in AUDIENCES:
        raise InvalidInputError(f"unknown audience {audience!r}", hint=f"use one of: {', '.join(AUDIENCES)}")
    region = front.get("region")
    if region is not None:
        region = str(region).lower()
        if region != "all" and region not in REGIONS:
            raise InvalidInputError(
                f"unknown region {region!r}", hint=f"use 'all' or one of: {', '.join(REGIONS)}"
            )
    return DocumentMeta(
        doc_id=doc_id, title=str(title_value).strip(), lang=lang, audience=audience, region=region
    )


# --- sections ---------------------------------------------------------------------------------------


def markdown_sections(body: str) -> tuple[list[Section], str | None]:
    """Sections of a Markdown body and its first level-1 heading (the default title)."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    first_h1: str | None = None
    fence: str | None = None

    def flush() -> None:
        text = "\n".join(lines).strip()
        if text:
            sections.append(Section(tuple(h for _, h in path), text))
        lines.clear()

    for line in body.split("\n"):
        opened = _FENCE.match(line)
        if fence is not None:
            lines.append(line)
            if opened and opened.group(1) == fence:
                fence = None
            continue
        if opened:
            fence = opened.group(1)
            lines.append(line)
            continue
        match = _HEADING.match(line)
        if match is None:
            lines.append(line)
            continue
        flush()
        level, heading = len(match.group(1)), match.group(2).strip()
        if level == 1 and first_h1 is None:
            first_h1 = heading
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, heading))
    flush()
    return sections, first_h1


_HTML_META = frozenset({"doc_id", "title", "lang", "audience", "region"})


class _HtmlSections(HTMLParser):
    _SKIP = frozenset({"script", "style", "nav", "noscript", "template", "head"})
    _BLOCK = frozenset(
        {"p", "div", "br", "li", "ul", "ol", "table", "tr", "section", "article", "pre", "blockquote",
         "dd", "dt", "hr", "header", "footer", "main", "td", "th"}
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = []
        self.title: str | None = None
        self._path: list[tuple[int, str]] = []
        self._text: list[str] = []
        self._heading: tuple[int, list[str]] | None = None
        self._skip = 0
        self._in_title = False
        self._title_parts: list[str] = []
        self.front: dict[str, Any] = {}

    def _flush(self) -> None:
        text = re.sub(r"[ \t]+", " ", "".join(self._text))
        text = re.sub(r"\n\s*\n+", "\n\n", text).strip()
        if text:
            self.sections.append(Section(tuple(h for _, h in self._path), text))
        self._text.clear()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "meta" and values.get("name") in _HTML_META and values.get("content"):
            # <meta name="audience" content="customer"> plays the part of Markdown front-matter.
            self.front[str(values["name"])] = values["content"]
        elif tag == "html" and values.get("lang"):
            self.front.setdefault("lang", str(values["lang"]).split("-")[0].lower())
        if tag == "title":
            self._in_title = True
        elif tag in self._SKIP:
            self._skip += 1
        elif re.fullmatch(r"h[1-6]", tag) and self._skip == 0:
            self._flush()
            self._heading = (int(tag[1]), [])
        elif tag in self._BLOCK:
            self._text.append("\n\n" if tag in ("p", "div", "table", "section", "article") else "\n")
            if tag == "li":
                self._text.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
            self.title = " ".join("".join(self._title_parts).split()) or None
        elif tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif self._heading is not None and tag == f"h{self._heading[0]}":
            level, parts = self._heading
            heading = " ".join("".join(parts).split())
            self._heading = None
            if heading:
                while self._path and self._path[-1][0] >= level:
                    self._path.pop()
                self._path.append((level, heading))
        elif tag in ("td", "th"):
            self._text.append(" | ")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_parts.append(data)
        elif self._skip:
            return
        elif self._heading is not None:
            self._heading[1].append(data)
        else:
            self._text.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def html_sections(body: str) -> tuple[list[Section], str | None, dict[str, Any]]:
    """Sections of an HTML page, its title (``<title>``, else the first ``<h1>``) and its metadata
    (``<meta name="doc_id|title|lang|audience|region" content=...>``, ``<html lang>``)."""
    parser = _HtmlSections()
    parser.feed(body)
    parser.close()
    title = parser.title
    if title is None:
        title = next((s.heading_path[0] for s in parser.sections if s.heading_path), None)
    return parser.sections, title, parser.front


# --- cutting to size --------------------------------------------------------------------------------


def _blocks(text: str) -> list[str]:
    """Paragraphs, keeping fenced code blocks and tables whole (they are cut separately)."""
    blocks: list[str] = []
    current: list[str] = []
    fence: str | None = None
    for line in text.split("\n"):
        opened = _FENCE.match(line)
        if fence is not None:
            current.append(line)
            if opened and opened.group(1) == fence:
                fence = None
            continue
        if opened:
            fence = opened.group(1)
            current.append(line)
            continue
        if not line.strip():
            if current:
                blocks.append("\n".join(current))
                current = []
            continue
        current.append(line)
    if current:
        blocks.append("\n".join(current))
    return blocks


def _is_table(block: str) -> bool:
    rows = block.split("\n")
    return len(rows) >= 3 and all(r.lstrip().startswith("|") for r in rows)


def _words_to_size(text: str, size: int) -> list[str]:
    pieces: list[str] = []
    current = ""
    for word in text.split():
        while len(word) > size:  # a single token longer than a chunk (a URL, a hash): hard cut
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:size])
            word = word[size:]
        candidate = f"{current} {word}" if current else word
        if len(candidate) > size and current:
            pieces.append(current)
            current = word
        else:
            current = candidate
    if current:
        pieces.append(current)
    return pieces


def _units(block: str, size: int) -> list[str]:
    """A block as units no longer than ``size``: itself, its table rows (header repeated), its
    lines (code), its sentences, or its words."""
    if len(block) <= size:
        return [block]
    if _is_table(block):
        rows = block.split("\n")
        header, body = "\n".join(rows[:2]), rows[2:]
        units: list[str] = []
        current = header
        for row in body:
            if len(current) + 1 + len(row) > size and current != header:
                units.append(current)
                current = header
            current = f"{current}\n{row}"
        units.append(current)
        return [u for unit in units for u in ([unit] if len(unit) <= size else _words_to_size(unit, size))]
    if _FENCE.match(block):
        out: list[str] = []
        current = ""
        for line in block.split("\n"):
            candidate = f"{current}\n{line}" if current else line
            if len(candidate) > size and current:
                out.append(current)
                current = line
            else:
                current = candidate
        out.append(current)
        return [u for unit in out for u in ([unit] if len(unit) <= size else _words_to_size(unit, size))]
    sentences = [s for s in _SENTENCE_END.split(block) if s.strip()]
    if len(sentences) > 1:
        return [u for s in sentences for u in ([s] if len(s) <= size else _words_to_size(s, size))]
    return _words_to_size(block, size)


def _tail(text: str, overlap: int) -> str:
    """The last ``overlap`` characters of ``text``, starting at a word boundary."""
    if overlap <= 0 or len(text) <= overlap:
        return text if overlap > 0 else ""
    cut = text[-overlap:]
    space = cut.find(" ")
    return cut[space + 1 :] if 0 <= space < len(cut) - 1 else cut


def split_text(text: str, size: int, overlap: int) -> list[str]:
    """Cut ``text`` into pieces of at most about ``size`` characters; each piece after the first
    begins with up to ``overlap`` characters from the end of the previous one."""
    if size <= 0:
        raise InvalidInputError("chunk size must be positive", hint="set rag.chunk_size, e.g. 1000")
    text = text.strip()
    if len(text) <= size:
        return [text] if text else []
    units = [u for block in _blocks(text) for u in _units(block, size)]
    pieces: list[str] = []
    current = ""
    for unit in units:
        joiner = "\n\n" if "\n" in unit or "\n" in current or unit.lstrip().startswith("|") else " "
        candidate = f"{current}{joiner}{unit}" if current else unit
        if len(candidate) <= size or not current:
            current = candidate
            continue
        pieces.append(current)
        tail = "" if _is_table(unit) or _FENCE.match(unit) else _tail(current, overlap)
        current = f"{tail} {unit}" if tail and len(tail) + 1 + len(unit) <= size + overlap else unit
    if current:
        pieces.append(current)
    return pieces


# --- documents --------------------------------------------------------------------------------------


def parse_document(source: str, raw: str, kind: str) -> tuple[DocumentMeta, list[Section]]:
    """Front-matter (Markdown and text) and sections of one file's text."""
    if kind == "html":
        sections, title, front = html_sections(raw)
    else:
        front, body = split_front_matter(raw)
        if kind == "markdown":
            sections, title = markdown_sections(body)
        else:
            stripped = body.strip()
            sections, title = ([Section((), stripped)] if stripped else []), None
    text = "\n".join(s.text for s in sections)
    return document_meta(front, source=source, title=title, body=text), sections


def chunk_document(
    source: str, raw: str, kind: str, *, size: int, overlap: int, model: str
) -> tuple[DocumentMeta, list[Chunk]]:
    """The chunks of one file, each with its heading path and content-derived id."""
    meta, sections = parse_document(source, raw, kind)
    chunks: list[Chunk] = []
    seen: dict[tuple[tuple[str, ...], str], int] = {}
    for section in sections:
        for piece in split_text(section.text, size, overlap):
            key = (section.heading_path, piece)
            occurrence = seen.get(key, 0)
            seen[key] = occurrence + 1
            chunks.append(make_chunk(source, meta, section.heading_path, piece, occurrence, model))
    return meta, chunks
