"""The agents' use cases: ask an agent, triage alerts, read traces and triage reports."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import orjson

from shopops.agents.chat import ChatModelFactory
from shopops.agents.chat import describe as describe_chat
from shopops.agents.definitions import AGENTS, agent_named
from shopops.agents.model import (
    AgentAnswer,
    Alert,
    Citation,
    TriageReport,
    parse_alerts,
    runbook_steps,
    validate_customer_id,
)
from shopops.agents.runtime import AgentRuntime, Retriever
from shopops.agents.tools import TOOLS, Toolbox
from shopops.agents.tracing import AgentTracing
from shopops.agents.triage import (
    TriageLedger,
    already_on_topic,
    evidence_of,
    plan_for,
    publish,
    question_for,
    read_reports,
)
from shopops.core.errors import InvalidInputError, ShopopsError
from shopops.core.logging import get_logger
from shopops.core.settings import Settings
from shopops.events.port import EventLog
from shopops.governance.model import AuditEntry, AuditKind, Principal

log = get_logger(__name__)

MAX_QUESTION = 4_000


class AgentsService:
    """The three agents of one process, sharing one toolbox, one tracer and one chat model."""

    def __init__(
        self,
        settings: Settings,
        *,
        governance: Any,
        toolbox: Toolbox,
        retriever: Retriever | None,
        chat_model: ChatModelFactory,
        event_log: EventLog | None,
        tracing: AgentTracing | None = None,
        triage_lease_s: float = 120.0,
    ) -> None:
        self.settings = settings
        self.config = settings.agents
        self.governance = governance
        self.toolbox = toolbox
        self.event_log = event_log
        self.tracing = tracing or AgentTracing(self.config.tracing, settings.home)
        self.runtimes = {
            name: AgentRuntime(
                definition,
                chat_model=chat_model,
                toolbox=toolbox,
                governance=governance,
                retriever=retriever,
                tracing=self.tracing,
                passages=self.config.passages,
                max_steps=self.config.max_steps,
            )
            for name, definition in AGENTS.items()
        }
        self._ledger: TriageLedger | None = None
        self._triage_lease_s = triage_lease_s
        self._lock = threading.Lock()

    # --- asking ---------------------------------------------------------------------------------

    def ask(
        self,
        name: str,
        question: str,
        *,
        caller: Principal | None = None,
        customer_id: str | None = None,
        eta: Any | None = None,
    ) -> AgentAnswer:
        """Run agent ``name`` on ``question``; the support agent acts for ``customer_id``. ``eta``:
        an ETA model the caller has at hand (the HTTP app's own serving), used when none is configured."""
        definition = agent_named(name)
        text = (question or "").strip()
        if not text:
            raise InvalidInputError("the question is empty", hint="ask something, e.g. 'Where is my order?'")
        if len(text) > MAX_QUESTION:
            raise InvalidInputError(
                f"the question is {len(text)} characters long; at most {MAX_QUESTION} are accepted",
                hint="shorten it",
            )
        if definition.acts_for_customer:
            if not customer_id:
                raise InvalidInputError(
                    f"the {name} agent acts for one customer: give customer_id",
                    hint=(
                        "e.g. customer_id = vn-c-0000001 (the storefront passes the signed-in customer's id)"
                    ),
                )
            customer_id = validate_customer_id(customer_id)
        elif customer_id:
            raise InvalidInputError(
                f"customer_id applies to the support agent only, not to {name}",
                hint="leave it out, or ask the support agent",
            )
        return self.runtimes[name].run(text, caller=caller, customer_id=customer_id, eta=eta)

    # --- triage ---------------------------------------------------------------------------------

    @property
    def ledger(self) -> TriageLedger:
        with self._lock:
            if self._ledger is None:
                self._ledger = TriageLedger(self.settings.home / "agents" / "triage.db", self._triage_lease_s)
            return self._ledger

    def triage(self, payload: Any, *, caller: Principal | None = None) -> list[TriageReport]:
        """Triage every alert of an Alertmanager webhook body (or one alert, or a list of them).

        Each firing alert gets one report on the triage topic and one audit record, however often
        it is delivered; a resolved alert is acknowledged without a report.
        """
        alerts = parse_alerts(payload)
        if self.event_log is None:
            raise InvalidInputError(
                "triage needs the event log to write its reports to", hint="run it inside the platform"
            )
        return [self._triage_one(alert, caller) for alert in alerts]

    def _triage_one(self, alert: Alert, caller: Principal | None) -> TriageReport:
        assert self.event_log is not None
        topic = self.config.triage_topic
        if alert.status != "firing":
            return TriageReport(
                alert.triage_id,
                alert,
                f"{alert.name} is {alert.status}; nothing to triage.",
                [],
                [],
                [],
                "",
                status="skipped",
            )
        owner = f"{uuid.uuid4().hex[:12]}"
        stored = self.ledger.claim(alert.triage_id, owner)
        if stored is not None:
            return self._stored(stored, alert)
        try:
            existing = already_on_topic(self.event_log, topic, alert.triage_id)
            if existing is not None:
                # A worker wrote it and died before it could mark the claim done.
                self.ledger.written(alert.triage_id, owner, existing)
                return self._stored(existing, alert)
            runtime = self.runtimes["triage"]
            answer = runtime.run(
                question_for(alert),
                caller=caller,
                context=orjson.dumps(alert.to_dict(), option=orjson.OPT_INDENT_2).decode(),
                ask=f"runbook {alert.name} {alert.annotations.get('summary', '')}".strip(),
                planned=plan_for(alert),
                region=alert.region or None,
            )
            runbooks = [p for p in answer.passages if "runbook" in p.source] or answer.passages
            steps, where = self._steps(runbooks, alert, runtime)
            if where is not None:
                runbooks = [where, *[p for p in runbooks if p is not where]]
            report = TriageReport(
                triage_id=alert.triage_id,
                alert=alert,
                summary=answer.answer,
                evidence=evidence_of(answer.tool_calls),
                runbook_steps=steps,
                sources=list(dict.fromkeys(p.source for p in runbooks[:3])),
                trace_id=answer.trace_id,
                answer=answer,
            )
            principal = runtime.principal_for(caller, None, alert.region or None)
            self.governance.authorize_tool_call(
                principal,
                "publish_triage_report",
                read_only=False,
                region=alert.region,
                arguments={"topic": topic},
            )
            body = report.to_dict()
            publish(self.event_log, topic, alert.triage_id, body)
            self.ledger.written(alert.triage_id, owner, body)
        except BaseException:
            self.ledger.release(alert.triage_id, owner)
            raise
        self.governance.record(
            [
                AuditEntry(
                    AuditKind.TOOL,
                    principal.label,
                    "publish_triage_report",
                    f'Alert::"{alert.name}"',
                    "done",
                    details={
                        "triage_id": alert.triage_id,
                        "fingerprint": alert.fingerprint,
                        "topic": topic,
                        "trace_id": report.trace_id,
                        "on_behalf_of": caller.label if caller else "",
                        "evidence": [f"{e['tool']}:{e['status']}" for e in report.evidence],
                        "runbooks": report.sources,
                    },
                )
            ]
        )
        log.info("alert triaged", alert=alert.name, triage_id=alert.triage_id, trace_id=report.trace_id)
        return report

    @staticmethod
    def _steps(
        passages: list[Citation], alert: Alert, runtime: AgentRuntime
    ) -> tuple[list[str], Citation | None]:
        """The numbered steps of the runbook that fits best (that of the best passage): from the
        passages the answer was given, else from a search of that runbook's steps."""
        if not passages:
            return [], None
        top = passages[0]
        candidates = [p for p in passages if p.source == top.source]
        if runtime.retriever is not None:
            try:
                found = runtime.retriever.search(
                    f"{top.title} steps", 5, audience=runtime.definition.audience
                )
            except ShopopsError:
                found = []
            candidates += [
                Citation(0, p.source, p.title, " > ".join(p.heading_path), p.chunk_id, p.text)
                for p in found
                if p.source == top.source
            ]
        for numbered_only in (True, False):
            for passage in [*candidates, *passages]:
                steps = runbook_steps(passage.text, numbered_only=numbered_only)
                if len(steps) >= 2:
                    return steps, passage
        return [], None

    @staticmethod
    def _stored(body: dict[str, Any], alert: Alert) -> TriageReport:
        return TriageReport(
            triage_id=str(body.get("triage_id", alert.triage_id)),
            alert=alert,
            summary=str(body.get("summary", "")),
            evidence=list(body.get("evidence", [])),
            runbook_steps=list(body.get("runbook_steps", [])),
            sources=list(body.get("sources", [])),
            trace_id=str(body.get("trace_id", "")),
            written_at=str(body.get("written_at", "")),
            status="duplicate",
        )

    def triage_reports(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest reports on the triage topic, newest first."""
        if self.event_log is None:
            return []
        return read_reports(self.event_log, self.config.triage_topic, limit)

    # --- reading --------------------------------------------------------------------------------

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        """The spans of one run (from the file or memory exporter)."""
        return self.tracing.spans(trace_id)

    def describe(self) -> list[dict[str, Any]]:
        """Every agent with its tools and the model it uses."""
        chat = describe_chat(self.config)
        return [
            {
                "name": d.name,
                "title": d.title,
                "purpose": d.purpose,
                "acts_for_customer": d.acts_for_customer,
                "tools": [{"name": t, "description": TOOLS[t].description} for t in d.tools],
                **chat,
            }
            for d in AGENTS.values()
        ]

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
        self.toolbox.close()
        self.tracing.shutdown()
