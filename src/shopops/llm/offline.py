"""The built-in offline model: answers with no weights beyond the MiniLM embedder.

Given a conversation it either

1. **calls a tool** — when tools are offered and the last user message matches one (cosine
   similarity of the message to the tool's name and description, plus keyword cues: shared words,
   an id in the message of the kind a parameter takes, a question for a search tool) above
   ``tool_threshold``, or when ``tool_choice`` demands one. The arguments are read from the message
   per the tool's JSON-Schema parameters (:mod:`shopops.llm.extraction`). When a required
   argument is not in the message, it asks for it instead (unless a call is demanded); or
2. **answers from passages** — the results of the tools it called (the messages after the last user
   message), else context given in the conversation (a ``Context:`` block, as LangChain's and
   LlamaIndex's RAG prompts send), else the retriever's passages for the question (Vietnamese
   passages first for a Vietnamese question). The answer is extractive: the most relevant
   sentences, each cited ``[n]``, the sources listed at the end (path and heading). When nothing
   relevant is found it says it does not know.

Deterministic: no sampling; ties are broken by order. ``temperature``/``top_p``/``seed`` change
nothing.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson

from shopops.core.logging import get_logger
from shopops.llm.extraction import (
    FREE_TEXT_NAMES,
    content_words,
    detect_lang,
    entity_of,
    extract_arguments,
    find_ids,
    identifier_words,
    stem,
)
from shopops.llm.model import (
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    FunctionCall,
    NamedToolChoice,
    ResponseMessage,
    ToolCall,
    ToolDef,
    Usage,
    count_tokens,
    prompt_tokens,
)
from shopops.llm.port import Embedder, Retriever

log = get_logger(__name__)

MODEL_NAME = "shopops-offline"

#: Example ids shown when the model asks for a missing argument.
_ID_EXAMPLES = {
    "order": "vn-o-000000123",
    "payment": "vn-pay-000000123",
    "customer": "vn-c-0000123",
    "product": "vn-p-00042",
    "sku": "VN-SKU-00042",
    "warehouse": "vn-wh-01",
    "shipment": "vn-s-000000123",
}
_SEARCH_WORDS = frozenset(
    {
        "search",
        "doc",
        "docs",
        "documentation",
        "knowledge",
        "runbook",
        "faq",
        "guide",
        "help",
        "kb",
        "manual",
        "policy",
        "handbook",
        "article",
        "retrieve",
        "lookup",
    }
)
_QUESTION_START = re.compile(
    r"^\s*(how|what|why|when|where|which|who|can|could|should|is|are|do|does|explain|describe|làm sao|"
    r"làm thế nào|tại sao|vì sao|cái gì|là gì|thế nào|như thế nào|có thể)\b",
    re.I,
)
_LABEL = re.compile(r"(?im)^[ \t]*(question|query|context|answer|câu hỏi|ngữ cảnh|tài liệu)[ \t]*:[ \t]*")
_DASHES = re.compile(r"\n-{5,}\n(.*?)\n-{5,}", re.S)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-ZÀ-Ỹ0-9\"'(\[`*])")
_HEADING = re.compile(r"^#{1,6}\s")
_ITEM = re.compile(r"^\s*(?:[-*+]\s+|>\s*|\d+[.)]\s+)")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*)(\S(?:.*?\S)?)\1")


@dataclass(frozen=True)
class OfflineOptions:
    """Knobs of the offline model (the ``offline`` backend's options)."""

    #: A tool is called when its match score reaches this (under ``tool_choice`` auto).
    tool_threshold: float = 0.45
    #: Passages retrieved per question.
    k: int = 5
    #: Sentences in an answer at most.
    max_sentences: int = 4
    #: Below this relevance (0-1) a sentence does not answer the question.
    min_relevance: float = 0.35
    #: Retrieved passages the answer's sentences are chosen from (the best ones).
    answer_passages: int = 3


@dataclass(frozen=True)
class SimplePassage:
    """A passage built by the model itself (from a tool result or context in the conversation)."""

    chunk_id: str
    text: str
    source: str
    heading_path: tuple[str, ...] = ()
    score: float = 0.0
    lang: str = "en"
    doc_id: str = ""
    title: str = ""


@dataclass
class ToolMatch:
    tool: ToolDef
    score: float
    similarity: float
    cues: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Sentence:
    passage: int
    position: int
    text: str
    relevance: float = 0.0
    row: bool = False


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    na = math.sqrt(sum(x * x for x in a)) or 1.0
    nb = math.sqrt(sum(y * y for y in b)) or 1.0
    return dot / (na * nb)


class OfflineModel:
    """The offline chat model; ``embedder`` and ``retriever`` are providers, resolved on first use."""

    def __init__(
        self,
        *,
        embedder: Callable[[], Embedder | None] | None = None,
        retriever: Callable[[], Retriever | None] | None = None,
        options: OfflineOptions | None = None,
        today: Callable[[], date] = date.today,
    ) -> None:
        self._embedder = embedder or (lambda: None)
        self._retriever = retriever or (lambda: None)
        self.options = options or OfflineOptions()
        self.today = today

    # --- entry point ---------------------------------------------------------------------------

    def complete(self, request: ChatCompletionRequest, model: str = MODEL_NAME) -> ChatCompletion:
        """Answer ``request`` (one choice); the ``model`` name is echoed back."""
        conversation = _Conversation(request.messages)
        message = self._tool_message(request, conversation)
        if message is None:
            message = ResponseMessage(content=self._answer(request, conversation))
        finish = "tool_calls" if message.tool_calls else "stop"
        if message.content is not None:
            content, cut = _limit(message.content, request.stop_sequences, request.token_limit)
            message = message.model_copy(update={"content": content})
            finish = "length" if cut == "length" else finish
        completion_text = message.content or "".join(
            c.function.name + c.function.arguments for c in message.tool_calls or ()
        )
        prompt = prompt_tokens(request)
        completion = count_tokens(completion_text)
        return ChatCompletion(
            model=model,
            choices=[Choice(index=0, message=message, finish_reason=finish)],
            usage=Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion),
        )

    # --- tools ---------------------------------------------------------------------------------

    def _tool_message(self, request: ChatCompletionRequest, conv: _Conversation) -> ResponseMessage | None:
        tools = request.tools or []
        choice = request.tool_choice
        if not tools or choice == "none":
            return None
        question = conv.question
        if isinstance(choice, NamedToolChoice):
            tool = next(t for t in tools if t.function.name == choice.function.name)
            return self._call(tool, question, conv, forced=True)
        if conv.tool_results and choice != "required":
            return None  # the tools answered: compose the answer from their results
        ranked = self.rank_tools(question, tools)
        best = ranked[0]
        log.debug("tool match", tool=best.tool.function.name, score=round(best.score, 3), cues=best.cues)
        if choice == "required" or best.score >= self.options.tool_threshold:
            return self._call(best.tool, question, conv, forced=choice == "required")
        # A question no other tool matches goes to a search tool, when one is offered.
        search = next((m for m in ranked if "question" in m.cues), None)
        if search is not None:
            return self._call(search.tool, question, conv, forced=False)
        return None

    def rank_tools(self, question: str, tools: Sequence[ToolDef]) -> list[ToolMatch]:
        """Every tool with its match score for ``question``, best first (ties: the order given)."""
        found_ids = find_ids(question)
        q_ids = set(found_ids)
        bare = question
        for matches_ in found_ids.values():  # an id's letters ("vn", "o") are no words of the question
            for _, _, value in matches_:
                bare = re.sub(re.escape(value), " ", bare, flags=re.I)
        q_words = content_words(bare)
        interrogative = question.rstrip().endswith("?") or bool(_QUESTION_START.match(question))
        texts = [f"{' '.join(identifier_words(t.function.name))}: {t.function.description}" for t in tools]
        similarities = self._similarities(question, texts)
        lexical = self._embedder() is None
        matches = []
        for tool, sim in zip(tools, similarities, strict=True):
            fn = tool.function
            name_words = {stem(w) for w in identifier_words(fn.name)}
            desc_words = content_words(fn.description)
            if lexical and q_words:  # no embedder: the share of the question's words the tool names
                sim = 0.5 * len(q_words & (name_words | desc_words)) / len(q_words)
            properties = fn.parameters.get("properties") or {}
            required = set(fn.parameters.get("required") or [])
            entities = {
                n: entity_of(n, str(spec.get("description", "")) if isinstance(spec, Mapping) else "")
                for n, spec in properties.items()
            }
            cues: dict[str, float] = {}
            if name_words:
                cues["name"] = 0.25 * len(q_words & name_words) / len(name_words)
            if q_words:
                cues["description"] = 0.15 * min(1.0, len(q_words & desc_words) / min(len(q_words), 6))
            if q_ids & {e for n, e in entities.items() if n in required and e}:
                cues["id"] = 0.3
            elif q_ids & {e for e in entities.values() if e}:
                cues["id"] = 0.15
            elif any(e and n in required for n, e in entities.items()):
                cues["id"] = -0.1  # it needs an id the message does not carry
            free_text = any(n.lower() in FREE_TEXT_NAMES for n in properties)
            if interrogative and free_text and (name_words | desc_words) & _SEARCH_WORDS:
                cues["question"] = 0.2
            matches.append(ToolMatch(tool, sim + sum(cues.values()), sim, cues))
        order = {id(m): i for i, m in enumerate(matches)}
        return sorted(matches, key=lambda m: (-m.score, order[id(m)]))

    def _call(self, tool: ToolDef, question: str, conv: _Conversation, *, forced: bool) -> ResponseMessage:
        fn = tool.function
        extraction = extract_arguments(fn.parameters, question, today=self.today())
        if extraction.missing and not forced:
            return ResponseMessage(
                content=_ask_for(fn.name, fn.parameters, extraction.missing, detect_lang(question))
            )
        arguments = orjson.dumps(extraction.arguments).decode()
        digest = hashlib.sha256(
            orjson.dumps([conv.fingerprint, fn.name, arguments], option=orjson.OPT_SORT_KEYS)
        ).hexdigest()
        call = ToolCall(id=f"call_{digest[:24]}", function=FunctionCall(name=fn.name, arguments=arguments))
        return ResponseMessage(content=None, tool_calls=[call])

    # --- answers -------------------------------------------------------------------------------

    def _answer(self, request: ChatCompletionRequest, conv: _Conversation) -> str:
        question = conv.question
        lang = detect_lang(question)
        response_format = request.response_format or {}
        if response_format.get("type") == "json_schema":
            # Structured output: the schema filled from the question, as tool arguments are.
            schema = (response_format.get("json_schema") or {}).get("schema") or {}
            found = (
                extract_arguments(schema, question, today=self.today())
                if isinstance(schema, Mapping)
                else None
            )
            return orjson.dumps(found.arguments if found else {}).decode()
        if conv.tool_results:
            body = self._from_tool_results(question, conv.tool_passages(), lang)
        else:
            given = conv.context_passages()
            # Retrieved passages come best first: the answer is read from the first few (each of
            # their sentences is embedded, the costly step).
            passages = given or self._retrieve(question, lang, request)[: self.options.answer_passages]
            body = self._from_passages(question, passages, lang)
        if response_format.get("type") == "json_object":
            return orjson.dumps({"answer": body}).decode()
        return body

    def _retrieve(self, question: str, lang: str, request: ChatCompletionRequest) -> list[Any]:
        retriever = self._retriever()
        if retriever is None or not question.strip():
            return []
        audience = (request.metadata or {}).get("audience")
        k = self.options.k
        found: list[Any] = []
        if lang != "en":
            found = list(retriever.search(question, k, lang=lang, audience=audience))
        if not found:
            found = list(retriever.search(question, k, audience=audience))
        return found

    def _similarities(self, question: str, texts: Sequence[str]) -> list[float]:
        """Cosine similarities of ``question`` to ``texts`` (0 each without an embedder)."""
        embedder = self._embedder()
        if embedder is None or not texts:
            return [0.0] * len(texts)
        vectors = embedder.embed([question, *texts])
        return [_cosine(vectors[0], v) for v in vectors[1:]]

    def _relevance(self, question: str, sentences: list[str]) -> list[float]:
        """How well each sentence answers ``question``, 0-1: meaning (MiniLM) and shared words."""
        q_words = content_words(question)
        sims = self._similarities(question, sentences)
        embedded = self._embedder() is not None
        out = []
        for text, sim in zip(sentences, sims, strict=True):
            overlap = len(q_words & content_words(text)) / len(q_words) if q_words else 0.0
            # Without an embedder shared words are all there is; with one, meaning leads.
            out.append(0.75 * sim + 0.35 * overlap if embedded else overlap)
        return out

    def _from_passages(self, question: str, passages: Sequence[Any], lang: str) -> str:
        sentences = [
            _Sentence(i, j, piece.text, row=piece.row)
            for i, p in enumerate(passages)
            for j, piece in enumerate(split_pieces(p.text))
        ]
        if not sentences:
            return _dont_know(question, lang)
        scores = self._relevance(question, [s.text for s in sentences])
        scored = [
            _Sentence(s.passage, s.position, s.text, r, s.row) for s, r in zip(sentences, scores, strict=True)
        ]
        best = max(s.relevance for s in scored)
        if best < self.options.min_relevance:
            return _dont_know(question, lang)
        limit = self.options.max_sentences
        chosen: list[_Sentence] = []
        seen: set[str] = set()

        def take(s: _Sentence) -> None:
            if s.text.lower() not in seen and len(chosen) < limit:
                seen.add(s.text.lower())
                chosen.append(s)

        ranked = sorted(scored, key=lambda s: (-s.relevance, s.passage, s.position))
        for s in ranked:
            if s.relevance < max(self.options.min_relevance, best - 0.2):
                break
            take(s)
        # The sentences right after the best one usually carry on its answer (the next steps of a
        # runbook): keep them while they stay on the subject. Table rows stand alone.
        top = ranked[0]
        following = sorted(
            (s for s in scored if s.passage == top.passage and s.position > top.position),
            key=lambda s: s.position,
        )
        for s in following[: limit - 1] if not top.row else ():
            if s.row or s.relevance < self.options.min_relevance / 2:
                break
            take(s)
        # Read in document order within a passage, passages by their best sentence.
        rank: dict[int, int] = {}
        for s in chosen:
            rank.setdefault(s.passage, len(rank))
        chosen.sort(key=lambda s: (rank[s.passage], s.position))
        citations: dict[tuple[str, tuple[str, ...]], int] = {}
        parts = []
        for s in chosen:
            p = passages[s.passage]
            key = (p.source, tuple(p.heading_path))
            number = citations.setdefault(key, len(citations) + 1)
            parts.append(f"{_sentence_text(s.text)} [{number}]")
        sources = "\n".join(
            f"[{n}] {source}" + (f" — {' > '.join(heading)}" if heading else "")
            for (source, heading), n in citations.items()
        )
        label = "Nguồn" if lang == "vi" else "Sources"
        return " ".join(parts) + f"\n\n{label}:\n{sources}"

    def _from_tool_results(self, question: str, passages: Sequence[SimplePassage], lang: str) -> str:
        if all(p.title == "passage" for p in passages):  # a search tool returned passages: answer from them
            return self._from_passages(question, passages, lang)
        blocks = []
        for number, p in enumerate(passages, 1):
            lines = [line for line in p.text.splitlines() if line.strip()]
            if len(lines) > 12:
                scores = self._relevance(question, lines)
                keep = sorted(sorted(range(len(lines)), key=lambda i: (-scores[i], i))[:8])
                lines = [lines[i] for i in keep]
            intro = (
                f"Kết quả của {p.heading_path[0]} [{number}]:"
                if lang == "vi"
                else f"{p.heading_path[0]} returned [{number}]:"
            )
            blocks.append(intro + "\n" + "\n".join(f"- {line.strip()}" for line in lines))
        sources = "\n".join(f"[{n}] {p.source}" for n, p in enumerate(passages, 1))
        label = "Nguồn" if lang == "vi" else "Sources"
        return "\n\n".join(blocks) + f"\n\n{label}:\n{sources}"


