"""HTTP routes of the agents: ``POST /v1/agents/{name}/ask``, the triage webhook, reports, traces.

Asking an agent is ``write`` on ``Api::"agents.<name>"`` (policies/api.cedar): the support role
asks the support agent (a storefront's chat backend sends the signed-in customer's id), operators
ask every agent, and Alertmanager's key (role ``alerting``) posts alerts to the triage bot. Each
tool call an agent makes is then checked again, as the agent, by policies/agents.cedar.
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, ConfigDict, Field

from shopops.agents.service import AgentsService
from shopops.api.state import app_service
from shopops.core.errors import InvalidInputError, NotFoundError
from shopops.governance.api import current_principal, governed

router = APIRouter(prefix="/v1/agents", tags=["agents"])


class AskBody(BaseModel):
    """A question to an agent (or, for the triage bot, an alert)."""

    model_config = ConfigDict(extra="forbid")

    question: str | None = Field(default=None, max_length=4000, description="What to ask")
    customer_id: str | None = Field(
        default=None,
        description="The customer the support agent acts for (required for it), e.g. vn-c-0000001",
    )
    alert: dict[str, Any] | None = Field(default=None, description="Triage bot: one Alertmanager alert")
    alerts: list[dict[str, Any]] | None = Field(default=None, description="Triage bot: several alerts")


def agents_of(request: Request) -> AgentsService:
    """The app's agents (built on first use over the app's platform)."""
    return app_service(request, "agents", _build_agents)


def _build_agents(state: Any) -> AgentsService:
    from shopops.bootstrap import build_agents

    service = build_agents(state.platform)
    # Traces are flushed and the triage ledger closed however the server stops.
    atexit.register(service.close)
    book = service.toolbox.orders
    refresh = getattr(book, "refresh", None)
    if callable(refresh):
        # Read the order topics once now, not during the first customer's question.
        threading.Thread(target=refresh, kwargs={"force": True}, daemon=True).start()
    return service


def _eta_of(request: Request, service: AgentsService) -> Any | None:
    """This app's own ETA serving, when no ETA route is configured and the ML serving is mounted."""
    if service.toolbox.eta is not None:
        return None
    try:
        from shopops.ml.serving.api import serving_service
    except ImportError:
        return None
    from shopops.agents.tools import InProcessEta

    return InProcessEta(lambda: serving_service(request))


@router.get("", summary="The agents, their tools and the model they ask")
def list_agents(request: Request) -> list[dict[str, Any]]:
    return agents_of(request).describe()


@router.post(
    "/{name}/ask",
    summary="Ask an agent; the answer comes with its citations, tool calls and trace id",
    description="`support` needs `customer_id` (it acts for that customer and sees only their orders); "
    "`ops-copilot` answers operators' questions; `triage` takes an `alert` (or `alerts`) and writes a "
    "report to the triage topic and the audit trail, or a plain `question`.",
)
@governed(action="write", resource='Api::"agents.{name}"')
def ask(name: str, request: Request, body: AskBody = Body(...)) -> dict[str, Any]:
    service = agents_of(request)
    principal = current_principal(request)
    if name == "triage" and (body.alert is not None or body.alerts is not None):
        payload: Any = {"alerts": body.alerts} if body.alerts is not None else body.alert
        reports = service.triage(payload, caller=principal)
        return {"agent": "triage", "reports": [r.to_dict() for r in reports]}
    if body.alert is not None or body.alerts is not None:
        raise InvalidInputError(f"only the triage agent takes alerts, not {name}", hint="send a question")
    if not body.question:
        raise InvalidInputError("the question is missing", hint='send {"question": "..."}')
    answer = service.ask(
        name, body.question, caller=principal, customer_id=body.customer_id, eta=_eta_of(request, service)
    )
    return answer.to_dict()


@router.post(
    "/triage/alerts",
    summary="Alertmanager webhook: triage every firing alert of the notification",
    description="Point an Alertmanager receiver here "
    "(`webhook_configs: [{url: .../v1/agents/triage/alerts}]`) "
    "with a key of role `alerting`. Each firing alert gets one report, however often it is delivered.",
)
@governed(action="write", resource='Api::"agents.triage"')
def alertmanager(request: Request, payload: dict[str, Any] = Body(...)) -> dict[str, Any]:
    reports = agents_of(request).triage(payload, caller=current_principal(request))
    return {"reports": [r.to_dict() for r in reports]}


@router.get("/triage/reports", summary="The latest triage reports (newest first)")
def triage_reports(request: Request, limit: int = 20) -> list[dict[str, Any]]:
    if not 1 <= limit <= 500:
        raise InvalidInputError(f"limit must be between 1 and 500 (got {limit})")
    return agents_of(request).triage_reports(limit)


@router.get("/traces/{trace_id}", summary="The spans of one agent run: retrieval, model calls, tool calls")
def trace(trace_id: str, request: Request) -> list[dict[str, Any]]:
    if len(trace_id) != 32 or any(c not in "0123456789abcdef" for c in trace_id):
        raise InvalidInputError(
            f"invalid trace id {trace_id!r}", hint="32 hex digits, as an answer returns it"
        )
    spans = agents_of(request).trace(trace_id)
    if not spans:
        raise NotFoundError(
            f"no spans of trace {trace_id} here",
            hint="traces are read back from the file exporter (agents.tracing.exporter = file); "
            "with otlp look in the collector",
        )
    return spans
