"""The offline model's decisions, without an embedder (shared words only) and with a small
in-memory retriever: tool choice, arguments, answers with citations, "I don't know"."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
import pytest

from shopops.llm.extraction import content_words
from shopops.llm.model import ChatCompletion, parse_chat_request
from shopops.llm.offline import OfflineModel, split_prompt, split_sentences

ORDER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_order_status",
        "description": "Look up an order by its id: status, payment and shipment.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "the order id"}},
            "required": ["order_id"],
        },
    },
}
STOCK_TOOL = {
    "type": "function",
    "function": {
        "name": "reserve_stock",
        "description": "Hold units of a SKU in a warehouse.",
        "parameters": {
            "type": "object",
            "properties": {
                "sku": {"type": "string"},
                "warehouse": {"type": "string"},
                "quantity": {"type": "integer", "minimum": 1},
            },
            "required": ["sku", "warehouse", "quantity"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search_docs",
        "description": "Search the runbooks and policies.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}


@dataclass(frozen=True)
class Doc:
    chunk_id: str
    text: str
    source: str
    heading_path: tuple[str, ...]
    score: float
    lang: str
    doc_id: str
    title: str


class WordRetriever:
    """Ranks passages by shared words; honours ``lang``."""

    def __init__(self, docs: Sequence[Doc]) -> None:
        self.docs = list(docs)
        self.calls: list[tuple[str, str | None]] = []

    def search(
        self, query: str, k: int = 5, *, lang: str | None = None, audience: str | None = None
    ) -> list[Doc]:
        self.calls.append((query, lang))
        words = content_words(query)
        scored = [
            (len(words & content_words(d.text)), i, d)
            for i, d in enumerate(self.docs)
            if lang in (None, d.lang)
        ]
        return [d for n, _, d in sorted(scored, key=lambda t: (-t[0], t[1])) if n][:k]


DOCS = [
    Doc(
        "k1",
        "To rotate an API key, create a new key with the same roles. "
        "Then revoke the old key once clients use the new one.",
        "docs/knowledge/runbooks/api-keys.md",
        ("API keys", "Rotation"),
        0.0,
        "en",
        "keys",
        "API keys",
    ),
    Doc(
        "r1",
        "Refunds are paid to the original payment method within 5 "
        "business days after the warehouse receives the item.",
        "docs/knowledge/policies/refunds.md",
        ("Refunds",),
        0.0,
        "en",
        "refunds",
        "Refunds",
    ),
    Doc(
        "r1-vi",
        "Tiền hoàn được chuyển về phương thức thanh toán ban đầu "
        "trong vòng 5 ngày làm việc sau khi kho nhận lại hàng.",
        "docs/knowledge/policies/refunds.vi.md",
        ("Hoàn tiền",),
        0.0,
        "vi",
        "refunds-vi",
        "Hoàn tiền",
    ),
]


def _model(retriever: WordRetriever | None = None) -> OfflineModel:
    return OfflineModel(retriever=(lambda: retriever), today=lambda: date(2026, 1, 10))


def _ask(model: OfflineModel, content: str, **extra: Any) -> ChatCompletion:
    return model.complete(
        parse_chat_request(
            {"model": "shopops-offline", "messages": [{"role": "user", "content": content}], **extra}
        )
    )


def test_a_matching_tool_is_called_with_arguments_from_the_message() -> None:
    reply = _ask(_model(), "Where is order vn-o-000000123?", tools=[STOCK_TOOL, ORDER_TOOL])
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_order_status"
    assert orjson.loads(call.function.arguments) == {"order_id": "vn-o-000000123"}
    assert call.id.startswith("call_")


def test_the_same_request_gets_the_same_answer() -> None:
    ask = {"tools": [STOCK_TOOL, ORDER_TOOL]}
    first = _ask(_model(), "Hold 2 units of VN-SKU-00042 in vn-wh-01", **ask)
    second = _ask(_model(), "Hold 2 units of VN-SKU-00042 in vn-wh-01", **ask, temperature=1.5, seed=9)
    assert first.choices[0].message == second.choices[0].message
    assert first.choices[0].message.tool_calls is not None
    assert orjson.loads(first.choices[0].message.tool_calls[0].function.arguments) == {
        "sku": "VN-SKU-00042",
        "warehouse": "vn-wh-01",
        "quantity": 2,
    }


def test_a_missing_required_argument_is_asked_for() -> None:
    reply = _ask(_model(), "where is my order status?", tools=[ORDER_TOOL])
    content = reply.choices[0].message.content or ""
    assert reply.choices[0].message.tool_calls is None
    assert "get_order_status" in content
    assert "order_id" in content
    assert "vn-o-000000123" in content


def test_tool_choice_is_respected() -> None:
    model = _model()
    none = _ask(model, "Where is order vn-o-000000123?", tools=[ORDER_TOOL], tool_choice="none")
    assert none.choices[0].message.tool_calls is None
    forced = _ask(
        model,
        "hello there",
        tools=[ORDER_TOOL, STOCK_TOOL],
        tool_choice={"type": "function", "function": {"name": "reserve_stock"}},
    )
    assert forced.choices[0].message.tool_calls is not None
    assert forced.choices[0].message.tool_calls[0].function.name == "reserve_stock"
    assert forced.choices[0].message.tool_calls[0].function.arguments == "{}"  # nothing to read, still called
    required = _ask(model, "hello there", tools=[ORDER_TOOL], tool_choice="required")
    assert required.choices[0].message.tool_calls is not None


def test_an_unrelated_message_calls_no_tool() -> None:
    reply = _ask(_model(), "tell me a joke", tools=[ORDER_TOOL, STOCK_TOOL])
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].message.content is not None


def test_a_question_no_tool_matches_goes_to_the_search_tool() -> None:
    reply = _ask(_model(), "How do I rotate an API key?", tools=[ORDER_TOOL, SEARCH_TOOL])
    assert reply.choices[0].message.tool_calls is not None
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "search_docs"
    assert orjson.loads(call.function.arguments) == {"query": "How do I rotate an API key?"}


def test_the_answer_after_a_tool_call_comes_from_its_result() -> None:
    messages = [
        {"role": "user", "content": "Where is order vn-o-000000123?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_order_status", "arguments": '{"order_id": "vn-o-000000123"}'},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "c1",
            "content": '{"status": "shipped", "shipment": {"carrier": "GHN", "eta": "2026-01-12"}}',
        },
    ]
    reply = _model().complete(parse_chat_request({"model": "m", "messages": messages, "tools": [ORDER_TOOL]}))
    content = reply.choices[0].message.content or ""
    assert reply.choices[0].message.tool_calls is None  # the tool already answered: no second call
    assert "get_order_status(order_id=vn-o-000000123) returned [1]" in content
    assert "- status: shipped" in content
    assert "- shipment.eta: 2026-01-12" in content
    assert content.endswith("Sources:\n[1] tool get_order_status(order_id=vn-o-000000123)")


def test_a_search_tools_passages_are_answered_from_with_citations() -> None:
    passages = [
        {"text": DOCS[0].text, "source": DOCS[0].source, "heading_path": list(DOCS[0].heading_path)},
        {"text": DOCS[1].text, "source": DOCS[1].source, "heading_path": list(DOCS[1].heading_path)},
    ]
    messages = [
        {"role": "user", "content": "How do I rotate an API key?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "s1", "type": "function", "function": {"name": "search_docs", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "s1", "content": orjson.dumps(passages).decode()},
    ]
    reply = _model().complete(parse_chat_request({"model": "m", "messages": messages}))
    content = reply.choices[0].message.content or ""
    assert content.startswith("To rotate an API key, create a new key with the same roles. [1]")
    assert "[1] docs/knowledge/runbooks/api-keys.md — API keys > Rotation" in content
    assert "refunds.md" not in content


def test_answers_from_the_retriever_cite_their_sources() -> None:
    retriever = WordRetriever(DOCS)
    reply = _ask(_model(retriever), "How do I rotate an API key?")
    content = reply.choices[0].message.content or ""
    assert "To rotate an API key, create a new key with the same roles. [1]" in content
    assert "Then revoke the old key once clients use the new one. [1]" in content
    assert content.endswith("Sources:\n[1] docs/knowledge/runbooks/api-keys.md — API keys > Rotation")
    assert retriever.calls == [("How do I rotate an API key?", None)]


def test_vietnamese_questions_get_vietnamese_passages_and_frame() -> None:
    retriever = WordRetriever(DOCS)
    reply = _ask(_model(retriever), "Tiền hoàn được chuyển về trong bao lâu?")
    content = reply.choices[0].message.content or ""
    assert retriever.calls[0][1] == "vi"
    assert "Tiền hoàn được chuyển về phương thức thanh toán ban đầu" in content
    assert "Nguồn:\n[1] docs/knowledge/policies/refunds.vi.md — Hoàn tiền" in content


def test_it_says_it_does_not_know_when_nothing_relevant_is_found() -> None:
    reply = _ask(_model(WordRetriever(DOCS)), "Who won the football world cup?")
    assert (reply.choices[0].message.content or "").startswith("I don't know")
    assert (_ask(_model(None), "How do I rotate an API key?").choices[0].message.content or "").startswith(
        "I don't know"
    )
    vi = _ask(_model(WordRetriever([])), "Thủ đô của Pháp là gì?")
    assert (vi.choices[0].message.content or "").startswith("Tôi không biết")


def test_context_given_in_a_rag_prompt_is_used_instead_of_retrieval() -> None:
    retriever = WordRetriever(DOCS)
    prompt = (
        "Context information is below.\n---------------------\n"
        "file_path: handbook/warehouses.md\n\n"
        "The Hanoi warehouse closes at 18:00 on weekdays and at noon on Saturdays.\n"
        "---------------------\nGiven the context information and not prior knowledge, answer the query.\n"
        "Query: When does the Hanoi warehouse close on Saturdays?\nAnswer: "
    )
    content = _ask(_model(retriever), prompt).choices[0].message.content or ""
    assert "The Hanoi warehouse closes at 18:00 on weekdays and at noon on Saturdays. [1]" in content
    assert "[1] handbook/warehouses.md" in content
    assert retriever.calls == []


def test_split_prompt_reads_labelled_sections() -> None:
    question, contexts = split_prompt(
        "Use the context.\nQuestion: what is X? \nContext: X is a letter.\nAnswer:"
    )
    assert question == "what is X?"
    assert contexts == ["X is a letter."]
    assert split_prompt("plain question?") == ("plain question?", [])


def test_stop_sequences_and_max_tokens_cut_the_answer() -> None:
    retriever = WordRetriever(DOCS)
    cut = _ask(_model(retriever), "How do I rotate an API key?", max_tokens=5)
    assert cut.choices[0].finish_reason == "length"
    assert cut.choices[0].message.content == "To rotate an API key"
    assert cut.usage is not None
    assert cut.usage.completion_tokens == 5
    stopped = _ask(_model(retriever), "How do I rotate an API key?", stop=["create"])
    assert stopped.choices[0].message.content == "To rotate an API key, "
    assert stopped.choices[0].finish_reason == "stop"


def test_json_answers() -> None:
    retriever = WordRetriever(DOCS)
    as_object = _ask(
        _model(retriever), "How do I rotate an API key?", response_format={"type": "json_object"}
    )
    assert "rotate" in orjson.loads(as_object.choices[0].message.content or "")["answer"]
    schema = {
        "type": "json_schema",
        "json_schema": {
            "name": "o",
            "schema": {"type": "object", "properties": {"order_id": {"type": "string"}}},
        },
    }
    structured = _ask(_model(retriever), "status of vn-o-000000001", response_format=schema)
    assert orjson.loads(structured.choices[0].message.content or "") == {"order_id": "vn-o-000000001"}


def test_usage_counts_prompt_and_completion() -> None:
    reply = _ask(_model(WordRetriever(DOCS)), "How do I rotate an API key?")
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One sentence here. Another one follows!", ["One sentence here.", "Another one follows!"]),
        ("- a list item with words\n- another list item", ["a list item with words", "another list item"]),
        ("| a | b |\n|---|---|\n| 1 | 2 |", ["a: 1; b: 2."]),
        ("```\ncode is skipped here\n```\nProse stays here.", ["Prose stays here."]),
    ],
)
def test_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected
