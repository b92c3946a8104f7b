"""The offline model with the real MiniLM embedder and the platform's real retrieval service."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from shopops.core.registry import BackendSelection
from shopops.llm.model import ChatCompletion, parse_chat_request, parse_embedding_request
from shopops.llm.service import LlmGateway

Gateway = Callable[..., LlmGateway]


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


TOOLS = [
    _tool(
        "get_order_status",
        "Look up an order by its id: status, items, payment and shipment.",
        {"order_id": {"type": "string", "description": "order id, e.g. vn-o-000000123"}},
        ["order_id"],
    ),
    _tool(
        "reserve_stock",
        "Hold units of a SKU in a warehouse for a checkout.",
        {
            "sku": {"type": "string"},
            "warehouse": {"type": "string"},
            "quantity": {"type": "integer", "minimum": 1},
        },
        ["sku", "warehouse", "quantity"],
    ),
    _tool(
        "reconciliation_exceptions",
        "List reconciliation exceptions (payment and ledger breaks) of a region and day.",
        {
            "region": {"type": "string", "enum": ["vn", "sg", "th"]},
            "day": {"type": "string", "format": "date"},
        },
        [],
    ),
    _tool("get_weather", "Get the current weather in a city.", {"city": {"type": "string"}}, ["city"]),
]


@pytest.fixture
def offline(gateway: Gateway, knowledge_base: Any) -> LlmGateway:
    return gateway(BackendSelection(type="offline"), rag=knowledge_base)


def _chat(gw: LlmGateway, content: str, **extra: Any) -> ChatCompletion:
    request = parse_chat_request(
        {"model": "shopops-offline", "messages": [{"role": "user", "content": content}], **extra}
    )
    return asyncio.run(gw.chat(request)).completion


@pytest.mark.parametrize(
    ("question", "tool", "arguments"),
    [
        ("Where is my order vn-o-000000123?", "get_order_status", {"order_id": "vn-o-000000123"}),
        ("Đơn hàng vn-o-000000123 của tôi đang ở đâu?", "get_order_status", {"order_id": "vn-o-000000123"}),
        (
            "Please hold 2 units of VN-SKU-00042 in vn-wh-01",
            "reserve_stock",
            {"sku": "VN-SKU-00042", "warehouse": "vn-wh-01", "quantity": 2},
        ),
        (
            "Any payment breaks in Singapore on 2026-01-05?",
            "reconciliation_exceptions",
            {"region": "sg", "day": "2026-01-05"},
        ),
        ("tell me a joke", None, None),
        ("How do I rotate an API key?", None, None),
    ],
)
def test_tool_selection_by_meaning_and_cues(
    offline: LlmGateway, question: str, tool: str | None, arguments: dict[str, Any] | None
) -> None:
    message = _chat(offline, question, tools=TOOLS).choices[0].message
    if tool is None:
        assert message.tool_calls is None
        return
    assert message.tool_calls is not None, message.content
    assert message.tool_calls[0].function.name == tool
    assert orjson.loads(message.tool_calls[0].function.arguments) == arguments


def test_answers_from_the_knowledge_base_with_citations(offline: LlmGateway) -> None:
    content = _chat(offline, "How do I rotate an API key?").choices[0].message.content or ""
    assert content.startswith("To rotate an API key, create a new key with the same roles")
    assert "revoke the old key" in content
    assert "[1]" in content
    assert content.endswith("Sources:\n[1] knowledge/runbooks/api-keys.md — API keys > Rotating a key")


def test_table_rows_answer_too(offline: LlmGateway) -> None:
    content = _chat(offline, "What is the return window in Singapore?").choices[0].message.content or ""
    assert "country: Singapore; return window: 14 days." in content
    assert "knowledge/policies/refunds.md" in content


def test_vietnamese_questions_are_answered_from_vietnamese_passages(offline: LlmGateway) -> None:
    content = _chat(offline, "Tiền hoàn được chuyển về trong bao lâu?").choices[0].message.content or ""
    assert "5 ngày làm việc" in content
    assert "Nguồn:" in content
    assert "refunds.vi.md" in content
    assert "refunds.md" not in content.replace("refunds.vi.md", "")


def test_it_says_it_does_not_know(offline: LlmGateway) -> None:
    for question in ("Who won the football world cup in 2018?", "How do I bake bread?"):
        assert (_chat(offline, question).choices[0].message.content or "").startswith("I don't know"), (
            question
        )


def test_built_in_embeddings(offline: LlmGateway, knowledge_base: Any) -> None:
    request = parse_embedding_request(
        {"model": "all-MiniLM-L6-v2", "input": ["refund policy", "chính sách hoàn tiền"]}
    )
    body = asyncio.run(offline.embeddings(request)).body
    assert [len(item["embedding"]) for item in body["data"]] == [384, 384]
    assert body["data"][0]["embedding"] == pytest.approx(knowledge_base.embed(["refund policy"])[0], abs=1e-5)
    assert body["system_fingerprint"] == "shopops:offline"
