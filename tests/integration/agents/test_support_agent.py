"""The support agent over a simulated shop, with the offline model of the platform's gateway:
its tools, the customer scope, residency, plain notices, traces and the audit trail."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from tests.e2e.helpers import free_port
from tests.integration.agents.conftest import Orders

from shopops.agents.model import Outcome, ToolStatus
from shopops.agents.service import AgentsService
from shopops.agents.tools import EtaPredictor
from shopops.agents.wiring import open_agents
from shopops.bootstrap import Platform
from shopops.core.errors import InvalidInputError, NotFoundError


@pytest.fixture
def agents(platform: Platform) -> Iterator[AgentsService]:
    service = open_agents(platform)
    yield service
    service.close()


def _calls(answer: Any) -> list[tuple[str, str]]:
    return [(c.name, c.status.value) for c in answer.tool_calls]


def test_a_customer_asks_about_their_order(agents: AgentsService, orders: Orders, platform: Platform) -> None:
    order = orders.first("shipped", "vn")
    answer = agents.ask(
        "support", f"Where is my order {order['order_id']}?", customer_id=order["customer_id"]
    )
    assert answer.outcome is Outcome.ANSWERED
    assert _calls(answer) == [("order_status", "ok")]
    assert answer.tool_calls[0].arguments == {"order_id": order["order_id"]}
    assert order["order_id"] in answer.answer
    assert "shipped" in answer.answer
    assert answer.backend == "offline"
    # One trace: the run, the retrieval, each model call, the tool call with its arguments.
    spans = agents.trace(answer.trace_id)
    names = [s["name"] for s in spans]
    assert names.count("agent.run") == 1
    assert {"agent.retrieve", "agent.model", "agent.tool"} <= set(names)
    tool = next(s for s in spans if s["name"] == "agent.tool")
    assert tool["attributes"]["tool.name"] == "order_status"
    assert tool["attributes"]["tool.status"] == "ok"
    # ... and the call is in the audit trail, decided by the agents' policy.
    records = [r for r in platform.governance.audit.records() if r.kind == "tool"]
    assert records[-1].resource == 'Tool::"order_status"'
    assert records[-1].decision == "allow"
    assert records[-1].reasons == ("agents-call-read-only-tools-in-their-region",)


def test_another_customers_order_is_refused_without_a_word_of_it(
    agents: AgentsService, orders: Orders, platform: Platform
) -> None:
    mine = orders.first("delivered", "vn")
    other = orders.first("shipped", "vn", not_customer=mine["customer_id"])
    for question in (
        f"Where is order {other['order_id']}? Tell me its total.",
        f"Can I get a refund for order {other['order_id']}?",
        f"Show the order history of customer {other['customer_id']}.",
    ):
        answer = agents.ask("support", question, customer_id=mine["customer_id"])
        assert answer.outcome is Outcome.REFUSED, question
        assert [c.status for c in answer.tool_calls] == [ToolStatus.REFUSED]
        assert str(other["total"]) not in answer.answer
        assert other["order_id"] not in answer.answer or "no order" in answer.answer
    denies = [r for r in platform.governance.audit.records() if r.kind == "tool" and r.decision == "deny"]
    assert {r.reasons for r in denies} == {("customer-scope",)}
    assert all(r.details["customer_id"] == mine["customer_id"] for r in denies)


def test_a_missing_order_reads_exactly_like_another_customers(agents: AgentsService, orders: Orders) -> None:
    mine = orders.first("delivered", "vn")
    other = orders.first("delivered", "vn", not_customer=mine["customer_id"])
    missing = agents.ask("support", "Where is my order vn-o-999999999?", customer_id=mine["customer_id"])
    refused = agents.ask(
        "support", f"Where is my order {other['order_id']}?", customer_id=mine["customer_id"]
    )
    assert refused.outcome is Outcome.REFUSED
    assert missing.answer.replace("vn-o-999999999", "ID") == refused.answer.replace(other["order_id"], "ID")


def test_the_delivery_date_says_plainly_that_no_eta_model_is_configured(
    agents: AgentsService, orders: Orders
) -> None:
    order = orders.first("shipped", "sg")
    answer = agents.ask(
        "support", f"When will my order {order['order_id']} arrive?", customer_id=order["customer_id"]
    )
    assert _calls(answer) == [("order_delivery_date", "ok")]
    assert "ETA prediction service is not configured" in answer.answer
    assert answer.notices
    assert "not configured" in answer.notices[0]


@pytest.fixture
def eta_server() -> Iterator[str]:
    """An ML serving process's ETA route, answering like ``POST /v1/predict/eta``."""
    app = FastAPI()
    seen: list[dict[str, Any]] = []

    @app.post("/v1/predict/eta")
    def predict(body: dict[str, Any]) -> dict[str, Any]:
        seen.append(body)
        return {
            "p50_hours": 30.0,
            "p90_hours": 60.0,
            "p50_at": "2026-01-05T10:00:00+00:00",
            "p90_at": "2026-01-06",
        }

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.02)
    yield f"http://127.0.0.1:{port}/v1/predict/eta"
    server.should_exit = True
    thread.join(5)
    assert seen
    assert {"carrier", "route", "shipment_id", "event_timestamp"} <= set(seen[0])


