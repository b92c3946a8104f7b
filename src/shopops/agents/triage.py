"""The triage bot's bookkeeping: which tools an alert calls for, and writing each report once.

Alerts arrive at least once (Alertmanager re-sends a firing alert every ``repeat_interval``, and
a webhook may be retried), and two platform processes may receive the same one. A report is
written exactly once per firing (``triage_id``: the alert's fingerprint and start time):

1. claim the id in a small SQLite ledger (``$SHOPOPS_HOME/agents/triage.db``); a claim already
   ``written`` returns the stored report; a live claim of another worker makes this one stand
   back; a claim older than the lease (its worker died) is taken over;
2. before producing, look for the id on the topic: a worker that died between producing and
   marking the claim done has already written it;
3. produce and flush the report (key: the triage id), then mark the claim ``written``.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from shopops.agents.model import Alert
from shopops.core.errors import ConflictError
from shopops.core.sqlite import connect_wal
from shopops.events.port import EventLog

#: Alert-name patterns and the tools whose results are the first evidence for them.
PLAYBOOKS: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (re.compile(r"schema|drift|quarantin", re.I), ("schema_changes",)),
    (re.compile(r"oversell|oversubscri|reservation|inventory|hold|stock", re.I), ("reservation_alerts",)),
    (re.compile(r"chargeback|fraud|dispute", re.I), ("chargeback_activity",)),
    (re.compile(r"reconcil|ledger|payment|settlement", re.I), ("reconciliation_exceptions",)),
    (re.compile(r"quality|contract", re.I), ("quality_results",)),
)
_METRIC_PREFIX = {
    "schema_changes": "shopops_schema",
    "reservation_alerts": "shopops_inventory",
    "chargeback_activity": "shopops_fraud",
    "reconciliation_exceptions": "shopops_reconciliation",
    "quality_results": "shopops_quality",
}


def plan_for(alert: Alert) -> list[tuple[str, dict[str, Any]]]:
    """The tool calls that gather the first evidence for ``alert`` (then the model may add more)."""
    region = alert.region
    calls: list[tuple[str, dict[str, Any]]] = []
    for pattern, tools in PLAYBOOKS:
        if not pattern.search(alert.name):
            continue
        for tool in tools:
            args: dict[str, Any] = {}
            if tool == "schema_changes" and alert.labels.get("subject"):
                args["subject"] = alert.labels["subject"]
            elif (
                tool in ("reservation_alerts", "chargeback_activity", "reconciliation_exceptions") and region
            ):
                args["region"] = region
            elif tool == "quality_results" and alert.labels.get("dataset"):
                args["dataset"] = alert.labels["dataset"]
            calls.append((tool, args))
            calls.append(("platform_metrics", {"name": _METRIC_PREFIX[tool]}))
        break
    if not calls:
        calls.append(("platform_metrics", {}))
    return calls


def question_for(alert: Alert) -> str:
    """What the triage bot asks its model about an alert."""
    description = alert.annotations.get("description", "").strip()
    return (
        f"Alert {alert.name} is {alert.status}: {alert.describe()}. {description} "
        "What happened, what is the evidence, and which runbook steps should the operator take?"
    ).strip()


class TriageLedger:
    """Claims of triage ids across threads and processes (SQLite, WAL)."""

    def __init__(self, path: Path, lease_s: float = 120.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.lease_s = lease_s
        self._conn = connect_wal(path, 10_000, "triage ledger")
        self._lock = threading.Lock()
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS triage (triage_id TEXT PRIMARY KEY, state TEXT NOT NULL, "
            "claimed_at REAL NOT NULL, owner TEXT NOT NULL, report BLOB)"
        )

    def claim(self, triage_id: str, owner: str) -> dict[str, Any] | None:
        """Claim ``triage_id`` for ``owner``. Returns the stored report if it was written already.

        Raises :class:`ConflictError` while another worker holds a live claim on it.
        """
        now = time.time()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute(
                    "SELECT state, claimed_at, owner, report FROM triage WHERE triage_id = ?", (triage_id,)
                ).fetchone()
                if row is None:
                    self._conn.execute(
                        "INSERT INTO triage VALUES (?, 'claimed', ?, ?, NULL)", (triage_id, now, owner)
                    )
                elif row[0] == "written":
                    self._conn.execute("COMMIT")
                    stored: dict[str, Any] = orjson.loads(row[3])
                    return stored
                elif row[2] != owner and now - row[1] < self.lease_s:
                    self._conn.execute("COMMIT")
                    raise ConflictError(
                        f"alert {triage_id} is being triaged by another worker",
                        hint=(
                            "its report appears on the triage topic shortly (claims lapse after "
                            f"{self.lease_s:.0f} s)"
                        ),
                    )
                else:  # a lapsed claim: its worker died; take it over
                    self._conn.execute(
                        "UPDATE triage SET claimed_at = ?, owner = ? WHERE triage_id = ?",
                        (now, owner, triage_id),
                    )
                self._conn.execute("COMMIT")
            except sqlite3.Error:
                self._conn.execute("ROLLBACK")
                raise
        return None

    def written(self, triage_id: str, owner: str, report: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE triage SET state = 'written', report = ? WHERE triage_id = ? AND owner = ?",
                (orjson.dumps(report), triage_id, owner),
            )

    def release(self, triage_id: str, owner: str) -> None:
        """Give a claim up (the triage failed): the next delivery of the alert tries again."""
        with self._lock:
            self._conn.execute(
                "DELETE FROM triage WHERE triage_id = ? AND owner = ? AND state = 'claimed'",
                (triage_id, owner),
            )

    def close(self) -> None:
        self._conn.close()


def already_on_topic(
    event_log: EventLog, topic: str, triage_id: str, scan: int = 5_000
) -> dict[str, Any] | None:
    """The report of ``triage_id`` if it is among the last ``scan`` records of each partition."""
    if topic not in {t.name for t in event_log.list_topics()}:
        return None
    key = triage_id.encode()
    for partition, end in event_log.end_offsets(topic).items():
        offset = max(0, end - scan)
        while offset < end:
            records = event_log.read(topic, partition, offset, min(1000, end - offset))
            if not records:
                break
            for record in records:
                if record.key == key and record.value:
                    found: dict[str, Any] = orjson.loads(record.value)
                    return found
            offset = records[-1].offset + 1
    return None


def publish(event_log: EventLog, topic: str, triage_id: str, report: dict[str, Any]) -> None:
    """Append the report to the triage topic, durably."""
    event_log.produce(
        topic, orjson.dumps(report), triage_id.encode(), headers=(("shopops.agent", b"triage"),)
    )
    event_log.flush()


def read_reports(event_log: EventLog, topic: str, limit: int = 20) -> list[dict[str, Any]]:
    """The latest triage reports on ``topic``, newest first."""
    if topic not in {t.name for t in event_log.list_topics()}:
        return []
    found: list[dict[str, Any]] = []
    for partition, end in event_log.end_offsets(topic).items():
        offset = max(0, end - limit)
        for record in event_log.read(topic, partition, offset, limit):
            if record.value:
                found.append(orjson.loads(record.value))
    found.sort(key=lambda r: str(r.get("written_at", "")), reverse=True)
    return found[:limit]


def evidence_of(calls: Sequence[Any]) -> list[dict[str, Any]]:
    """The tool calls of a triage run as the report lists them."""
    return [
        {"tool": c.name, "arguments": c.arguments, "status": c.status.value, "finding": c.message}
        for c in calls
    ]
