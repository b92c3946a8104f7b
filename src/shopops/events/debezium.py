"""Debezium change-event envelopes: encode (for the simulator) and decode (for every consumer).

Both shapes of Kafka Connect's JSON converter are understood:

- ``schemas.enable=true``: ``{"schema": {...}, "payload": {"before", "after", "source", "op", "ts_ms"}}``
- ``schemas.enable=false``: ``{"before", "after", "source", "op", "ts_ms"}``

A record with a null value is a tombstone (Debezium writes one after each delete so that log
compaction can drop the key). A malformed record raises :class:`DebeziumDecodeError` naming the
field and the record's position; :func:`decode_batch` collects such failures instead of stopping,
so a consumer keeps going and sends the bad records to a dead-letter place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from shopops.core.errors import InvalidInputError
from shopops.events.model import Record


class Op(StrEnum):
    CREATE = "c"
    UPDATE = "u"
    DELETE = "d"
    READ = "r"  # snapshot
    TRUNCATE = "t"


class DebeziumDecodeError(InvalidInputError):
    """A record is not a valid Debezium change event; says which field and where."""

    code = "invalid_change_event"

    def __init__(self, message: str, *, record: Record, field: str) -> None:
        super().__init__(
            f"{record.topic}[{record.partition}]@{record.offset}: {field}: {message}",
            hint="the record was skipped; fix the producer or replay it after fixing",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            field=field,
        )
        self.record = record
        self.field = field


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """A decoded, validated Debezium change event (or tombstone) with its log position."""

    topic: str
    partition: int
    offset: int
    key: dict[str, Any] | None
    op: Op | None  # None for a tombstone
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    source: dict[str, Any]
    ts_ms: int | None
    #: The value schema of the JSON-with-schema shape (``None`` for plain JSON and tombstones).
    value_schema: dict[str, Any] | None = None

    @property
    def is_tombstone(self) -> bool:
        return self.op is None

    @property
    def row(self) -> dict[str, Any] | None:
        """The row state after the change (``before`` for a delete)."""
        return self.before if self.op is Op.DELETE else self.after


@dataclass(frozen=True, slots=True)
class DecodeBatch:
    events: list[ChangeEvent]
    failures: list[DebeziumDecodeError]


_OPS = {op.value: op for op in Op}


def _unwrap(doc: Any, record: Record, what: str) -> tuple[Any, dict[str, Any] | None]:
    """Split a JSON-converter document into (payload, schema)."""
    if isinstance(doc, dict) and "payload" in doc and "schema" in doc:
        schema = doc["schema"]
        if schema is not None and not isinstance(schema, dict):
            raise DebeziumDecodeError(
                "schema must be an object or null", record=record, field=f"{what}.schema"
            )
        return doc["payload"], schema
    return doc, None


def _parse(raw: bytes, record: Record, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DebeziumDecodeError(f"not valid JSON ({exc})", record=record, field=what) from None


def decode(record: Record) -> ChangeEvent:
    """Decode one record into a :class:`ChangeEvent`; raise :class:`DebeziumDecodeError` if malformed."""
    key: dict[str, Any] | None = None
    if record.key is not None:
        key_doc, _ = _unwrap(_parse(record.key, record, "key"), record, "key")
        if key_doc is not None and not isinstance(key_doc, dict):
            raise DebeziumDecodeError("must be a JSON object", record=record, field="key")
        key = key_doc
    if record.value is None:
        return ChangeEvent(record.topic, record.partition, record.offset, key, None, None, None, {}, None)

    payload, schema = _unwrap(_parse(record.value, record, "value"), record, "value")
    if not isinstance(payload, dict):
        raise DebeziumDecodeError("must be a JSON object", record=record, field="payload")
    op_text = payload.get("op")
    op = _OPS.get(op_text) if isinstance(op_text, str) else None
    if op is None:
        raise DebeziumDecodeError(
            f"must be one of c, u, d, r, t (got {op_text!r})", record=record, field="payload.op"
        )
    before, after = payload.get("before"), payload.get("after")
    for name, value in (("before", before), ("after", after)):
        if value is not None and not isinstance(value, dict):
            raise DebeziumDecodeError("must be an object or null", record=record, field=f"payload.{name}")
    if op in (Op.CREATE, Op.READ, Op.UPDATE) and after is None:
        raise DebeziumDecodeError(f"is required for op {op.value!r}", record=record, field="payload.after")
    if op is Op.DELETE and before is None:
        raise DebeziumDecodeError("is required for op 'd'", record=record, field="payload.before")
    source = payload.get("source")
    if not isinstance(source, dict):
        raise DebeziumDecodeError("must be an object", record=record, field="payload.source")
    ts_ms = payload.get("ts_ms")
    if ts_ms is not None and (not isinstance(ts_ms, int) or isinstance(ts_ms, bool)):
        raise DebeziumDecodeError(f"must be an integer (got {ts_ms!r})", record=record, field="payload.ts_ms")
    return ChangeEvent(
        record.topic, record.partition, record.offset, key, op, before, after, source, ts_ms, schema
    )


def decode_batch(records: Iterable[Record]) -> DecodeBatch:
    """Decode many records; malformed ones are collected as failures, never raised."""
    events: list[ChangeEvent] = []
    failures: list[DebeziumDecodeError] = []
    for record in records:
        try:
            events.append(decode(record))
        except DebeziumDecodeError as exc:
            failures.append(exc)
    return DecodeBatch(events, failures)


# --- encoding -------------------------------------------------------------------------------------


def encode_key(key: Mapping[str, Any], key_schema: Mapping[str, Any] | None = None) -> bytes:
    """Encode a record key; with ``key_schema`` in the JSON-with-schema shape."""
    if key_schema is None:
        return orjson.dumps(key)
    return orjson.dumps({"schema": key_schema, "payload": key})


def encode_value(
    op: Op,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    source: Mapping[str, Any],
    ts_ms: int,
    value_schema_json: bytes | None = None,
) -> bytes:
    """Encode a change-event value.

    ``value_schema_json`` is the envelope schema already serialised (it is the same for every
    event of a table version, so callers serialise it once); ``None`` gives the plain shape.
    """
    payload = orjson.dumps(
        {"before": before, "after": after, "source": source, "op": op.value, "ts_ms": ts_ms}
    )
    if value_schema_json is None:
        return payload
    return b'{"schema":' + value_schema_json + b',"payload":' + payload + b"}"


# --- Kafka Connect schemas ------------------------------------------------------------------------

CONNECT_TYPES = frozenset(
    {"int8", "int16", "int32", "int64", "float32", "float64", "boolean", "string", "bytes"}
)


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a captured table, in Kafka Connect terms."""

    name: str
    type: str  # a Kafka Connect primitive type, see CONNECT_TYPES
    optional: bool = False
    #: Connect logical type, e.g. ``io.debezium.time.MicroTimestamp`` or ``io.debezium.time.Date``.
    logical: str | None = None

    def __post_init__(self) -> None:
        if self.type not in CONNECT_TYPES:
            raise InvalidInputError(f"column {self.name!r}: unknown Connect type {self.type!r}")

    def to_field(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "optional": self.optional, "field": self.name}
        if self.logical:
            out["name"] = self.logical
            out["version"] = 1
        return out


