"""Errors of the governance plane, in the platform's error tree."""

from __future__ import annotations

from shopops.core.errors import ShopopsError


class AuthenticationError(ShopopsError):
    """No credentials, or credentials that match no active API key."""

    http_status = 401
    exit_code = 77  # EX_NOPERM
    code = "unauthenticated"


class PermissionDeniedError(ShopopsError):
    """The principal is known but no policy permits the request (or one forbids it)."""

    http_status = 403
    exit_code = 77
    code = "forbidden"


class PolicyLoadError(ShopopsError):
    """A policy file, the schema or a policy test file is malformed; the previous set stays in force."""

    http_status = 422
    exit_code = 78
    code = "invalid_policy"


class AuditIntegrityError(ShopopsError):
    """The audit trail was edited, reordered, or had records removed."""

    http_status = 409
    exit_code = 1
    code = "audit_broken"


class SecretError(ShopopsError):
    """A secret is missing, empty, or its provider cannot be read."""

    http_status = 500
    exit_code = 78
    code = "secret_error"
