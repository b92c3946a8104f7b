"""Avro schemas: parsed by Apache Avro's own library, compatibility by its schema-resolution checker.

:class:`avro.compatibility.ReaderWriterCompatibilityChecker` implements the resolution rules of the
Avro specification — type promotions (int → long → float → double, string ↔ bytes), field
defaults, enum symbols and enum defaults, unions, named types and aliases. It is the verdict here.

Its result keeps the kinds of incompatibility in order but merges their messages and locations
into sets, which loses which message belongs where. :class:`_RecordingChecker` only *listens* to the
checker as it walks the schemas — every single-problem result it computes is noted with its
location, and a reader field missing a default is noted by name — so that each incompatibility
can be reported in words at its path, as the Confluent registry does.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

import avro.errors
import avro.name
import avro.schema
import orjson
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
    SchemaIncompatibilityType,
)
from avro.compatibility import (
    SchemaType as AvroType,
)

from shopops.schemas.errors import InvalidSchemaError
from shopops.schemas.formats.base import Change, Dependency, ParsedSchema, SchemaFormat
from shopops.schemas.model import SchemaReference, SchemaType


class AvroSchema(ParsedSchema):
    schema_type = SchemaType.AVRO

    def __init__(self, text: str, canonical: str, references: Sequence[SchemaReference], schema: Any) -> None:
        super().__init__(text, canonical, references)
        #: The :class:`avro.schema.Schema` (references resolved).
        self.schema = schema

    def changes_from(self, writer: ParsedSchema, *, reader_role: str, writer_role: str) -> list[Change]:
        if not isinstance(writer, AvroSchema):
            return [
                Change(
                    "TYPE_MISMATCH",
                    "/",
                    f"The {reader_role} is an Avro schema but the {writer_role} is a "
                    f"{writer.schema_type.value} schema",
                )
            ]
        checker = _RecordingChecker()
        result = checker.get_compatibility(self.schema, writer.schema)
        if result.compatibility is not SchemaCompatibilityType.incompatible:
            return []
        return [
            _describe(kind, message, path, reader_role, writer_role)
            for kind, message, path in checker.found(result)
        ]


class _RecordingChecker(ReaderWriterCompatibilityChecker):
    """The library's checker, noting each incompatibility with its message and location."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._noted: dict[tuple[SchemaIncompatibilityType, str, str], None] = {}
        self._depth = 0

    def get_compatibility(
        self,
        reader: Any,
        writer: Any,
        reference_token: str = ReaderWriterCompatibilityChecker.ROOT_REFERENCE_TOKEN,
        location: list[str] | None = None,
    ) -> SchemaCompatibilityResult:
        # The checker probes union branches with calls that carry no location; what they find is
        # noted by the caller that owns the location, so those probes are not noted themselves.
        probe = self._depth > 0 and location is None
        self._depth += 1
        try:
            result = super().get_compatibility(reader, writer, reference_token, location)
        finally:
            self._depth -= 1
        if (
            not probe
            and result.compatibility is SchemaCompatibilityType.incompatible
            and len(result.incompatibilities) == 1
            and len(result.messages) == 1
            and len(result.locations) == 1
        ):
            self._note(result.incompatibilities[0], next(iter(result.messages)), next(iter(result.locations)))
        return result

    def check_reader_writer_record_fields(
        self, reader: Any, writer: Any, location: list[str]
    ) -> SchemaCompatibilityResult:
        result = super().check_reader_writer_record_fields(reader, writer, location)
        writer_names = {f.name for f in writer.fields}
        for i, field in enumerate(reader.fields):
            aliases = field.props.get("aliases") or []
            known = field.name in writer_names or any(a in writer_names for a in aliases)
            enum_default = field.type.type == AvroType.ENUM and field.type.props.get("default")
            if not known and not field.has_default and not enum_default:
                # The library's location format: the root token "/" joined by "/", minus one "/".
                path = "/".join([*location, "fields", str(i)])[1:]
                self._note(SchemaIncompatibilityType.reader_field_missing_default_value, field.name, path)
        return result

    def _note(self, kind: SchemaIncompatibilityType, message: str, location: str) -> None:
        self._noted[(kind, message, location)] = None

    def found(self, result: SchemaCompatibilityResult) -> list[tuple[SchemaIncompatibilityType, str, str]]:
        """Every incompatibility of ``result`` with its message and location."""
        noted = list(self._noted)
        # Whatever the result lists beyond what was noted (a problem merged with others at a node
        # that produced it directly) is reported with the messages not yet used.
        remaining = list(result.incompatibilities)
        for kind, _, _ in noted:
            if kind in remaining:
                remaining.remove(kind)
        unused = sorted(result.messages - {m for _, m, _ in noted})
        locations = sorted(result.locations - {loc for _, _, loc in noted}) or ["/"]
        for i, kind in enumerate(remaining):
            message = unused[i] if i < len(unused) else ""
            noted.append((kind, message, locations[min(i, len(locations) - 1)]))
        return noted


