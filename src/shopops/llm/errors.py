"""Errors of the LLM gateway, answered the way the OpenAI API answers them.

Every error body is ``{"error": {"message", "type", "param", "code"}}`` so that OpenAI client
libraries (openai, LangChain, LlamaIndex) raise their usual exception with a readable message.
The classes also sit in the shopops error tree, so the CLI prints them like any other error.
"""

from __future__ import annotations

from typing import Any

from shopops.core.errors import BackendUnavailableError, InvalidInputError, NotFoundError, ShopopsError


class LlmError(ShopopsError):
    """Base of the gateway's errors; ``openai_type``/``openai_code`` fill the OpenAI error body."""

    openai_type = "invalid_request_error"
    openai_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        param: str | None = None,
        openai_code: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, hint=hint, **details)
        self.param = param
        if openai_code is not None:
            self.openai_code = openai_code

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI-style error body."""
        body: dict[str, Any] = {
            "message": str(self),
            "type": self.openai_type,
            "param": self.param,
            "code": self.openai_code,
        }
        if self.details:
            body["details"] = self.details
        return {"error": body}


class InvalidRequestError(LlmError, InvalidInputError):
    """The request body is malformed or asks for something the gateway does not do."""

    http_status = 400
    openai_code = "invalid_value"


class ModelNotFoundError(LlmError, NotFoundError):
    """No configured backend serves the model asked for."""

    openai_code = "model_not_found"


class UpstreamRejectedError(LlmError):
    """An upstream refused the request itself (a 4xx other than 408/429): passed on to the client.

    This is not a backend failure: the next backend would refuse the same request, so there is no
    fallback and the circuit breaker counts the upstream as healthy.
    """

    openai_code = "upstream_rejected"

    def __init__(self, status: int, body: dict[str, Any] | None, backend: str) -> None:
        error = (body or {}).get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        super().__init__(
            f"backend {backend!r} refused the request ({status}): {message or body or 'no details'}",
            param=error.get("param") if isinstance(error, dict) else None,
        )
        self.http_status = status
        if isinstance(error, dict) and isinstance(error.get("type"), str):
            self.openai_type = error["type"]
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            self.openai_code = error["code"]
        self.backend = backend


class BackendsUnavailableError(LlmError, BackendUnavailableError):
    """Every backend that serves the model failed or has its circuit open."""

    openai_type = "api_error"
    openai_code = "backends_unavailable"
