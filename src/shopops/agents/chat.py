"""The chat model the agents think with: any OpenAI-compatible endpoint, or the platform's gateway.

With ``agents.base_url`` set, LangChain's ``ChatOpenAI`` talks to that endpoint (vLLM, llama.cpp,
Ollama, OpenAI, or another shopops platform's ``/v1``). Unset, the agents use this process's own
LLM gateway in-process (:class:`GatewayChatModel`): the same routing, fallback chain, metrics and
built-in offline model that ``POST /v1/chat/completions`` serves, without an HTTP hop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, convert_to_openai_messages
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import SecretStr

from shopops.core.settings import AgentsSettings
from shopops.governance.model import Principal

#: Makes the chat model a run asks with, given the principal the run acts for.
ChatModelFactory = Callable[[Principal | None], BaseChatModel]


def openai_chat_model(settings: AgentsSettings, api_key: str | None) -> ChatModelFactory:
    """A factory of ``ChatOpenAI`` clients of ``agents.base_url`` (one client, reused)."""
    from langchain_openai import ChatOpenAI

    assert settings.base_url is not None
    model = ChatOpenAI(
        model=settings.model,
        base_url=settings.base_url,
        api_key=SecretStr(api_key or "none"),
        temperature=settings.temperature,
        timeout=settings.timeout_s,
        max_retries=1,
    )

    def factory(principal: Principal | None) -> BaseChatModel:
        return model

    return factory


class GatewayChatModel(BaseChatModel):
    """A LangChain chat model over the platform's LLM gateway, called in-process.

    ``complete`` takes a validated OpenAI chat request (``shopops.llm.model.ChatCompletionRequest``)
    and returns the gateway's ``ChatCompletion``; the backend that answered comes back in
    ``response_metadata["backend"]``.
    """

    complete: Callable[[Any], Any]
    model_name: str = "shopops-offline"
    temperature: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "shopops-gateway"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        from shopops.llm.model import parse_chat_request

        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": convert_to_openai_messages(messages),
            "temperature": self.temperature,
        }
        if stop:
            body["stop"] = stop
        for key in ("tools", "tool_choice"):
            if kwargs.get(key):
                body[key] = kwargs[key]
        completion = self.complete(parse_chat_request(body))
        reply = completion.choices[0].message
        calls = [
            {
                "name": c.function.name,
                "args": orjson.loads(c.function.arguments or "{}"),
                "id": c.id,
                "type": "tool_call",
            }
            for c in reply.tool_calls or ()
        ]
        fingerprint = completion.system_fingerprint or ""
        message = AIMessage(
            content=reply.content or "",
            tool_calls=calls,
            response_metadata={
                "model_name": completion.model,
                "system_fingerprint": fingerprint,
                "backend": fingerprint.removeprefix("shopops:"),
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def describe(settings: AgentsSettings) -> dict[str, Any]:
    """Where the agents' model calls go (for ``GET /v1/agents`` and the CLI)."""
    return {
        "model": settings.model,
        "endpoint": settings.base_url or "in-process gateway",
    }
