"""Ports of the gateway: the chat backends it routes to, and the retrieval it answers from.

:class:`Retriever` and :class:`Embedder` describe what the offline model needs from retrieval
(``shopops.rag``'s service satisfies both); any object with these methods will do.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from shopops.llm.model import ChatCompletion, ChatCompletionRequest, EmbeddingRequest


class Passage(Protocol):
    """A retrieved chunk of a document."""

    @property
    def chunk_id(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def heading_path(self) -> tuple[str, ...]: ...
    @property
    def score(self) -> float: ...
    @property
    def lang(self) -> str: ...
    @property
    def doc_id(self) -> str: ...
    @property
    def title(self) -> str: ...


@runtime_checkable
class Retriever(Protocol):
    """Searches the knowledge base: the best ``k`` passages for ``query``."""

    def search(
        self, query: str, k: int = 5, *, lang: str | None = None, audience: str | None = None
    ) -> Sequence[Passage]: ...


@runtime_checkable
class Embedder(Protocol):
    """Normalised sentence embeddings (all-MiniLM-L6-v2: 384 dimensions)."""

    def embed(self, texts: list[str]) -> list[list[float]]: ...


class BackendFailure(Exception):  # noqa: N818 - a condition the gateway handles, not shown to users
    """A backend could not answer: the gateway falls back to the next one.

    ``kind``: ``connect``, ``timeout``, ``status`` (5xx, 408, 429), ``invalid_response``, ``stream``,
    ``circuit_open`` or ``internal``.
    """

    def __init__(self, kind: str, detail: str, *, status: int | None = None) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.status = status


@dataclass(frozen=True)
class Target:
    """How a backend would answer a model name: the model name it sends upstream."""

    backend: ChatBackend
    upstream_model: str


class ChatBackend(ABC):
    """One backend of the chain: an upstream endpoint or the built-in offline model.

    ``chat`` and ``stream`` raise :class:`BackendFailure` when the backend cannot answer and
    :class:`~shopops.llm.errors.UpstreamRejectedError` when the upstream refuses the request itself.
    """

    #: Name in the ``llm.backends`` chain (the value of ``x-shopops-backend``).
    name: str
    #: The backend's type in the registry (``offline``, ``openai``).
    type_name: str
    #: Sends prompts outside this process: personal data is redacted first unless permitted.
    external: bool
    #: Region the backend runs in ("" when unknown): a residency input of the redaction policy.
    region: str = ""
    #: ``policy`` (ask Cedar), ``always`` or ``never``.
    redact_pii: str = "policy"
    #: Public model name → the name sent upstream (``"*"`` matches any name).
    models: Mapping[str, str]
    embedding_models: Mapping[str, str]

    def resolve(self, model: str, *, embeddings: bool = False) -> str | None:
        """The upstream model name for ``model``, or ``None`` when this backend does not serve it."""
        table = self.embedding_models if embeddings else self.models
        if model in table:
            return table[model]
        if "*" in table:
            return model if table["*"] == "*" else table["*"]
        return None

    @abstractmethod
    async def chat(self, request: ChatCompletionRequest, upstream_model: str) -> ChatCompletion: ...

    @abstractmethod
    def stream(self, request: ChatCompletionRequest, upstream_model: str) -> AsyncIterator[dict[str, Any]]:
        """Chunks of a streamed completion (dicts in the OpenAI chunk format)."""

    async def embed(self, request: EmbeddingRequest, upstream_model: str) -> dict[str, Any]:
        raise BackendFailure("internal", f"backend {self.name!r} serves no embeddings")

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/chat/backends`` and ``shopops llm backends`` show (no secrets)."""
        return {
            "name": self.name,
            "type": self.type_name,
            "external": self.external,
            "region": self.region,
            "redact_pii": self.redact_pii,
            "models": dict(self.models),
            "embedding_models": dict(self.embedding_models),
        }

    async def aclose(self) -> None:  # noqa: B027 - optional for backends without resources
        """Release connections."""
