"""The registry's vocabulary, as pure data: schema types, compatibility levels, modes, versions.

Semantics follow the Confluent Schema Registry so that its clients work unchanged:

- a *subject* holds numbered *versions* (1, 2, …); each version points at a *schema* by its global
  *id*; the same schema (same canonical form, type and references) always gets the same id, in
  whatever subject it is registered;
- a soft-deleted version is hidden unless asked for (``deleted=true``) and ignored by compatibility
  checks; a permanent delete needs a soft delete first;
- the compatibility level of a subject is its own if set, else the global one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shopops.schemas.errors import (
    InvalidCompatibilityLevelError,
    InvalidModeError,
    InvalidSchemaError,
    InvalidVersionError,
)

#: The largest version number and id the API accepts (Confluent's are Java ints).
MAX_INT32 = 2**31 - 1


class SchemaType(StrEnum):
    AVRO = "AVRO"
    JSON = "JSON"

    @classmethod
    def parse(cls, value: Any) -> SchemaType:
        """The type named by a request; a missing type is AVRO, as in the Confluent API."""
        if value is None or value == "":
            return cls.AVRO
        if isinstance(value, str):
            try:
                return cls(value.upper())
            except ValueError:
                pass
        known = ", ".join(t.value for t in cls)
        if isinstance(value, str) and value.upper() == "PROTOBUF":
            raise InvalidSchemaError(f"Invalid schema type PROTOBUF: this registry supports {known}")
        raise InvalidSchemaError(f"Invalid schema type {value!r}: use one of {known}")


class CompatibilityLevel(StrEnum):
    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @classmethod
    def parse(cls, value: Any) -> CompatibilityLevel:
        if isinstance(value, str):
            try:
                return cls(value.upper())
            except ValueError:
                pass
        raise InvalidCompatibilityLevelError(value)

    @property
    def backward(self) -> bool:
        """New schemas must read data written with earlier ones."""
        return self in (self.BACKWARD, self.BACKWARD_TRANSITIVE, self.FULL, self.FULL_TRANSITIVE)

    @property
    def forward(self) -> bool:
        """Earlier schemas must read data written with new ones."""
        return self in (self.FORWARD, self.FORWARD_TRANSITIVE, self.FULL, self.FULL_TRANSITIVE)

    @property
    def transitive(self) -> bool:
        """Checked against every live version, not only the latest."""
        return self.value.endswith("_TRANSITIVE")


class Mode(StrEnum):
    READWRITE = "READWRITE"
    READONLY = "READONLY"
    #: Read-only, but unlike READONLY it does not block changing the mode back (Confluent's name).
    READONLY_OVERRIDE = "READONLY_OVERRIDE"

    @classmethod
    def parse(cls, value: Any) -> Mode:
        if isinstance(value, str):
            try:
                return cls(value.upper())
            except ValueError:
                pass
        raise InvalidModeError(value)

    @property
    def writable(self) -> bool:
        return self is Mode.READWRITE


def parse_version(value: str | int, *, allow_latest: bool = True) -> int | None:
    """A version from a path: a number in [1, 2^31-1], or ``latest``/``-1`` (returned as ``None``)."""
    text = str(value).strip()
    if allow_latest and text.lower() in ("latest", "-1"):
        return None
    try:
        number = int(text)
    except ValueError:
        raise InvalidVersionError(text) from None
    if not 1 <= number <= MAX_INT32:
        raise InvalidVersionError(text)
    return number


@dataclass(frozen=True, slots=True)
class SchemaReference:
    """A named dependency of a schema on a version of another subject (Confluent ``references``)."""

    name: str
    subject: str
    version: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "version": self.version}


@dataclass(frozen=True, slots=True)
class StoredSchema:
    """A schema as stored: global id, type, registered text and references."""

    id: int
    schema_type: SchemaType
    text: str
    references: tuple[SchemaReference, ...] = ()


@dataclass(frozen=True, slots=True)
class SubjectVersion:
    """One version of a subject and the schema it points at."""

    subject: str
    version: int
    schema: StoredSchema
    deleted: bool = False

    @property
    def id(self) -> int:
        return self.schema.id

    def to_dict(self) -> dict[str, Any]:
        """The Confluent body of ``GET /subjects/{s}/versions/{v}``."""
        body: dict[str, Any] = {
            "subject": self.subject,
            "version": self.version,
            "id": self.schema.id,
            "schema": self.schema.text,
        }
        if self.schema.schema_type is not SchemaType.AVRO:
            body["schemaType"] = self.schema.schema_type.value
        if self.schema.references:
            body["references"] = [r.to_dict() for r in self.schema.references]
        return body


@dataclass(frozen=True, slots=True)
class Registration:
    """The outcome of registering a schema under a subject."""

    id: int
    version: int
    #: False when the subject already had this schema as a live version (nothing was written).
    created: bool


@dataclass(frozen=True, slots=True)
class NewSchema:
    """A parsed schema ready to be stored: what identifies it and what is kept of it."""

    schema_type: SchemaType
    text: str
    #: sha-256 of type, canonical form and references: equal fingerprints are the same schema.
    fingerprint: str
    references: tuple[SchemaReference, ...] = field(default=())
