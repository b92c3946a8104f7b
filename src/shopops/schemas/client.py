"""The registry-client port: what the drift watch and the CLI need of a schema registry.

Backends (setting ``schemas.registry.type``):

- ``builtin`` — the platform's own registry, called in-process;
- ``http`` — any registry speaking the Confluent REST API (Confluent, Karapace, Apicurio's
  ``/apis/ccompat/v7``, or another shopops), see :mod:`shopops.schemas.backends.http_client`.

Both raise the registry's errors (:mod:`shopops.schemas.errors`) with the Confluent codes, so
callers handle one set of errors whichever registry answers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shopops.core.registry import BackendConfig
from shopops.schemas.errors import (
    IncompatibleSchemaError,
    SchemaNotFoundError,
    SubjectNotFoundError,
    VersionNotFoundError,
)
from shopops.schemas.formats import Change, Dependency, ParsedSchema, parse_schema
from shopops.schemas.model import (
    CompatibilityLevel,
    Registration,
    SchemaReference,
    SchemaType,
    StoredSchema,
    SubjectVersion,
)
from shopops.schemas.service import SchemaRegistry


@dataclass(frozen=True, slots=True)
class SchemaSpec:
    """A schema to register, look up or check: type, text and references."""

    schema_type: SchemaType
    text: str
    references: tuple[SchemaReference, ...] = ()


@dataclass(frozen=True, slots=True)
class Verdict:
    """A compatibility answer: the verdict and, when incompatible, why (Confluent-style messages)."""

    is_compatible: bool
    messages: list[str] = field(default_factory=list)


class RegistryClient(ABC):
    """A schema registry, embedded or remote."""

    #: Where it is (for logs and ``shopops schemas`` output).
    location: str = ""

    @abstractmethod
    def subjects(self, prefix: str = "") -> list[str]:
        """Live subjects starting with ``prefix``."""

    @abstractmethod
    def versions(self, subject: str) -> list[int]:
        """Live versions of ``subject`` (raises ``SubjectNotFoundError``)."""

    @abstractmethod
    def version(self, subject: str, version: int | None = None) -> SubjectVersion:
        """One version (``None``: the latest)."""

    @abstractmethod
    def schema(self, schema_id: int) -> StoredSchema:
        """The schema with a global id."""

    @abstractmethod
    def lookup(self, subject: str, spec: SchemaSpec) -> SubjectVersion | None:
        """The live version of ``subject`` holding this schema, or ``None``."""

    @abstractmethod
    def register(self, subject: str, spec: SchemaSpec) -> Registration:
        """Register ``spec``; raises :class:`IncompatibleSchemaError` (409) when the level refuses it."""

    @abstractmethod
    def check(self, subject: str, spec: SchemaSpec, version: int | None = None) -> Verdict:
        """Test ``spec`` against one version (``None``: every version the subject's level checks)."""

    @abstractmethod
    def compatibility(self, subject: str | None = None) -> CompatibilityLevel:
        """The level that applies to ``subject`` (its own, else the global one)."""

    @abstractmethod
    def set_compatibility(self, level: CompatibilityLevel, subject: str | None = None) -> None:
        """Set the level of ``subject`` (``None``: the global level)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    # -- built on the primitives, so that both backends share them --

    def latest(self, subject: str) -> SubjectVersion | None:
        """The latest live version of ``subject``, or ``None`` if it has none."""
        try:
            return self.version(subject, None)
        except (SubjectNotFoundError, VersionNotFoundError):
            return None

    def parse(self, stored: StoredSchema) -> ParsedSchema:
        """Parse a registered schema locally, fetching what it references."""
        return parse_schema(
            stored.schema_type, stored.text, stored.references, self._dependencies(stored.references)
        )

    def _dependencies(self, references: Sequence[SchemaReference]) -> list[Dependency]:
        ordered: list[Dependency] = []
        seen: set[tuple[str, int]] = set()

        def visit(ref: SchemaReference) -> None:
            key = (ref.subject, ref.version)
            if key in seen:
                return
            seen.add(key)
            found = self.version(ref.subject, ref.version)
            for inner in found.schema.references:
                visit(inner)
            ordered.append(Dependency(ref.name, found.schema.schema_type, found.schema.text))

        for ref in references:
            visit(ref)
        return ordered

    def diff(
        self, subject: str, old: int | None, new: int | None
    ) -> tuple[SubjectVersion, SubjectVersion, list[Change], list[Change]]:
        """Two versions and their differences both ways: (old, new, new reading old, old reading new)."""
        a, b = self.version(subject, old), self.version(subject, new)
        pa, pb = self.parse(a.schema), self.parse(b.schema)
        backward = pb.changes_from(
            pa, reader_role=f"new schema (v{b.version})", writer_role=f"old schema (v{a.version})"
        )
        forward = pa.changes_from(
            pb, reader_role=f"old schema (v{a.version})", writer_role=f"new schema (v{b.version})"
        )
        return a, b, backward, forward

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BuiltinRegistryClient(RegistryClient):
    """The platform's own registry, called in-process (no HTTP)."""

    class Config(BackendConfig):
        """The ``builtin`` client has no options: it uses ``schemas.store``."""

    def __init__(self, config: Config, home: Path, builtin: Callable[[], SchemaRegistry], **_: Any) -> None:
        self.config = config
        self.registry = builtin()
        self.location = "built-in registry"

    def subjects(self, prefix: str = "") -> list[str]:
        return self.registry.subjects(prefix)

    def versions(self, subject: str) -> list[int]:
        return self.registry.versions(subject)

    def version(self, subject: str, version: int | None = None) -> SubjectVersion:
        return self.registry.version(subject, version)

    def schema(self, schema_id: int) -> StoredSchema:
        return self.registry.schema(schema_id)

    def lookup(self, subject: str, spec: SchemaSpec) -> SubjectVersion | None:
        try:
            return self.registry.lookup(subject, spec.schema_type, spec.text, spec.references)
        except (SubjectNotFoundError, SchemaNotFoundError):
            return None

    def register(self, subject: str, spec: SchemaSpec) -> Registration:
        return self.registry.register(subject, spec.schema_type, spec.text, spec.references)

    def check(self, subject: str, spec: SchemaSpec, version: int | None = None) -> Verdict:
        report = self.registry.check_compatibility(
            subject, version, spec.schema_type, spec.text, spec.references, all_versions=version is None
        )
        return Verdict(report.is_compatible, report.messages)

    def compatibility(self, subject: str | None = None) -> CompatibilityLevel:
        return self.registry.compatibility(subject)

    def set_compatibility(self, level: CompatibilityLevel, subject: str | None = None) -> None:
        self.registry.set_compatibility(level, subject)

    def close(self) -> None:
        """Nothing to release: the platform owns the registry."""


__all__ = [
    "BuiltinRegistryClient",
    "IncompatibleSchemaError",
    "RegistryClient",
    "SchemaSpec",
    "Verdict",
]
