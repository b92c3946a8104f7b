"""Schema formats by type: ``AVRO`` (Apache Avro's library) and ``JSON`` (JSON Schema)."""

from __future__ import annotations

from collections.abc import Sequence

from shopops.schemas.formats.avro import AvroFormat, AvroSchema
from shopops.schemas.formats.base import Change, Dependency, ParsedSchema, SchemaFormat
from shopops.schemas.formats.jsonschema import JsonSchema, JsonSchemaFormat
from shopops.schemas.model import SchemaReference, SchemaType

FORMATS: dict[SchemaType, SchemaFormat] = {
    SchemaType.AVRO: AvroFormat(),
    SchemaType.JSON: JsonSchemaFormat(),
}


def parse_schema(
    schema_type: SchemaType,
    text: str,
    references: Sequence[SchemaReference] = (),
    dependencies: Sequence[Dependency] = (),
) -> ParsedSchema:
    """Parse ``text`` as a schema of ``schema_type``; raises ``InvalidSchemaError`` when it is not one."""
    return FORMATS[schema_type].parse(text, references, dependencies)


__all__ = [
    "FORMATS",
    "AvroSchema",
    "Change",
    "Dependency",
    "JsonSchema",
    "ParsedSchema",
    "SchemaFormat",
    "parse_schema",
]
