"""Settings and a platform become the agents: their toolbox, knowledge base and chat model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.from_thread
from langchain_core.language_models.chat_models import BaseChatModel

from shopops.agents.chat import ChatModelFactory, GatewayChatModel, openai_chat_model
from shopops.agents.orders import EventLogOrderBook
from shopops.agents.service import AgentsService
from shopops.agents.tools import Toolbox, eta_predictor
from shopops.core.errors import ShopopsError
from shopops.core.logging import get_logger
from shopops.core.settings import Settings
from shopops.governance.model import Principal

if TYPE_CHECKING:
    from shopops.bootstrap import Platform

log = get_logger(__name__)


def agents_api_key(settings: Settings, secrets: Any | None) -> str | None:
    """The key for ``agents.base_url`` (and the ETA route): the setting, else secret ``agents_api_key``."""
    if settings.agents.api_key is not None:
        return settings.agents.api_key.get_secret_value()
    if secrets is not None:
        value = secrets.get("agents_api_key")
        if value is not None:
            return str(value.get_secret_value())
    return None


def gateway_chat_model(settings: Settings, gateway: Any) -> ChatModelFactory:
    """A chat model over the platform's own LLM gateway, in-process, asking as ``principal``
    (the gateway's personal-data policy decides per caller what reaches an external backend)."""

    def factory(principal: Principal | None) -> BaseChatModel:
        def call(request: Any) -> Any:
            try:
                # In the HTTP server: run the gateway on the server's event loop, where its
                # upstream clients live (the agent runs in a worker thread of that loop).
                result = anyio.from_thread.run(gateway.chat, request, principal)
            except RuntimeError:
                result = gateway.chat_sync(request, principal)  # the CLI: no loop in this thread
            return result.completion

        return GatewayChatModel(
            complete=call, model_name=settings.agents.model, temperature=settings.agents.temperature
        )

    return factory


def open_agents(
    platform: Platform,
    *,
    gateway: Any | None = None,
    chat_model: ChatModelFactory | None = None,
) -> AgentsService:
    """The agents of ``platform``: tools over its services, its knowledge base, its LLM gateway
    (or ``agents.base_url``). A part that cannot be opened leaves its tools saying so."""
    settings = platform.settings
    secrets = platform.governance.secrets
    key = agents_api_key(settings, secrets)
    retriever: Any | None
    try:
        retriever = platform.rag
    except (AttributeError, ShopopsError) as exc:
        log.warning("agents run without the knowledge base", error=str(exc))
        retriever = None
    drift = settings.schemas.drift
    toolbox = Toolbox(
        settings=settings.agents,
        home=settings.home,
        orders=EventLogOrderBook(platform.event_log),
        inventory=platform.inventory,
        reconciliation=lambda: platform.reconciliation,
        event_log=platform.event_log,
        eta=eta_predictor(settings.agents, key),
        quality=QualityProvider(platform),
        schema_changes_topic=drift.changes_topic,
        quarantine_topic=drift.quarantine_topic,
    )
    if chat_model is None:
        if settings.agents.base_url:
            chat_model = openai_chat_model(settings.agents, key)
        else:
            chat_model = gateway_chat_model(
                settings, gateway if gateway is not None else _gateway(platform, retriever)
            )
    return AgentsService(
        settings,
        governance=platform.governance,
        toolbox=toolbox,
        retriever=retriever,
        chat_model=chat_model,
        event_log=platform.event_log,
    )


def _gateway(platform: Platform, retriever: Any | None) -> Any:
    """The platform's LLM gateway: the one ``/v1/chat/completions`` serves in this process."""
    return platform.llm


class QualityProvider:
    """The data-quality service of the platform's settings, opened on first use, closed with the agents."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._service: Any | None = None

    def __call__(self) -> Any:
        if self._service is None:
            from shopops.bootstrap import build_quality

            platform = self.platform
            self._service = build_quality(platform.settings, lambda: platform.schema_client)
        return self._service

    def close(self) -> None:
        if self._service is not None:
            self._service.close()
            self._service = None