# --- conversation ---------------------------------------------------------------------------------


class _Conversation:
    """The parts of a conversation the model reads."""

    def __init__(self, messages: Sequence[ChatMessage]) -> None:
        self.messages = list(messages)
        users = [i for i, m in enumerate(self.messages) if m.role == "user"]
        self.last_user = users[-1] if users else len(self.messages) - 1
        raw = self.messages[self.last_user].text if self.messages else ""
        self.question, self.inline_context = split_prompt(raw)
        after = self.messages[self.last_user + 1 :]
        self.tool_results = [m for m in after if m.role == "tool"]
        self._calls = {c.id: c for m in after if m.role == "assistant" for c in m.tool_calls or ()}
        self.fingerprint = hashlib.sha256(
            orjson.dumps([[m.role, m.text, m.tool_call_id] for m in self.messages])
        ).hexdigest()

    def tool_passages(self) -> list[SimplePassage]:
        out: list[SimplePassage] = []
        for message in self.tool_results:
            call = self._calls.get(message.tool_call_id or "")
            name = call.function.name if call else (message.name or "tool")
            args = _args_summary(call.function.arguments if call else "")
            label = f"{name}({args})"
            doc = _json(message.text)
            passages = _as_passages(doc)
            if passages:
                out.extend(passages)
                continue
            text = "\n".join(flatten(doc)) if doc is not None else message.text
            out.append(
                SimplePassage(message.tool_call_id or name, text, f"tool {label}", (label,), title="tool")
            )
        return out

    def context_passages(self) -> list[SimplePassage]:
        blocks = list(self.inline_context)
        for m in self.messages:
            if m.role in ("system", "developer"):
                blocks += split_prompt(m.text, context_only=True)[1]
        out: list[SimplePassage] = []
        for block in blocks:
            current: str | None = None  # a "file_path: ..." paragraph names the paragraphs after it
            for paragraph in re.split(r"\n\s*\n", block):
                text, source = _paragraph_source(paragraph.strip())
                if not text:
                    current = source or current
                    continue
                out.append(SimplePassage(f"context-{len(out)}", text, source or current or "context"))
        return out


