"""The schema of a CDC row, from Kafka Connect's declared schema or inferred from a JSON payload.

A row schema is a list of :class:`FieldSpec`, rendered as a JSON Schema (the default) or an Avro
record, in the shapes Confluent's converters use, so that the registry's rules judge a table change
the way a Connect pipeline would meet it:

- JSON Schema: a closed object (``additionalProperties: false``); a non-optional column is
  required; an optional column is ``oneOf: [null, T]`` and not required. Adding an optional column
  is then compatible, renaming or retyping one is not, and making one nullable is compatible.
  Connect's 8/16/32-bit integers keep their range (``minimum``/``maximum``), so widening them is
  compatible and narrowing them is not;
- Avro: a record named ``<topic>.Value`` (Debezium's naming); an optional column is
  ``["null", T]`` with default ``null``; Connect's logical types map to Avro's (``date``,
  ``timestamp-micros``, ``timestamp-millis``).

Inference (plain JSON payloads, no schema in the record) cannot know a column's declared type or
nullability, so it merges what each row shows into the latest registered schema: a column seen
null becomes nullable; a column absent from a row is removed only if it was required (an optional
one may simply be missing); a new column is optional. Inferred schemas are always JSON Schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from shopops.events.debezium import Column
from shopops.schemas.model import SchemaType

#: Value ranges of Connect's small integer types.
_INT_RANGES = {"int8": (-(2**7), 2**7 - 1), "int16": (-(2**15), 2**15 - 1), "int32": (-(2**31), 2**31 - 1)}
_AVRO_PRIMITIVE = {
    "int8": "int",
    "int16": "int",
    "int32": "int",
    "int64": "long",
    "float32": "float",
    "float64": "double",
    "boolean": "boolean",
    "string": "string",
    "bytes": "bytes",
}
_AVRO_LOGICAL = {
    "io.debezium.time.Date": "date",
    "org.apache.kafka.connect.data.Date": "date",
    "io.debezium.time.MicroTimestamp": "timestamp-micros",
    "io.debezium.time.Timestamp": "timestamp-millis",
    "org.apache.kafka.connect.data.Timestamp": "timestamp-millis",
    "io.debezium.time.MicroTime": "time-micros",
}
_JSON_KINDS = ("string", "integer", "number", "boolean", "object", "array", "null")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One column: its name, its type and whether it may be null or absent.

    ``connect_type`` is the declared Kafka Connect type when known; ``kind`` the JSON type. ``raw``
    keeps a property schema the watch did not write (an operator's hand-registered version), so
    that it is carried into the next version unchanged.
    """

    name: str
    kind: str
    nullable: bool = False
    required: bool = True
    connect_type: str | None = None
    logical: str | None = None
    raw: Mapping[str, Any] | None = None


def from_columns(columns: Iterable[Column]) -> tuple[FieldSpec, ...]:
    """The row schema Connect declares (``shopops.events.debezium.row_columns``)."""
    out: list[FieldSpec] = []
    for c in columns:
        if c.type.startswith("int"):
            kind = "integer"
        elif c.type.startswith("float"):
            kind = "number"
        elif c.type == "boolean":
            kind = "boolean"
        else:
            kind = "string"
        out.append(FieldSpec(c.name, kind, c.optional, not c.optional, c.type, c.logical))
    return tuple(out)


def json_kind(value: Any) -> str:
    """The JSON type of a decoded JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def row_shape(row: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """What inference looks at in a row: its columns and their JSON types (a cache key)."""
    return tuple((name, json_kind(value)) for name, value in row.items())


def _widen(a: str, b: str) -> str:
    if a == b:
        return a
    if {a, b} == {"integer", "number"}:
        return "number"
    return b  # a real type change: the row's type stands, and the registry judges it


def infer(shape: Sequence[tuple[str, str]], current: Sequence[FieldSpec] | None) -> tuple[FieldSpec, ...]:
    """Merge a row's shape into the latest known fields (``None`` for a new subject)."""
    if current is None:
        return tuple(
            FieldSpec(name, kind, nullable=kind == "null", required=True) for name, kind in sorted(shape)
        )
    known = {f.name: f for f in current}
    seen = dict(shape)
    out: list[FieldSpec] = []
    for name, kind in sorted(seen.items()):
        before = known.get(name)
        if before is None:
            out.append(FieldSpec(name, kind, nullable=True, required=False))
        elif kind == "null":
            if before.nullable:
                out.append(before)
            elif before.raw is not None:
                out.append(
                    replace(before, nullable=True, raw={"oneOf": [{"type": "null"}, dict(before.raw)]})
                )
            else:
                out.append(replace(before, nullable=True))
        elif before.kind == "null":
            out.append(replace(before, kind=kind, nullable=True, raw=None))
        elif before.raw is not None:
            out.append(before)
        else:
            widened = _widen(before.kind, kind)
            out.append(before if widened == before.kind else replace(before, kind=widened, connect_type=None))
    # A column the row lacks is gone only if it was required; an optional one may just be absent.
    out.extend(f for name, f in known.items() if name not in seen and not f.required)
    return tuple(sorted(out, key=lambda f: f.name))


