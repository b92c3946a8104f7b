"""The one error tree of shopops.

Every error a user can see derives from :class:`ShopopsError`, carries a message that says what
was wrong and, where it helps, a ``hint`` that says what to do. Entry points map the tree to HTTP
status codes (``http_status``) and CLI exit codes (``exit_code``).
"""

from __future__ import annotations

from typing import Any


class ShopopsError(Exception):
    """Root of every shopops error."""

    http_status: int = 500
    exit_code: int = 1
    code: str = "error"

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def to_dict(self) -> dict[str, Any]:
        """The JSON body an API answers with."""
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        if self.details:
            body["details"] = self.details
        return body


class ConfigError(ShopopsError):
    """The configuration is invalid: raised at start-up, before anything runs."""

    code = "config_error"
    exit_code = 78  # EX_CONFIG


class InvalidInputError(ShopopsError):
    """A request or command argument is malformed or out of range."""

    http_status = 422
    exit_code = 2
    code = "invalid_input"


class NotFoundError(ShopopsError):
    """The thing asked for does not exist."""

    http_status = 404
    exit_code = 3
    code = "not_found"


class ConflictError(ShopopsError):
    """The request conflicts with the current state (exists already, insufficient stock...)."""

    http_status = 409
    exit_code = 4
    code = "conflict"


class BackendUnavailableError(ShopopsError):
    """A backend server (Kafka, PostgreSQL, Redis...) cannot be reached or answered with an error."""

    http_status = 503
    exit_code = 69  # EX_UNAVAILABLE
    code = "backend_unavailable"