_KIND_NAMES = {
    SchemaIncompatibilityType.name_mismatch: "NAME_MISMATCH",
    SchemaIncompatibilityType.fixed_size_mismatch: "FIXED_SIZE_MISMATCH",
    SchemaIncompatibilityType.missing_enum_symbols: "MISSING_ENUM_SYMBOLS",
    SchemaIncompatibilityType.reader_field_missing_default_value: "READER_FIELD_MISSING_DEFAULT_VALUE",
    SchemaIncompatibilityType.type_mismatch: "TYPE_MISMATCH",
    SchemaIncompatibilityType.missing_union_branch: "MISSING_UNION_BRANCH",
}


def _describe(kind: SchemaIncompatibilityType, message: str, path: str, reader: str, writer: str) -> Change:
    name = _KIND_NAMES[kind]
    if kind is SchemaIncompatibilityType.reader_field_missing_default_value:
        text = (
            f"The field '{message}' at path '{path}' in the {reader} has no default value and is "
            f"missing in the {writer}"
        )
    elif kind is SchemaIncompatibilityType.type_mismatch:
        text = f"The type (path '{path}') of a field in the {reader} does not match with the {writer}"
    elif kind is SchemaIncompatibilityType.name_mismatch:
        text = f"The name of the schema has changed (path '{path}')"
    elif kind is SchemaIncompatibilityType.fixed_size_mismatch:
        text = (
            f"The size of FIXED type field at path '{path}' in the {reader} does not match with the {writer}"
        )
    elif kind is SchemaIncompatibilityType.missing_enum_symbols:
        message = _symbols(message)
        text = f"The {reader} is missing enum symbols '{message}' at path '{path}' in the {writer}"
    else:
        text = f"The {reader} is missing a type inside a union field at path '{path}' in the {writer}"
    return Change(name, path, text, compatible=False, additional_info=message)


def _symbols(message: str) -> str:
    """The checker writes missing symbols as a Python set literal; list them plainly, sorted."""
    try:
        symbols = ast.literal_eval(message)
    except (ValueError, SyntaxError):
        return message
    return ", ".join(sorted(str(s) for s in symbols)) if isinstance(symbols, set | frozenset) else message


class AvroFormat(SchemaFormat):
    schema_type = SchemaType.AVRO

    def parse(
        self, text: str, references: Sequence[SchemaReference] = (), dependencies: Sequence[Dependency] = ()
    ) -> AvroSchema:
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise InvalidSchemaError(f"Invalid schema: not valid JSON ({exc})") from None
        names = avro.name.Names()
        for dep in dependencies:
            if dep.schema_type is not SchemaType.AVRO:
                raise InvalidSchemaError(
                    f"Invalid schema: reference {dep.name!r} is a {dep.schema_type.value} schema, "
                    "an Avro schema can only reference Avro schemas"
                )
            try:
                avro.schema.make_avsc_object(orjson.loads(dep.text), names)
            except (avro.errors.AvroException, ValueError, TypeError) as exc:
                raise InvalidSchemaError(f"Invalid schema: referenced schema {dep.name!r}: {exc}") from None
        try:
            schema = avro.schema.make_avsc_object(document, names)
        except (avro.errors.AvroException, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidSchemaError(f"Invalid schema {_short(text)}: {exc}") from None
        canonical = orjson.dumps(schema.to_json(), option=orjson.OPT_SORT_KEYS).decode()
        return AvroSchema(orjson.dumps(document).decode(), canonical, references, schema)


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
