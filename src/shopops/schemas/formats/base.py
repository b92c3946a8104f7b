"""What every schema format provides: parsing, a canonical form, and reader/writer compatibility."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from shopops.schemas.model import NewSchema, SchemaReference, SchemaType


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between a writer's and a reader's schema, in words.

    ``compatible`` says whether the reader still reads what the writer wrote despite it. Only
    incompatible changes make a schema incompatible; compatible ones are shown by ``diff``.
    """

    kind: str
    path: str
    description: str
    compatible: bool = False
    additional_info: str = ""

    def confluent(self) -> str:
        """The message format of the Confluent registry's ``verbose=true`` answers."""
        text = f"{{errorType:'{self.kind}', description:'{self.description}'"
        if self.additional_info:
            text += f", additionalInfo:'{self.additional_info}'"
        return text + "}"


@dataclass(frozen=True, slots=True)
class Dependency:
    """A referenced schema, resolved: the reference's name and the referenced schema's text."""

    name: str
    schema_type: SchemaType
    text: str


class ParsedSchema(ABC):
    """A schema validated by its format's library, with what the registry needs of it."""

    schema_type: SchemaType

    def __init__(self, text: str, canonical: str, references: Sequence[SchemaReference]) -> None:
        #: The text the registry keeps and serves (compact JSON of the document as submitted).
        self.text = text
        #: The normal form two equal schemas share whatever their spacing and key order.
        self.canonical = canonical
        self.references = tuple(references)

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        digest.update(self.schema_type.value.encode())
        digest.update(b"\0")
        digest.update(self.canonical.encode())
        for ref in sorted(self.references, key=lambda r: (r.name, r.subject, r.version)):
            digest.update(f"\0{ref.name}\0{ref.subject}\0{ref.version}".encode())
        return digest.hexdigest()

    def to_new_schema(self, *, normalize: bool = False) -> NewSchema:
        """What the store keeps; with ``normalize`` the canonical form replaces the submitted text."""
        return NewSchema(
            self.schema_type,
            self.canonical if normalize else self.text,
            self.fingerprint,
            self.references,
        )

    @abstractmethod
    def changes_from(self, writer: ParsedSchema, *, reader_role: str, writer_role: str) -> list[Change]:
        """Differences when this schema reads data written with ``writer``.

        ``reader_role``/``writer_role`` name the two schemas in the descriptions ("new schema",
        "old schema (version 3)"). The reader reads everything the writer writes exactly when no
        returned change has ``compatible=False``.
        """


class SchemaFormat(ABC):
    """Parses one schema type."""

    schema_type: SchemaType

    @abstractmethod
    def parse(
        self, text: str, references: Sequence[SchemaReference] = (), dependencies: Sequence[Dependency] = ()
    ) -> ParsedSchema:
        """Parse and validate ``text``; raise :class:`~shopops.schemas.errors.InvalidSchemaError` if invalid.

        ``dependencies`` are the referenced schemas, every transitive one, dependencies first.
        """
