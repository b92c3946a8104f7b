"""Backends of the gateway, chosen per entry of ``llm.backends`` by its ``type``.

``offline`` — the built-in offline model (retrieval, extractive answers, tool selection by
embeddings) and the MiniLM embedder. ``openai`` — any OpenAI-compatible endpoint: vLLM,
llama.cpp server, Ollama, OpenAI, Azure OpenAI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shopops.core.registry import BackendRegistry
from shopops.governance.port import SecretProvider
from shopops.llm.port import ChatBackend, Embedder, Retriever

LLM_BACKENDS: BackendRegistry[ChatBackend] = BackendRegistry(
    "LLM",
    {
        "offline": "shopops.llm.backends.offline:OfflineBackend",
        "openai": "shopops.llm.backends.openai:OpenAIBackend",
    },
)


@dataclass(frozen=True)
class Defaults:
    """Section-wide defaults a backend's own options override."""

    timeout_s: float = 60.0
    connect_timeout_s: float = 3.0
    retries: int = 2
    retry_backoff_s: float = 0.2


@dataclass(frozen=True)
class BackendContext:
    """What backends are built with besides their options."""

    defaults: Defaults = field(default_factory=Defaults)
    secrets: SecretProvider | None = None
    embedder: Callable[[], Embedder | None] = lambda: None
    retriever: Callable[[], Retriever | None] = lambda: None