_SOURCE_FIELDS = [
    Column("version", "string"),
    Column("connector", "string"),
    Column("name", "string"),
    Column("ts_ms", "int64"),
    Column("snapshot", "string", optional=True),
    Column("db", "string"),
    Column("schema", "string"),
    Column("table", "string"),
    Column("txId", "int64", optional=True),
    Column("lsn", "int64", optional=True),
]


def value_schema(topic: str, columns: Iterable[Column], version: int = 1) -> dict[str, Any]:
    """The Debezium envelope schema of a table, as the JSON converter writes it."""
    fields = [c.to_field() for c in columns]
    row = {"type": "struct", "fields": fields, "optional": True, "name": f"{topic}.Value"}
    return {
        "type": "struct",
        "fields": [
            {**row, "field": "before"},
            {**row, "field": "after"},
            {
                "type": "struct",
                "fields": [c.to_field() for c in _SOURCE_FIELDS],
                "optional": False,
                "name": "io.debezium.connector.postgresql.Source",
                "field": "source",
            },
            {"type": "string", "optional": False, "field": "op"},
            {"type": "int64", "optional": True, "field": "ts_ms"},
        ],
        "optional": False,
        "name": f"{topic}.Envelope",
        "version": version,
    }


def key_schema(topic: str, columns: Iterable[Column]) -> dict[str, Any]:
    return {
        "type": "struct",
        "fields": [c.to_field() for c in columns],
        "optional": False,
        "name": f"{topic}.Key",
    }


def row_columns(schema: Mapping[str, Any]) -> list[Column]:
    """The table columns described by an envelope schema (its ``after`` struct)."""
    for env_field in schema.get("fields", []):
        if env_field.get("field") == "after":
            return [
                Column(f["field"], f["type"], bool(f.get("optional")), f.get("name"))
                for f in env_field.get("fields", [])
            ]
    raise InvalidInputError("envelope schema has no 'after' field")