def split_prompt(text: str, *, context_only: bool = False) -> tuple[str, list[str]]:
    """``(question, context blocks)`` of a RAG-style prompt; a plain message is all question.

    Understands labelled sections (``Question:``/``Query:``, ``Context:``, ``Answer:``, and their
    Vietnamese forms) and LlamaIndex's context between dashed lines.
    """
    contexts = [m.group(1).strip() for m in _DASHES.finditer("\n" + text + "\n")]
    labels = list(_LABEL.finditer(text))
    question = ""
    for i, match in enumerate(labels):
        end = labels[i + 1].start() if i + 1 < len(labels) else len(text)
        body = text[match.end() : end].strip()
        label = match.group(1).lower()
        if label in ("context", "ngữ cảnh", "tài liệu") and body:
            if not any(body in c or c in body for c in contexts):
                contexts.append(body)
        elif label in ("question", "query", "câu hỏi") and body and not question:
            question = body
    if context_only:
        return "", contexts
    if not question:
        question = text
        for block in contexts:
            question = question.replace(block, " ")
        question = _DASHES.sub("\n", "\n" + question + "\n")
        question = re.sub(r"\s+", " ", question).strip() if contexts else text.strip()
    return question, contexts


@dataclass(frozen=True)
class Piece:
    """A sentence of a passage; ``row`` when it was a table row."""

    text: str
    row: bool = False


