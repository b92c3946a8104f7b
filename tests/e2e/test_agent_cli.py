"""`shopops agent` end to end: ask the support agent about a simulated order, read the run's trace,
triage an alert file twice (one report), and bad input exits non-zero with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.e2e.helpers import run_cli

from shopops.agents.orders import EventLogOrderBook
from shopops.core.registry import BackendSelection
from shopops.events.backends import open_event_log


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("agent-cli") / "data"
    done = run_cli(
        home, "simulate", "--regions", "vn,sg", "--days", "2", "--orders-per-day", "20", "--seed", "3"
    )
    assert done.returncode == 0, done.stderr
    return home


def _shipped_order(home: Path) -> dict[str, object]:
    with open_event_log(BackendSelection(type="sqlite"), home) as log:
        rows = EventLogOrderBook(log).all_orders()
    return min((r for r in rows if r["status"] == "shipped"), key=lambda r: str(r["order_id"]))


def test_ask_the_support_agent_then_read_the_trace(home: Path) -> None:
    order = _shipped_order(home)
    done = run_cli(
        home,
        "agent",
        "ask",
        "support",
        f"Where is my order {order['order_id']}?",
        "--customer",
        str(order["customer_id"]),
        "--json",
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["outcome"] == "answered"
    assert [(c["name"], c["status"]) for c in answer["tool_calls"]] == [("order_status", "ok")]
    assert order["order_id"] in answer["answer"]
    traced = run_cli(home, "agent", "trace", answer["trace_id"], "--json")
    assert traced.returncode == 0, traced.stderr
    assert "agent.tool" in {s["name"] for s in json.loads(traced.stdout)}


def test_triage_an_alert_file_once(home: Path, tmp_path: Path) -> None:
    alert = tmp_path / "alert.json"
    alert.write_text(
        json.dumps(
            {
                "alerts": [
                    {
                        "status": "firing",
                        "labels": {
                            "alertname": "SchemaDriftIncompatible",
                            "subject": "vn.shop.customers-value",
                        },
                        "annotations": {"summary": "Incompatible schema change on vn.shop.customers-value"},
                        "startsAt": "2026-01-02T00:00:00Z",
                        "fingerprint": "e2e-schema",
                    }
                ]
            }
        )
    )
    first = run_cli(home, "agent", "triage", str(alert), "--json", timeout=300)
    assert first.returncode == 0, first.stderr
    [report] = json.loads(first.stdout)
    assert report["status"] == "written"
    assert report["evidence"][0]["tool"] == "schema_changes"
    again = run_cli(home, "agent", "triage", str(alert), "--json", timeout=300)
    assert json.loads(again.stdout)[0]["status"] == "duplicate"
    listed = run_cli(home, "agent", "reports", "--json")
    assert [r["triage_id"] for r in json.loads(listed.stdout)] == [report["triage_id"]]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["agent", "ask", "support", "Where is my order?"], 2, "acts for one customer"),
        (["agent", "ask", "sales", "Hello"], 3, "no agent named 'sales'"),
        (["agent", "triage", "missing.json"], 3, "no file missing.json"),
        (["agent", "trace", "0" * 32], 3, "no spans of trace"),
    ],
)
def test_bad_input_exits_with_the_reason(home: Path, args: list[str], code: int, message: str) -> None:
    done = run_cli(home, *args, timeout=300)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert message in done.stderr
