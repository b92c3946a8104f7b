"""`/v1/agents/...` through the app: who may ask which agent, answers, the triage webhook, traces."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.integration.agents.conftest import Orders
from tests.support.governance import bearer, key_for

from shopops.api.app import create_app
from shopops.bootstrap import Platform


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform=platform)) as client:
        yield client


def _key(platform: Platform, *roles: str, kind: str = "user") -> dict[str, str]:
    if kind == "user":
        return bearer(key_for(platform.governance, *roles))
    issued = platform.governance.create_key(
        kind=kind, name=f"{roles[0]}-{uuid.uuid4().hex[:6]}", roles=roles, home_region="vn"
    )
    return bearer(issued.token)


def test_support_asks_the_support_agent_for_a_customer(
    client: TestClient, platform: Platform, orders: Orders
) -> None:
    support = _key(platform, "support")
    order = orders.first("delivered", "sg")
    response = client.post(
        "/v1/agents/support/ask",
        json={
            "question": f"What is the status of order {order['order_id']}?",
            "customer_id": order["customer_id"],
        },
        headers=support,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["outcome"] == "answered"
    assert body["backend"] == "offline"
    assert body["model"] == "shopops-offline"
    assert body["tool_calls"][0]["name"] == "order_status"
    assert body["tool_calls"][0]["status"] == "ok"
    assert order["order_id"] in body["answer"]
    assert len(body["trace_id"]) == 32
    # The run is audited on behalf of the caller.
    runs = [r for r in platform.governance.audit.records() if r.action == "ask_agent"]
    assert runs[-1].principal == 'User::"support"'
    assert runs[-1].details["trace_id"] == body["trace_id"]

    missing = client.post("/v1/agents/support/ask", json={"question": "Where is my order?"}, headers=support)
    assert missing.status_code == 422
    assert "acts for one customer" in missing.json()["message"]
    extra = client.post("/v1/agents/support/ask", json={"question": "hi", "sql": "x"}, headers=support)
    assert extra.status_code == 422


def test_support_cannot_ask_the_ops_agents_and_nobody_without_a_key(
    client: TestClient, platform: Platform
) -> None:
    support = _key(platform, "support")
    denied = client.post("/v1/agents/ops-copilot/ask", json={"question": "Why?"}, headers=support)
    assert denied.status_code == 403
    assert client.post("/v1/agents/support/ask", json={"question": "hi"}).status_code == 401
    assert client.get("/v1/agents", headers=support).status_code == 403


def test_operators_ask_the_ops_copilot_and_read_its_trace(client: TestClient, platform: Platform) -> None:
    operator = _key(platform, "operator")
    answer = client.post(
        "/v1/agents/ops-copilot/ask",
        json={"question": "Which incompatible schema changes happened on vn.shop.customers?"},
        headers=operator,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["tool_calls"][0]["name"] == "schema_changes"
    spans = client.get(f"/v1/agents/traces/{body['trace_id']}", headers=operator)
    assert spans.status_code == 200
    assert {"agent.run", "agent.tool", "agent.model"} <= {s["name"] for s in spans.json()}
    listed = client.get("/v1/agents", headers=operator).json()
    assert [a["name"] for a in listed] == ["support", "ops-copilot", "triage"]
    assert client.get("/v1/agents/traces/not-a-trace", headers=operator).status_code == 422
    assert client.get(f"/v1/agents/traces/{'0' * 32}", headers=operator).status_code == 404
    # An agent no policy names is closed to operators; an admin learns it does not exist.
    assert client.post("/v1/agents/sales/ask", json={"question": "hi"}, headers=operator).status_code == 403
    admin = _key(platform, "admin")
    assert client.post("/v1/agents/sales/ask", json={"question": "hi"}, headers=admin).status_code == 404


def test_alertmanager_posts_alerts_and_each_is_reported_once(client: TestClient, platform: Platform) -> None:
    alerting = _key(platform, "alerting", kind="service")
    body = {
        "receiver": "shopops-triage",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "InventoryOversubscribedItems", "region": "vn", "severity": "page"},
                "annotations": {"summary": "Items with more units promised than on hand"},
                "startsAt": "2026-01-03T08:00:00Z",
                "fingerprint": uuid.uuid4().hex[:16],
            }
        ],
    }
    first = client.post("/v1/agents/triage/alerts", json=body, headers=alerting)
    assert first.status_code == 200, first.text
    [report] = first.json()["reports"]
    assert report["status"] == "written"
    assert report["evidence"][0]["tool"] == "reservation_alerts"
    assert report["runbook_steps"]
    again = client.post("/v1/agents/triage/alerts", json=body, headers=alerting).json()["reports"][0]
    assert again["status"] == "duplicate"
    assert again["triage_id"] == report["triage_id"]
    # Alertmanager's key does nothing else.
    assert client.get("/v1/agents/triage/reports", headers=alerting).status_code == 403
    assert client.post("/v1/agents/support/ask", json={"question": "x"}, headers=alerting).status_code == 403
    operator = _key(platform, "operator")
    reports = client.get("/v1/agents/triage/reports", params={"limit": 50}, headers=operator).json()
    assert report["triage_id"] in {r["triage_id"] for r in reports}
    bad = client.post("/v1/agents/triage/alerts", json={"alerts": [{"labels": {}}]}, headers=alerting)
    assert bad.status_code == 422
    assert "alertname" in bad.json()["message"]
    wrong_agent = client.post("/v1/agents/support/ask", json={"alert": body["alerts"][0]}, headers=operator)
    assert wrong_agent.status_code == 422