def test_the_delivery_date_asks_the_eta_model_when_it_is_configured(
    agents: AgentsService, orders: Orders, eta_server: str
) -> None:
    agents.toolbox.eta = EtaPredictor(eta_server)
    order = orders.first("shipped", "vn")
    answer = agents.ask(
        "support", f"When will order {order['order_id']} arrive?", customer_id=order["customer_id"]
    )
    assert "The ETA model predicts delivery on 2026-01-05" in answer.answer
    assert not answer.notices


def test_refund_eligibility_follows_the_order_and_the_region_policy(
    agents: AgentsService, orders: Orders
) -> None:
    cancelled = orders.first("cancelled", "sg")
    answer = agents.ask(
        "support",
        f"Can I get a refund for order {cancelled['order_id']}?",
        customer_id=cancelled["customer_id"],
    )
    assert _calls(answer) == [("refund_eligibility", "ok")]
    assert "refunded in full automatically" in answer.answer
    delivered = orders.first("delivered", "sg")
    answer = agents.ask(
        "support",
        f"Is order {delivered['order_id']} eligible for a refund?",
        customer_id=delivered["customer_id"],
    )
    assert "14-day return window" in answer.answer  # Singapore's window (docs/knowledge refunds policy)


def test_stock_of_another_region_is_refused_by_the_residency_policy(agents: AgentsService) -> None:
    answer = agents.ask("support", "Is SG-SKU-00005 in stock?", customer_id="vn-c-0000001")
    assert answer.outcome is Outcome.REFUSED
    assert answer.tool_calls[0].reasons == ("default-deny",)
    assert "region sg" in answer.answer


def test_out_of_scope_and_personal_data_questions_never_reach_the_model(agents: AgentsService) -> None:
    weather = agents.ask("support", "What is the weather in Hanoi today?", customer_id="vn-c-0000001")
    assert weather.outcome is Outcome.UNKNOWN
    assert weather.tool_calls == []
    assert weather.retrieved == []
    personal = agents.ask("ops-copilot", "Give me the phone number of customer vn-c-0000002")
    assert personal.outcome is Outcome.REFUSED
    assert "personal data" in personal.answer


@pytest.mark.parametrize(
    ("name", "question", "customer", "error", "message"),
    [
        ("support", "Where is my order?", None, InvalidInputError, "acts for one customer"),
        ("support", "Where is my order?", "bob", InvalidInputError, "invalid customer id"),
        ("ops-copilot", "Why?", "vn-c-0000001", InvalidInputError, "support agent only"),
        ("support", "   ", "vn-c-0000001", InvalidInputError, "empty"),
        ("support", "x" * 5000, "vn-c-0000001", InvalidInputError, "at most 4000"),
        ("sales", "Hello", None, NotFoundError, "no agent named 'sales'"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(
    agents: AgentsService,
    name: str,
    question: str,
    customer: str | None,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        agents.ask(name, question, customer_id=customer)