def split_sentences(text: str) -> list[str]:
    """Sentences, list items and table rows (``header: value; ...``) of a passage."""
    return [p.text for p in split_pieces(text)]


def split_pieces(text: str) -> list[Piece]:
    """A passage cut into what an answer can quote.

    Lines wrapped inside a paragraph are joined first (documents are hard-wrapped); headings, code
    blocks, link targets and emphasis markers are dropped; a passage cut mid-sentence (a chunk's
    overlap) loses its leading fragment; fragments of fewer than three words are skipped.
    """
    out: list[Piece] = []
    blocks: list[tuple[str, Any]] = []  # ("prose" | "item", lines) or ("table", rows)
    in_code = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        kind = "table" if stripped.startswith("|") and stripped.endswith("|") else "prose"
        if kind == "table":
            cells = [_inline(c.strip()) for c in stripped[1:-1].split("|")]
            if all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
                continue
            if blocks and blocks[-1][0] == "table":
                blocks[-1][1].append(cells)
            else:
                blocks.append(("table", [cells]))
            continue
        if not stripped or _HEADING.match(stripped) or _ITEM.match(stripped):
            # a new paragraph, heading or list item starts here
            blocks.append(("item" if _ITEM.match(stripped) else "prose", []))
            if not stripped or _HEADING.match(stripped):
                continue
        elif not blocks or blocks[-1][0] == "table":
            blocks.append(("prose", []))
        blocks[-1][1].append(stripped)
    first = True
    for kind, body in blocks:
        if kind == "table":
            header = body[0]
            for row in body[1:]:
                cells = [f"{h}: {v}" if h else v for h, v in zip(header, row, strict=False) if v]
                if cells:
                    out.append(Piece("; ".join(cells) + ".", row=True))
            first = False
            continue
        paragraph = _inline(_ITEM.sub("", " ".join(body)))
        if not paragraph:
            continue
        sentences = _SENTENCE_END.split(paragraph)
        if first and kind == "prose" and sentences and sentences[0][:1].islower():
            sentences = sentences[1:]  # the passage starts mid-sentence
        first = False
        out.extend(Piece(t.strip()) for t in sentences if len(t.split()) >= 3)
    return out