# --- rendering ------------------------------------------------------------------------------------


def _json_type(field: FieldSpec) -> dict[str, Any]:
    if field.raw is not None:
        return dict(field.raw)
    if field.kind == "null":
        return {"type": "null"}
    schema: dict[str, Any] = {"type": field.kind}
    if field.connect_type is not None:
        schema["connect.type"] = field.connect_type
        bounds = _INT_RANGES.get(field.connect_type)
        if bounds is not None:
            schema["minimum"], schema["maximum"] = bounds
        if field.connect_type == "bytes":
            schema["contentEncoding"] = "base64"
    if field.logical is not None:
        schema["connect.name"] = field.logical
    if field.nullable:
        return {"oneOf": [{"type": "null"}, schema]}
    return schema


def to_json_schema(fields: Sequence[FieldSpec], title: str) -> str:
    """The row as a closed JSON Schema object (sorted, so equal rows render equal text)."""
    doc = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": title,
        "type": "object",
        "properties": {f.name: _json_type(f) for f in sorted(fields, key=lambda f: f.name)},
        "required": sorted(f.name for f in fields if f.required),
        "additionalProperties": False,
    }
    return orjson.dumps(doc).decode()


_NAME = re.compile(r"[^A-Za-z0-9_]")


def _avro_name(part: str) -> str:
    name = _NAME.sub("_", part) or "_"
    return f"_{name}" if name[0].isdigit() else name


def _avro_type(field: FieldSpec) -> Any:
    base: Any = _AVRO_PRIMITIVE.get(field.connect_type or "")
    if base is None:
        base = {"integer": "long", "number": "double", "boolean": "boolean", "null": "null"}.get(
            field.kind, "string"
        )
    logical = _AVRO_LOGICAL.get(field.logical or "")
    if logical is not None:
        base = {"type": base, "logicalType": logical}
    elif field.logical is not None:
        base = {"type": base, "connect.name": field.logical}
    return base


def to_avro(fields: Sequence[FieldSpec], topic: str) -> str:
    """The row as an Avro record ``<topic>.Value``; optional columns are nullable with default null."""
    avro_fields: list[dict[str, Any]] = []
    for f in fields:
        t = _avro_type(f)
        if f.nullable and t != "null":
            avro_fields.append({"name": _avro_name(f.name), "type": ["null", t], "default": None})
        else:
            avro_fields.append({"name": _avro_name(f.name), "type": t})
    namespace = ".".join(_avro_name(p) for p in topic.split(".") if p)
    return orjson.dumps(
        {"type": "record", "name": "Value", "namespace": namespace, "fields": avro_fields}
    ).decode()


def render(fields: Sequence[FieldSpec], topic: str, schema_type: SchemaType) -> str:
    return (
        to_avro(fields, topic) if schema_type is SchemaType.AVRO else to_json_schema(fields, f"{topic}.Value")
    )


def fields_of_json_schema(text: str) -> tuple[FieldSpec, ...] | None:
    """Read back a row schema registered as JSON Schema; ``None`` if it is not an object schema."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("properties"), dict):
        return None
    required = set(doc.get("required") or [])
    out: list[FieldSpec] = []
    for name, prop in doc["properties"].items():
        if not isinstance(prop, dict):
            out.append(FieldSpec(name, "any", required=name in required, raw={}))
            continue
        nullable = False
        inner: Any = prop
        alternatives = prop.get("oneOf") or prop.get("anyOf")
        if isinstance(alternatives, list) and len(alternatives) == 2 and {"type": "null"} in alternatives:
            nullable = True
            inner = next(a for a in alternatives if a != {"type": "null"})
        kind = inner.get("type") if isinstance(inner, dict) else None
        if kind == "null" and inner == {"type": "null"}:
            out.append(FieldSpec(name, "null", nullable=True, required=name in required))
        elif isinstance(kind, str) and kind in _JSON_KINDS and set(inner) <= {"type"}:
            out.append(FieldSpec(name, kind, nullable, name in required))
        else:
            # Not a shape inference writes (declared bounds, formats, a hand-made schema): keep it.
            out.append(FieldSpec(name, str(kind or "any"), nullable, name in required, raw=prop))
    return tuple(sorted(out, key=lambda f: f.name))
