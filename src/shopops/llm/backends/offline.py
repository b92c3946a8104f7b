"""The ``offline`` backend: the built-in model and the MiniLM embedder, in this process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from pydantic import Field

from shopops.core.errors import ShopopsError
from shopops.core.registry import BackendConfig
from shopops.llm.backends import BackendContext
from shopops.llm.embedder import DIMENSIONS
from shopops.llm.embedder import MODEL_NAME as EMBEDDING_MODEL
from shopops.llm.errors import InvalidRequestError, LlmError
from shopops.llm.model import (
    ChatCompletion,
    ChatCompletionRequest,
    EmbeddingRequest,
    completion_chunks,
    count_tokens,
    embedding_response,
)
from shopops.llm.offline import MODEL_NAME, OfflineModel, OfflineOptions
from shopops.llm.port import BackendFailure, ChatBackend


class OfflineBackend(ChatBackend):
    """Answers in process; never sends anything anywhere, so prompts reach it as they are."""

    type_name = "offline"
    external = False

    class Config(BackendConfig):
        name: str = "offline"
        #: Model names it answers to (public name → itself); add aliases to make it a fallback.
        models: dict[str, str] = Field(default_factory=lambda: {MODEL_NAME: MODEL_NAME})
        embedding_models: dict[str, str] = Field(default_factory=lambda: {EMBEDDING_MODEL: EMBEDDING_MODEL})
        tool_threshold: float = Field(default=OfflineOptions.tool_threshold, ge=0, le=2)
        k: int = Field(default=OfflineOptions.k, ge=1, le=50)
        max_sentences: int = Field(default=OfflineOptions.max_sentences, ge=1, le=20)
        min_relevance: float = Field(default=OfflineOptions.min_relevance, ge=0, le=1)
        answer_passages: int = Field(default=OfflineOptions.answer_passages, ge=1, le=50)

    def __init__(self, config: Config, *, context: BackendContext | None = None) -> None:
        context = context or BackendContext()
        self.config = config
        self.name = config.name
        self.models = dict(config.models)
        self.embedding_models = dict(config.embedding_models)
        self.redact_pii = "never"
        self._embedder = context.embedder
        self.model = OfflineModel(
            embedder=context.embedder,
            retriever=context.retriever,
            options=OfflineOptions(
                config.tool_threshold,
                config.k,
                config.max_sentences,
                config.min_relevance,
                config.answer_passages,
            ),
        )

    async def chat(self, request: ChatCompletionRequest, upstream_model: str) -> ChatCompletion:
        try:
            return await anyio.to_thread.run_sync(self.model.complete, request, request.model)
        except LlmError:
            raise
        except ShopopsError as exc:
            raise BackendFailure("internal", str(exc)) from exc
        except Exception as exc:  # a fault of the model must not take the request down with it
            raise BackendFailure("internal", f"{type(exc).__name__}: {exc}") from exc

    async def stream(
        self, request: ChatCompletionRequest, upstream_model: str
    ) -> AsyncIterator[dict[str, Any]]:
        completion = await self.chat(request, upstream_model)
        for chunk in completion_chunks(completion, include_usage=True):
            yield chunk

    async def embed(self, request: EmbeddingRequest, upstream_model: str) -> dict[str, Any]:
        texts = request.texts()
        if request.dimensions is not None and request.dimensions != DIMENSIONS:
            raise InvalidRequestError(
                f"{request.model} has {DIMENSIONS} dimensions; 'dimensions' cannot change that",
                hint=f"leave 'dimensions' out or set it to {DIMENSIONS}",
                param="dimensions",
            )
        embedder = self._embedder()
        if embedder is None:
            raise BackendFailure("internal", "no embedder is available")
        try:
            vectors = await anyio.to_thread.run_sync(embedder.embed, texts)
        except ShopopsError as exc:
            raise BackendFailure("internal", str(exc)) from exc
        tokens = sum(count_tokens(t) for t in texts)
        return embedding_response(request.model, vectors, request.encoding_format, tokens)
