"""``/v1/chat/completions`` and ``/v1/embeddings``: the OpenAI API, so that any OpenAI client,
LangChain or LlamaIndex can use the platform as its model; ``/v1/chat/backends`` shows the chain.

Errors answer in OpenAI's shape (``{"error": {"message", "type", "param", "code"}}``); every answer
names the backend that gave it in the ``x-shopops-backend`` header (and ``system_fingerprint``),
and the backends that failed before it in ``x-shopops-fallbacks``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from shopops.core.errors import ShopopsError
from shopops.llm.errors import LlmError
from shopops.llm.model import decode_json_body, parse_chat_request, parse_embedding_request
from shopops.llm.service import Attempt, LlmGateway

router = APIRouter(tags=["llm"])

BACKEND_HEADER = "x-shopops-backend"
FALLBACKS_HEADER = "x-shopops-fallbacks"

_CHAT_EXAMPLE = {
    "model": "shopops-offline",
    "messages": [{"role": "user", "content": "How do I rotate an API key?"}],
}
_EMBED_EXAMPLE = {"model": "all-MiniLM-L6-v2", "input": ["refund policy", "chính sách hoàn tiền"]}


def gateway_of(request: Request) -> LlmGateway:
    gateway: LlmGateway = request.app.state.platform.llm
    return gateway


def _headers(backend: str | None, attempts: Sequence[Attempt]) -> dict[str, str]:
    headers = {BACKEND_HEADER: backend} if backend else {}
    if attempts:
        headers[FALLBACKS_HEADER] = ", ".join(f"{a.backend}={a.reason}" for a in attempts)
    return headers


def _json(body: Any, headers: dict[str, str], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _error(exc: ShopopsError) -> Response:
    if isinstance(exc, LlmError):
        body = exc.to_openai()
    else:
        body = {"error": {"message": str(exc), "type": exc.code, "param": None, "code": exc.code}}
    attempts = [Attempt(**a) for a in exc.details.get("attempts", [])] if isinstance(exc, LlmError) else []
    headers = _headers(getattr(exc, "backend", None), attempts)
    return _json(body, headers, exc.http_status)


@router.post(
    "/v1/chat/completions",
    summary="Chat completion (OpenAI-compatible; streaming with stream=true)",
    openapi_extra={
        "requestBody": {"content": {"application/json": {"example": _CHAT_EXAMPLE}}, "required": True}
    },
)
async def chat_completions(request: Request) -> Response:
    try:
        body = parse_chat_request(decode_json_body(await request.body()))
        principal = getattr(request.state, "principal", None)
        gateway = gateway_of(request)
        if body.stream:
            stream = await gateway.stream(body, principal)
            headers = {**_headers(stream.backend, stream.attempts), "cache-control": "no-cache"}
            return StreamingResponse(stream.body, media_type="text/event-stream", headers=headers)
        result = await gateway.chat(body, principal)
    except ShopopsError as exc:
        return _error(exc)
    return _json(result.completion.model_dump(mode="json"), _headers(result.backend, result.attempts))


@router.post(
    "/v1/embeddings",
    summary="Embeddings (OpenAI-compatible): all-MiniLM-L6-v2 built in, upstream models by name",
    openapi_extra={
        "requestBody": {"content": {"application/json": {"example": _EMBED_EXAMPLE}}, "required": True}
    },
)
async def embeddings(request: Request) -> Response:
    try:
        body = parse_embedding_request(decode_json_body(await request.body()))
        result = await gateway_of(request).embeddings(body, getattr(request.state, "principal", None))
    except ShopopsError as exc:
        return _error(exc)
    return _json(result.body, _headers(result.backend, result.attempts))


@router.get("/v1/chat/backends", summary="The backend chain: models, circuit state, consecutive failures")
def backends(request: Request) -> list[dict[str, Any]]:
    return gateway_of(request).status()