def _inline(text: str) -> str:
    text = _LINK.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\2", text)
    return re.sub(r"\s+", " ", text).strip()


def flatten(node: Any, prefix: str = "", depth: int = 0) -> list[str]:
    """JSON as ``key: value`` lines (nested keys dotted, list items numbered)."""
    if isinstance(node, dict):
        lines: list[str] = []
        for key, value in node.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict | list) and value and depth < 3:
                lines += flatten(value, name, depth + 1)
            else:
                lines.append(f"{name}: {_scalar(value)}")
        return lines
    if isinstance(node, list):
        if all(not isinstance(v, dict | list) for v in node):
            return [f"{prefix or 'items'}: {', '.join(_scalar(v) for v in node)}"]
        lines = []
        for i, value in enumerate(node[:20], 1):
            lines += flatten(value, f"{prefix}[{i}]" if prefix else f"[{i}]", depth + 1)
        if len(node) > 20:
            lines.append(f"{prefix or 'items'}: {len(node) - 20} more")
        return lines
    return [f"{prefix or 'value'}: {_scalar(node)}"]


def _scalar(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def _json(text: str) -> Any:
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        return orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return None


def _as_passages(doc: Any) -> list[SimplePassage]:
    """A search tool's result — a list of ``{text, source, heading_path...}`` — as passages."""
    items = doc.get("passages") or doc.get("results") if isinstance(doc, dict) else doc
    if (
        not isinstance(items, list)
        or not items
        or not all(isinstance(i, dict) and "text" in i for i in items)
    ):
        return []
    out: list[SimplePassage] = []
    for n, item in enumerate(items):
        heading = item.get("heading_path") or item.get("heading") or ()
        heading = (heading,) if isinstance(heading, str) else tuple(str(h) for h in heading)
        out.append(
            SimplePassage(
                str(item.get("chunk_id", n)),
                str(item["text"]),
                str(item.get("source") or item.get("doc_id") or "search result"),
                heading,
                float(item.get("score") or 0.0),
                str(item.get("lang") or "en"),
                title="passage",
            )
        )
    return out


def _args_summary(arguments: str) -> str:
    args = _json(arguments)
    if not isinstance(args, dict):
        return ""
    return ", ".join(f"{k}={_scalar(v)}" for k, v in args.items())


_SOURCE_LINE = re.compile(r"^(?:file_path|source|path|file)\s*:\s*(\S.*)$", re.I | re.M)


def _paragraph_source(paragraph: str) -> tuple[str, str | None]:
    match = _SOURCE_LINE.search(paragraph)
    if match is None:
        return paragraph, None
    return (paragraph[: match.start()] + paragraph[match.end() :]).strip(), match.group(1).strip()


def _sentence_text(text: str) -> str:
    text = text.strip()
    return text if text[-1:] in ".!?:;" else text + "."


def _dont_know(question: str, lang: str) -> str:
    if lang == "vi":
        return "Tôi không biết: không tìm thấy tài liệu nào liên quan đến câu hỏi này trong kho tri thức."
    return "I don't know: nothing in the knowledge base I can search answers this question."


def _ask_for(tool: str, parameters: Mapping[str, Any], missing: list[str], lang: str) -> str:
    properties = parameters.get("properties") or {}
    wanted = []
    for name in missing:
        spec = properties.get(name) or {}
        entity = entity_of(name, str(spec.get("description", "")))
        example = _ID_EXAMPLES.get(entity or "")
        described = str(spec.get("description") or name.replace("_", " ")).rstrip(".")
        wanted.append(f"{name} ({described}" + (f", e.g. {example})" if example else ")"))
    if lang == "vi":
        return f"Để dùng {tool} tôi cần thêm: {'; '.join(wanted)}. Vui lòng cung cấp."
    return f"To use {tool} I need {'; '.join(wanted)}. Please give {'them' if len(wanted) > 1 else 'it'}."


def _limit(text: str, stops: list[str], max_tokens: int | None) -> tuple[str, str | None]:
    cut: str | None = None
    for stop in stops:
        if stop and stop in text:
            text, cut = text[: text.index(stop)], "stop"
    if max_tokens is not None and count_tokens(text) > max_tokens:
        ends = [m.end() for m in re.finditer(r"\w+|[^\w\s]", text)]
        text, cut = text[: ends[max_tokens - 1]], "length"
    return text, cut
