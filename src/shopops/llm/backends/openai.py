"""The ``openai`` backend: any OpenAI-compatible endpoint (vLLM, llama.cpp server, Ollama,
OpenAI, Azure OpenAI's v1 API) over httpx, with timeouts and retries.

``base_url`` is what an OpenAI client would be given (``http://vllm:8000/v1``); requests go to
``{base_url}/chat/completions`` and ``{base_url}/embeddings``. Connection failures and 5xx/408
answers are retried with exponential back-off (``retries`` times); a timeout, a 429 (the upstream
sheds load) or a malformed answer fails over to the next backend at once; another 4xx is the
client's mistake and is passed back to it unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx
import orjson
from pydantic import Field, ValidationError, field_validator, model_validator

from shopops.core.errors import ConfigError
from shopops.core.logging import get_logger
from shopops.core.registry import BackendConfig
from shopops.llm.backends import BackendContext
from shopops.llm.errors import UpstreamRejectedError
from shopops.llm.model import (
    ChatCompletion,
    ChatCompletionRequest,
    EmbeddingRequest,
    SseDecoder,
    completion_chunks,
)
from shopops.llm.port import BackendFailure, ChatBackend

log = get_logger(__name__)

_RETRY_STATUS = frozenset({408, 500, 502, 503, 504})
#: Longest back-off between two attempts, whatever the attempt number.
MAX_BACKOFF_S = 5.0


class OpenAIBackend(ChatBackend):
    """An OpenAI-compatible upstream; the API key comes from the governance secret provider."""

    type_name = "openai"

    class Config(BackendConfig):
        name: str
        #: The endpoint's base URL, including its version path (``https://api.openai.com/v1``).
        base_url: str
        #: Public model name → the upstream's model name; ``{"*" = "*"}`` passes any name through.
        models: dict[str, str] = Field(default_factory=dict)
        embedding_models: dict[str, str] = Field(default_factory=dict)
        #: Name of the secret holding the API key (looked up in ``governance.secrets``); none: no key.
        api_key_secret: str | None = None
        #: ``Authorization`` (sent as ``Bearer <key>``) or another header that takes the bare key
        #: (``api-key`` for Azure OpenAI).
        api_key_header: str = "Authorization"
        #: Read timeout of one attempt (default: ``llm.timeout_s``).
        timeout_s: float | None = Field(default=None, gt=0)
        connect_timeout_s: float | None = Field(default=None, gt=0)
        #: Retries after a connection failure or a 5xx (default: ``llm.retries``).
        retries: int | None = Field(default=None, ge=0, le=10)
        retry_backoff_s: float | None = Field(default=None, ge=0)
        #: Prompts leave this machine's trust boundary (a managed API): personal data is redacted
        #: unless a policy permits it. ``false`` for a self-hosted server inside it.
        external: bool = True
        #: Region the endpoint runs in (residency input of the redaction policy); "" when unknown.
        region: str = ""
        #: ``policy`` (the Cedar ``send_pii`` decision), ``always`` or ``never``.
        redact_pii: Literal["policy", "always", "never"] = "policy"
        #: Extra headers and query parameters sent with every request (e.g. ``api-version``).
        headers: dict[str, str] = Field(default_factory=dict)
        query: dict[str, str] = Field(default_factory=dict)
        max_connections: int = Field(default=64, ge=1)

        @field_validator("base_url")
        @classmethod
        def _http_url(cls, value: str) -> str:
            if not value.startswith(("http://", "https://")):
                raise ValueError(f"base_url must be an http(s) URL, not {value!r}")
            return value.rstrip("/")

        @model_validator(mode="after")
        def _serves_something(self) -> OpenAIBackend.Config:
            if not self.models and not self.embedding_models:
                raise ValueError(
                    "give 'models' (public name -> upstream name, or {'*': '*'}) and/or 'embedding_models'"
                )
            return self

    def __init__(self, config: Config, *, context: BackendContext | None = None) -> None:
        context = context or BackendContext()
        defaults = context.defaults
        self.config = config
        self.name = config.name
        self.models = dict(config.models)
        self.embedding_models = dict(config.embedding_models)
        self.external = config.external
        self.region = config.region
        self.redact_pii = config.redact_pii
        self.retries = defaults.retries if config.retries is None else config.retries
        self.backoff_s = (
            defaults.retry_backoff_s if config.retry_backoff_s is None else config.retry_backoff_s
        )
        self.timeout = httpx.Timeout(
            config.timeout_s or defaults.timeout_s,
            connect=config.connect_timeout_s or defaults.connect_timeout_s,
        )
        self.headers = dict(config.headers)
        if config.api_key_secret:
            if context.secrets is None:
                raise ConfigError(f"LLM backend {self.name!r} needs a secret provider for its API key")
            key = context.secrets.get(config.api_key_secret)
            if key is None or not key.get_secret_value():
                raise ConfigError(
                    f"LLM backend {self.name!r}: secret {config.api_key_secret!r} is not set",
                    hint=f"provide it as {context.secrets.describe(config.api_key_secret)}",
                )
            value = key.get_secret_value()
            header = config.api_key_header
            self.headers[header] = f"Bearer {value}" if header.lower() == "authorization" else value
        # httpx's async pool belongs to the event loop that opened it: one client per loop.
        self._clients: dict[int, tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]] = {}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "base_url": self.config.base_url}

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        held = self._clients.get(id(loop))
        if held is not None and held[0] is loop:
            return held[1]
        for key, (other, _) in list(self._clients.items()):
            if other.is_closed():
                del self._clients[key]
        limits = httpx.Limits(
            max_connections=self.config.max_connections, max_keepalive_connections=self.config.max_connections
        )
        client = httpx.AsyncClient(
            base_url=self.config.base_url,
            headers=self.headers,
            params=self.config.query,
            timeout=self.timeout,
            limits=limits,
        )
        self._clients[id(loop)] = (loop, client)
        return client

    async def _send(self, path: str, body: dict[str, Any], *, stream: bool) -> httpx.Response:
        """POST with retries; a 2xx response (open, when ``stream``) or a raised failure."""
        client = self._client()
        failure: BackendFailure | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(min(MAX_BACKOFF_S, self.backoff_s * 2 ** (attempt - 1)))
            try:
                request = client.build_request("POST", path, content=orjson.dumps(body), headers=_JSON)
                response = await client.send(request, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failure = BackendFailure("connect", f"{self.config.base_url}: {exc or type(exc).__name__}")
                continue
            except httpx.TimeoutException as exc:
                raise BackendFailure("timeout", f"no answer within {self.timeout.read} s ({exc})") from exc
            except httpx.HTTPError as exc:  # the connection dropped mid-request
                failure = BackendFailure("connect", f"{type(exc).__name__}: {exc}")
                continue
            if response.status_code < 400:
                return response
            text = (await response.aread()).decode("utf-8", "replace")
            await response.aclose()
            status = response.status_code
            if status in _RETRY_STATUS or status >= 500:
                failure = BackendFailure("status", f"HTTP {status}: {text[:300]}", status=status)
                continue
            if status == 429:
                raise BackendFailure("status", f"HTTP 429 (rate limited): {text[:300]}", status=status)
            raise UpstreamRejectedError(status, _json_or_none(text), self.name)
        assert failure is not None
        raise failure

    async def chat(self, request: ChatCompletionRequest, upstream_model: str) -> ChatCompletion:
        body = request.upstream_body(upstream_model)
        body["stream"] = False
        body.pop("stream_options", None)
        response = await self._send("/chat/completions", body, stream=False)
        try:
            return ChatCompletion.model_validate(orjson.loads(response.content))
        except (orjson.JSONDecodeError, ValidationError) as exc:
            raise BackendFailure("invalid_response", f"not a chat completion: {str(exc)[:300]}") from exc

    async def stream(
        self, request: ChatCompletionRequest, upstream_model: str
    ) -> AsyncIterator[dict[str, Any]]:
        body = request.upstream_body(upstream_model)
        body["stream"] = True
        response = await self._send("/chat/completions", body, stream=True)
        try:
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                # An upstream that ignores "stream" answers in one piece: stream it ourselves.
                completion = ChatCompletion.model_validate(orjson.loads(await response.aread()))
                for chunk in completion_chunks(completion, include_usage=True):
                    yield chunk
                return
            decoder = SseDecoder()
            finished = False
            async for raw in response.aiter_bytes():
                for _, data in decoder.feed(raw):
                    parsed = _chunk(data)
                    if parsed is None:
                        return
                    finished = finished or _finished(parsed)
                    yield parsed
            for _, data in decoder.close():
                parsed = _chunk(data)
                if parsed is None:
                    return
                finished = finished or _finished(parsed)
                yield parsed
            if not finished:  # some servers omit [DONE]; a stream cut before its finish reason is broken
                raise BackendFailure("stream", "the stream ended before its finish reason")
        except (orjson.JSONDecodeError, ValidationError) as exc:
            raise BackendFailure(
                "invalid_response", f"not a chat completion stream: {str(exc)[:300]}"
            ) from exc
        except httpx.TimeoutException as exc:
            raise BackendFailure("timeout", f"the stream stalled for {self.timeout.read} s") from exc
        except httpx.HTTPError as exc:
            raise BackendFailure("stream", f"the stream broke: {type(exc).__name__}: {exc}") from exc
        finally:
            await response.aclose()

    async def embed(self, request: EmbeddingRequest, upstream_model: str) -> dict[str, Any]:
        response = await self._send("/embeddings", request.upstream_body(upstream_model), stream=False)
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise BackendFailure("invalid_response", f"not JSON: {exc}") from exc
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise BackendFailure("invalid_response", "an embeddings answer needs a 'data' list")
        body["model"] = request.model
        return body

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        held = self._clients.pop(id(loop), None)
        if held is not None and held[0] is loop:
            await held[1].aclose()

    def forget_clients(self) -> None:
        """Drop the pools of other event loops (their connections close with them)."""
        self._clients.clear()


_JSON = {"content-type": "application/json"}


def _json_or_none(text: str) -> dict[str, Any] | None:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"error": {"message": text[:500]}} if text else None
    return value if isinstance(value, dict) else None


def _finished(chunk: dict[str, Any]) -> bool:
    return any(isinstance(c, dict) and c.get("finish_reason") for c in chunk.get("choices") or ())


def _chunk(data: str) -> dict[str, Any] | None:
    """One event's data as a chunk; ``None`` at ``[DONE]``; an error event is a failure."""
    if data.strip() == "[DONE]":
        return None
    chunk = orjson.loads(data)
    if not isinstance(chunk, dict):
        raise BackendFailure("invalid_response", f"a stream chunk is not an object: {data[:200]}")
    if chunk.get("error"):
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else str(error)
        raise BackendFailure("stream", f"the upstream reported an error mid-stream: {message}")
    return chunk
