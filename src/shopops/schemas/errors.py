"""Registry errors with the Confluent Schema Registry's error codes and messages.

Every error carries ``error_code`` (``40401``, ``42201``, ``409`` …); its HTTP status is the code's
first three digits. The API answers ``{"error_code": ..., "message": ...}`` exactly as the Confluent
registry does, so its clients raise their usual exceptions. Each error also sits in the shopops
error tree (not found, invalid input, conflict, backend unavailable) for the CLI's exit codes.
"""

from __future__ import annotations

from typing import Any, Self

from shopops.core.errors import (
    BackendUnavailableError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    ShopopsError,
)


class RegistryError(ShopopsError):
    """Root of the registry's errors; ``error_code`` is the Confluent code."""

    error_code: int = 50001
    code = "schema_registry_error"

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        super().__init__(message, hint=hint, **details)
        self.http_status = self.error_code // 100 if self.error_code >= 1000 else self.error_code

    def to_confluent(self) -> dict[str, Any]:
        """The body the Confluent API answers with."""
        return {"error_code": self.error_code, "message": self.message}

    @classmethod
    def from_message(cls, message: str, error_code: int | None = None) -> Self:
        """This error with a message as another registry worded it (the HTTP client's errors).

        Subclasses build their message from arguments (a subject, a version); an answer from a
        remote registry already has one, so the subclass's own constructor is bypassed.
        """
        exc = cls.__new__(cls)
        RegistryError.__init__(exc, message)
        if error_code is not None:
            exc.error_code = error_code
            exc.http_status = error_code // 100 if error_code >= 1000 else error_code
        return exc


# --- 404 ------------------------------------------------------------------------------------------


class RegistryNotFoundError(RegistryError, NotFoundError):
    error_code = 40400
    code = "not_found"


class SubjectNotFoundError(RegistryNotFoundError):
    error_code = 40401

    def __init__(self, subject: str) -> None:
        super().__init__(f"Subject '{subject}' not found.", hint="list subjects with GET /subjects")


class VersionNotFoundError(RegistryNotFoundError):
    error_code = 40402

    def __init__(self, subject: str, version: int | str) -> None:
        super().__init__(
            f"Version {version} not found.", hint=f"list the versions with GET /subjects/{subject}/versions"
        )


class SchemaNotFoundError(RegistryNotFoundError):
    error_code = 40403

    def __init__(self, what: int | str | None = None) -> None:
        super().__init__("Schema not found" if what is None else f"Schema {what} not found")


class SubjectSoftDeletedError(RegistryNotFoundError):
    error_code = 40404

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' was soft deleted.Set permanent=true to delete permanently",
        )


class SubjectNotSoftDeletedError(RegistryNotFoundError):
    error_code = 40405

    def __init__(self, subject: str) -> None:
        super().__init__(f"Subject '{subject}' was not deleted first before being permanently deleted")


class VersionSoftDeletedError(RegistryNotFoundError):
    error_code = 40406

    def __init__(self, subject: str, version: int) -> None:
        super().__init__(
            f"Subject '{subject}' Version {version} was soft deleted.Set permanent=true to delete permanently"
        )


class VersionNotSoftDeletedError(RegistryNotFoundError):
    error_code = 40407

    def __init__(self, subject: str, version: int) -> None:
        super().__init__(
            f"Subject '{subject}' Version {version} was not deleted first before being permanently deleted"
        )


class SubjectCompatibilityNotConfiguredError(RegistryNotFoundError):
    error_code = 40408

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' does not have subject-level compatibility configured",
            hint="add ?defaultToGlobal=true to get the global level",
        )


class SubjectModeNotConfiguredError(RegistryNotFoundError):
    error_code = 40409

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' does not have subject-level mode configured",
            hint="add ?defaultToGlobal=true to get the global mode",
        )


# --- 409 ------------------------------------------------------------------------------------------


class IncompatibleSchemaError(RegistryError, ConflictError):
    """The schema breaks the subject's compatibility level; ``incompatibilities`` says how."""

    error_code = 409
    code = "incompatible_schema"
    #: The incompatibilities, one message each (Confluent's verbose format).
    messages: list[str]

    def __init__(self, subject: str, messages: list[str]) -> None:
        detail = ", ".join(messages)
        super().__init__(
            f'Schema being registered is incompatible with an earlier schema for subject "{subject}", '
            f"details: [{detail}]",
            hint="make the change compatible (e.g. give a new field a default) or change the subject's "
            "compatibility level with PUT /config/{subject}",
        )
        self.messages = messages


# --- 422 ------------------------------------------------------------------------------------------


class RegistryInvalidInputError(RegistryError, InvalidInputError):
    error_code = 42200
    code = "invalid_input"


class InvalidSchemaError(RegistryInvalidInputError):
    error_code = 42201
    code = "invalid_schema"


class InvalidVersionError(RegistryInvalidInputError):
    error_code = 42202

    def __init__(self, version: str) -> None:
        super().__init__(
            f"The specified version '{version}' is not a valid version id. Allowed values are between "
            '[1, 2^31-1] and the string "latest"'
        )


class InvalidCompatibilityLevelError(RegistryInvalidInputError):
    error_code = 42203

    def __init__(self, value: object) -> None:
        super().__init__(
            f"Invalid compatibility level {value!r}. Valid values are none, backward, forward, full, "
            "backward_transitive, forward_transitive, and full_transitive"
        )


class InvalidModeError(RegistryInvalidInputError):
    error_code = 42204

    def __init__(self, value: object) -> None:
        super().__init__(
            f"Invalid mode {value!r}. Valid values are READWRITE, READONLY and READONLY_OVERRIDE "
            "(IMPORT is not supported by this registry)"
        )


class OperationNotPermittedError(RegistryInvalidInputError):
    error_code = 42205


class ReferenceExistsError(RegistryInvalidInputError):
    error_code = 42206


class InvalidSubjectError(RegistryInvalidInputError):
    error_code = 42208

    def __init__(self, subject: str, why: str) -> None:
        super().__init__(f"The specified subject '{subject}' is not valid: {why}")


class SchemaTooLargeError(RegistryInvalidInputError):
    error_code = 42209

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"Schema too large: the request body has {size} bytes, the limit is {limit}",
            hint="raise schemas.max_request_bytes if such schemas are legitimate",
        )


class MalformedRequestError(RegistryInvalidInputError):
    """The body is not JSON or lacks a field; Confluent answers these with HTTP 400 / code 400."""

    error_code = 400


# --- 5xx ------------------------------------------------------------------------------------------


class StoreError(RegistryError, BackendUnavailableError):
    """The schema store failed; nothing was written."""

    error_code = 50001
    code = "schema_store_error"


class RegistryUnavailableError(RegistryError, BackendUnavailableError):
    """An external registry (HTTP client backend) cannot be reached or failed."""

    error_code = 50003
    code = "schema_registry_unavailable"
