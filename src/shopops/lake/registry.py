"""The lake's schema decisions answered by the schema registry (the drift watch's gate)."""

from __future__ import annotations

import re
import threading

from shopops.events.model import Record
from shopops.lake.decisions import SchemaDecision
from shopops.schemas.drift import SchemaGate, Verdict


class RegistrySchemaDecisions:
    """The lake's :class:`~shopops.lake.decisions.SchemaDecisions`, answered by the drift watch's
    :class:`~shopops.schemas.drift.SchemaGate`: the question the watch asks of every record (a
    registration, which the registry refuses when the change is incompatible under the subject's
    compatibility level), so silver and the watch agree; whichever sees a new schema first
    registers it. An unreachable registry raises ``BackendUnavailableError``."""

    def __init__(self, gate: SchemaGate) -> None:
        self.gate = gate
        self._lock = threading.Lock()  # the gate's caches are not shared across threads

    def decide(self, record: Record) -> SchemaDecision:
        with self._lock:
            verdict = self.gate.check(record)
        if verdict.outcome != "quarantine":
            return SchemaDecision(accepted=True)
        return SchemaDecision(accepted=False, reason=refusal_reason(verdict))


def refusal_reason(verdict: Verdict) -> str:
    """A refused verdict in words: the subject, its level, and every incompatibility found."""
    errors = [m for m in verdict.messages if m.startswith("{errorType")] or [verdict.reason]
    level = next(
        (m.group(1) for m in map(re.compile(r"compatibility: '(\w+)'").search, verdict.messages) if m), None
    )
    under = f" under {level}" if level else ""
    kind = verdict.kind.replace("_", " ")
    return f"{verdict.subject}: {kind}{under}: {'; '.join(e for e in errors if e)}"
