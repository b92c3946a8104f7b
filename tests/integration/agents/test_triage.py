"""The triage bot: evidence, runbook steps, one report per firing on the topic and in the audit
trail — however often the alert comes, from however many workers, across a crash."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from shopops.agents.model import parse_alerts
from shopops.agents.service import AgentsService
from shopops.agents.triage import publish
from shopops.agents.wiring import open_agents
from shopops.bootstrap import Platform
from shopops.core.errors import ConflictError

TOPIC = "shopops.agents.triage"


@pytest.fixture
def agents(platform: Platform) -> Iterator[AgentsService]:
    service = open_agents(platform)
    yield service
    service.close()


def alert(name: str = "SchemaDriftIncompatible", **labels: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": name, "severity": "page", **labels},
        "annotations": {"summary": f"{name} fired"},
        "startsAt": "2026-01-03T10:00:00Z",
        "fingerprint": uuid.uuid4().hex[:16],
    }


def reports_on_topic(platform: Platform, triage_id: str) -> list[dict[str, Any]]:
    key = triage_id.encode()
    return [orjson.loads(r.value) for r in platform.event_log.read_all(TOPIC) if r.key == key and r.value]


def test_an_alert_gets_a_report_with_evidence_and_runbook_steps(
    agents: AgentsService, platform: Platform
) -> None:
    body = {"receiver": "shopops", "alerts": [alert(subject="vn.shop.customers-value")]}
    [report] = agents.triage(body)
    assert report.status == "written"
    assert report.evidence[0]["tool"] == "schema_changes"
    assert report.evidence[0]["arguments"] == {"subject": "vn.shop.customers-value"}
    assert report.sources[0].endswith("runbooks/schema-drift.md")
    assert report.runbook_steps  # the numbered steps of the schema-drift runbook
    assert any("shopops schemas" in step for step in report.runbook_steps)
    [written] = reports_on_topic(platform, report.triage_id)
    assert written["summary"] == report.summary
    assert written["trace_id"] == report.trace_id
    records = list(platform.governance.audit.records())
    decided = [r for r in records if r.resource == 'Tool::"publish_triage_report"']
    assert [(r.action, r.decision, r.reasons) for r in decided] == [
        ("call_tool", "allow", ("triage-bot-publishes-its-reports",))
    ]
    [done] = [r for r in records if r.action == "publish_triage_report"]
    assert done.decision == "done"
    assert done.details["triage_id"] == report.triage_id
    assert done.details["evidence"][0].startswith("schema_changes:")


def test_the_same_firing_twice_is_reported_once(agents: AgentsService, platform: Platform) -> None:
    body = alert("InventoryOversubscribedItems", region="vn")
    first = agents.triage(body)[0]
    again = agents.triage(body)[0]
    assert (first.status, again.status) == ("written", "duplicate")
    assert again.summary == first.summary
    assert len(reports_on_topic(platform, first.triage_id)) == 1
    resolved = agents.triage({**body, "status": "resolved"})[0]
    assert resolved.status == "skipped"


def test_concurrent_deliveries_write_one_report(agents: AgentsService, platform: Platform) -> None:
    body = alert("ChargebackSpike", region="sg")
    outcomes: list[str] = []
    lock = threading.Lock()

    def deliver() -> None:
        try:
            status = agents.triage(body)[0].status
        except ConflictError:
            status = "conflict"
        with lock:
            outcomes.append(status)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("written") == 1
    assert set(outcomes) <= {"written", "duplicate", "conflict"}
    triage_id = parse_alerts(body)[0].triage_id
    assert len(reports_on_topic(platform, triage_id)) == 1


def test_a_worker_that_died_after_writing_is_not_repeated(platform: Platform) -> None:
    service = open_agents(platform)
    service._triage_lease_s = 0.0  # claims lapse at once: the dead worker's claim is taken over
    try:
        body = alert("SchemaRecordsQuarantined", subject="sg.logistics.shipments-value")
        triage_id = parse_alerts(body)[0].triage_id
        # The dead worker claimed the alert and wrote its report, then died before marking it.
        assert service.ledger.claim(triage_id, "dead-worker") is None
        publish(
            platform.event_log, TOPIC, triage_id, {"triage_id": triage_id, "summary": "by the dead worker"}
        )
        report = service.triage(body)[0]
        assert report.status == "duplicate"
        assert report.summary == "by the dead worker"
        assert len(reports_on_topic(platform, triage_id)) == 1
        # A worker that died before writing: the next delivery triages it, once.
        body = alert("ReconciliationLedgerBreaks", region="vn")
        triage_id = parse_alerts(body)[0].triage_id
        assert service.ledger.claim(triage_id, "dead-worker") is None
        assert service.triage(body)[0].status == "written"
        assert service.triage(body)[0].status == "duplicate"
        assert len(reports_on_topic(platform, triage_id)) == 1
    finally:
        service.close()


def test_a_live_claim_of_another_worker_stands(agents: AgentsService) -> None:
    body = alert("ShipmentsLate", region="vn")
    triage_id = parse_alerts(body)[0].triage_id
    assert agents.ledger.claim(triage_id, "other-worker") is None
    with pytest.raises(ConflictError, match="being triaged by another worker"):
        agents.triage(body)
