"""Change events of one micro-batch, decoded and typed for the silver tables. No I/O.

Decoding is the hot path of silver ingestion, so it avoids re-parsing what repeats: a
JSON-with-schema envelope is ``{"schema":S,"payload":P}`` where ``S`` is the same bytes for every
event of a table version, so once an envelope has been parsed in full, its prefix
``{"schema":S,"payload":`` is remembered and later records that start with exactly those bytes
only have their payload parsed. Anything that does not match a remembered prefix is parsed in
full; anything that is not a valid change event is reported with the reason
(:func:`shopops.events.debezium.decode` names the field) and skipped.

Types come from the Kafka Connect schema of the envelope (``int8``-``int32`` → int, ``int64`` →
long, ``float32`` → float, ``float64`` → double, ``boolean``, ``string``, ``bytes`` → binary;
``io.debezium.time.MicroTimestamp`` and the other timestamp types → timestamptz in microseconds,
UTC; ``io.debezium.time.Date`` → date; Connect ``Decimal`` → its exact decimal text). Plain JSON
envelopes carry no schema: their columns are inferred per batch from the JSON values (integer →
long, number → double, boolean, string; objects and arrays → their JSON text).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeAlias

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    PrimitiveType,
    StringType,
    TimestamptzType,
)

from shopops.events.debezium import DebeziumDecodeError, Op, decode
from shopops.events.model import Record

#: Operations as stored in ``_op``; ``t`` marks a tombstone (a record with a null value) while a
#: batch is processed (it is stored as a delete, ``d``).
TOMBSTONE = "t"
_ROW_OPS = frozenset({"c", "u", "r"})

MICRO_TIMESTAMPS = frozenset({"io.debezium.time.MicroTimestamp"})
MILLI_TIMESTAMPS = frozenset({"io.debezium.time.Timestamp", "org.apache.kafka.connect.data.Timestamp"})
NANO_TIMESTAMPS = frozenset({"io.debezium.time.NanoTimestamp"})
DATES = frozenset({"io.debezium.time.Date", "org.apache.kafka.connect.data.Date"})
DECIMAL = "org.apache.kafka.connect.data.Decimal"

_TIMESTAMP = pa.timestamp("us", tz="UTC")

#: Conversions from a JSON value to the column's Arrow type.
PLAIN = ""
TS_US = "ts_us"
TS_MS = "ts_ms"
TS_NS = "ts_ns"
DAYS = "date"
BASE64 = "base64"
DECIMAL_TEXT = "decimal"
JSON_TEXT = "json"


@dataclass(frozen=True, slots=True)
class SourceColumn:
    """A column as the source declares it (or as inferred): its name, Iceberg type and the
    conversion of its JSON values."""

    name: str
    type: PrimitiveType
    convert: str = PLAIN
    scale: int = 0


RowSchema = tuple[SourceColumn, ...]


def connect_column(spec: Mapping[str, Any]) -> SourceColumn:
    """The column of one field of a Connect struct schema."""
    name = str(spec.get("field"))
    kind = spec.get("type")
    logical = spec.get("name")
    if logical in MICRO_TIMESTAMPS:
        return SourceColumn(name, TimestamptzType(), TS_US)
    if logical in MILLI_TIMESTAMPS:
        return SourceColumn(name, TimestamptzType(), TS_MS)
    if logical in NANO_TIMESTAMPS:
        return SourceColumn(name, TimestamptzType(), TS_NS)
    if logical in DATES:
        return SourceColumn(name, DateType(), DAYS)
    if logical == DECIMAL:
        params = spec.get("parameters") or {}
        return SourceColumn(name, StringType(), DECIMAL_TEXT, int(params.get("scale", 0)))
    if kind in ("int8", "int16", "int32"):
        return SourceColumn(name, IntegerType())
    if kind == "int64":
        return SourceColumn(name, LongType())
    if kind == "float32":
        return SourceColumn(name, FloatType())
    if kind == "float64":
        return SourceColumn(name, DoubleType())
    if kind == "boolean":
        return SourceColumn(name, BooleanType())
    if kind == "bytes":
        return SourceColumn(name, BinaryType(), BASE64)
    if kind == "string":
        return SourceColumn(name, StringType())
    return SourceColumn(name, StringType(), JSON_TEXT)  # struct, array, map: kept as JSON text


def connect_row_schema(struct: Mapping[str, Any]) -> RowSchema:
    """The columns of a Connect struct schema (the ``after`` struct of an envelope, or a key)."""
    fields = struct.get("fields")
    if not isinstance(fields, list):
        return ()
    return tuple(connect_column(f) for f in fields if isinstance(f, dict) and "field" in f)


def arrow_type(kind: PrimitiveType) -> pa.DataType:
    """The Arrow type silver writes for an Iceberg primitive type."""
    return _ARROW[type(kind)]


_ARROW: dict[type[PrimitiveType], pa.DataType] = {
    IntegerType: pa.int32(),
    LongType: pa.int64(),
    FloatType: pa.float32(),
    DoubleType: pa.float64(),
    BooleanType: pa.bool_(),
    StringType: pa.large_string(),
    BinaryType: pa.large_binary(),
    DateType: pa.date32(),
    TimestamptzType: _TIMESTAMP,
}


@dataclass(slots=True)
class ChangeBatch:
    """The decoded events of one batch of one topic, in log order (parallel lists)."""

    keys: list[str] = field(default_factory=list)
    key_rows: list[dict[str, Any]] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)
    lsns: list[int | None] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    ts_ms: list[int] = field(default_factory=list)
    #: After-image of ``c``/``u``/``r`` events, ``None`` for deletes and tombstones.
    rows: list[dict[str, Any] | None] = field(default_factory=list)
    #: Index into :attr:`ChangeDecoder.schemas` of the event's declared schema (rows and deletes);
    #: -1 for plain JSON (inferred) events and for tombstones.
    schemas: list[int] = field(default_factory=list)
    #: Records that are not valid change events: (partition, offset, reason).
    skipped: list[tuple[int, int, str]] = field(default_factory=list)
    #: Truncate events (the source emptied its table), in log order.
    truncates: list[Truncate] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True, slots=True)
class _Prefix:
    raw: bytes
    schema: int


_NO_KEY = "the record has no key (silver keeps rows per primary key)"


@dataclass(frozen=True, slots=True)
class Truncate:
    """A truncate event: the source emptied its table at this position.

    Every state left by an event before it is gone, and an event before it that arrives late
    (from another partition, or replayed) no longer applies. "Before" is decided as for two
    events of one key (:func:`supersedes`): by ``source.lsn`` when both carry one, else by offset
    in the same partition, else by source time (an event at the truncate's very millisecond, in
    another partition and without LSN, counts as after it).
    """

    lsn: int | None
    partition: int
    offset: int
    ts_ms: int

    def precedes(self, lsn: int | None, partition: int, offset: int, ts_ms: int) -> bool:
        """Whether an event at this position comes before the truncate (and is truncated away)."""
        return not supersedes(
            lsn, partition, offset, ts_ms, self.lsn, self.partition, self.offset, self.ts_ms
        )

    def later(self, other: Truncate | None) -> Truncate:
        """Whichever of this truncate and ``other`` comes last."""
        if other is None or not other.precedes(self.lsn, self.partition, self.offset, self.ts_ms):
            return self
        return other

    def to_json(self) -> str:
        return orjson.dumps(
            {"lsn": self.lsn, "partition": self.partition, "offset": self.offset, "ts_ms": self.ts_ms}
        ).decode()

    @classmethod
    def from_json(cls, raw: str) -> Truncate:
        doc = orjson.loads(raw)
        return cls(doc["lsn"], doc["partition"], doc["offset"], doc["ts_ms"])


def _truncate(record: Record) -> Truncate | None:
    """The record as a :class:`Truncate`, if it is a valid Debezium truncate event (plain or in a
    schema envelope; Debezium sends them without a key)."""
    if record.value is None:
        return None
    try:
        event = decode(record)
    except DebeziumDecodeError:
        return None
    if event.op is not Op.TRUNCATE:
        return None
    lsn = event.source.get("lsn")
    ts = next(
        (
            t
            for t in (event.source.get("ts_ms"), event.ts_ms)
            if isinstance(t, int) and not isinstance(t, bool)
        ),
        record.timestamp_ms,
    )
    valid_lsn = isinstance(lsn, int) and not isinstance(lsn, bool)
    return Truncate(lsn if valid_lsn else None, record.partition, record.offset, ts)


class ChangeDecoder:
    """Decodes the records of one topic; remembers envelope prefixes and declared schemas."""

    def __init__(self) -> None:
        #: Declared row schemas seen so far (the ``after`` structs), indexed by ``ChangeBatch.schemas``.
        self.schemas: list[RowSchema] = []
        #: A fingerprint of each of :attr:`schemas` (of its serialised Connect struct).
        self.schema_keys: list[str] = []
        #: The declared key schema, once a key with a schema has been seen.
        self.key_schema: RowSchema | None = None
        self._schema_ids: dict[bytes, int] = {}
        self._value_prefixes: list[_Prefix] = []
        self._key_prefixes: list[bytes] = []

    # -- keys --

    def key_prefix(self, raw: bytes) -> bytes | None:
        """The remembered key schema wrapper ``raw`` starts with."""
        return next((p for p in self._key_prefixes if raw.startswith(p)), None)

    def key_text(self, raw: bytes) -> bytes | None:
        """The key's payload as the producer wrote it (``raw`` without a remembered schema wrapper),
        or ``None`` if ``raw`` does not start with a remembered wrapper but carries one."""
        for prefix in self._key_prefixes:
            if raw.startswith(prefix) and raw.endswith(b"}"):
                return raw[len(prefix) : -1]
        return None if raw.startswith(b'{"schema":') else raw

    def _key(self, raw: bytes) -> tuple[dict[str, Any] | None, bytes]:
        """The key's columns and its text (``_key``): the payload bytes as produced, so that the
        same key always gives the same text, whichever way a batch is decoded."""
        text = self.key_text(raw)
        if text is not None:
            doc = orjson.loads(text)
            if text is not raw or not (isinstance(doc, dict) and "schema" in doc and "payload" in doc):
                return (doc if isinstance(doc, dict) else None), text
        doc = orjson.loads(raw)
        text = raw
        if isinstance(doc, dict) and "schema" in doc and "payload" in doc:
            schema = doc["schema"]
            if isinstance(schema, dict):
                if self.key_schema is None:
                    self.key_schema = connect_row_schema(schema)
                prefix = b'{"schema":' + orjson.dumps(schema) + b',"payload":'
                if raw.startswith(prefix) and raw.endswith(b"}"):
                    if prefix not in self._key_prefixes:
                        self._key_prefixes.append(prefix)
                    text = raw[len(prefix) : -1]
                else:
                    text = orjson.dumps(doc["payload"])
            doc = doc["payload"]
        return (doc if isinstance(doc, dict) else None), text

    # -- values --

    def value_prefix(self, raw: bytes) -> tuple[bytes, int] | None:
        """The remembered envelope prefix ``raw`` starts with, and its schema index."""
        for prefix in self._value_prefixes:
            if raw.startswith(prefix.raw):
                return prefix.raw, prefix.schema
        return None

    def _learn(self, schema: Any) -> int:
        """The index of the row schema an envelope schema declares (-1 if it declares none)."""
        if not isinstance(schema, dict):
            return -1
        after = next(
            (f for f in schema.get("fields") or () if isinstance(f, dict) and f.get("field") == "after"),
            None,
        )
        if after is None:
            return -1
        ident = orjson.dumps(after)
        index = self._schema_ids.get(ident)
        if index is None:
            index = self._schema_ids[ident] = len(self.schemas)
            self.schemas.append(connect_row_schema(after))
            self.schema_keys.append(hashlib.sha256(ident).hexdigest()[:20])
        return index

    def _value(self, raw: bytes) -> tuple[Any, int]:
        for prefix in self._value_prefixes:
            if raw.startswith(prefix.raw) and raw.endswith(b"}"):
                try:
                    return orjson.loads(raw[len(prefix.raw) : -1]), prefix.schema
                except orjson.JSONDecodeError:
                    break
        doc = orjson.loads(raw)
        if isinstance(doc, dict) and "schema" in doc and "payload" in doc:
            schema = doc["schema"]
            index = self._learn(schema)
            if schema is not None:
                learnt = b'{"schema":' + orjson.dumps(schema) + b',"payload":'
                if raw.startswith(learnt) and all(p.raw != learnt for p in self._value_prefixes):
                    self._value_prefixes.append(_Prefix(learnt, index))
            return doc["payload"], index
        return doc, -1

    def decode(self, records: Iterable[Record]) -> ChangeBatch:
        """Decode ``records`` (one topic, log order); invalid ones go to ``skipped`` with the reason."""
        out = ChangeBatch()
        keys, key_rows, ops, lsns = out.keys, out.key_rows, out.ops, out.lsns
        partitions, offsets, stamps, rows, schemas = (
            out.partitions,
            out.offsets,
            out.ts_ms,
            out.rows,
            out.schemas,
        )
        op: Any
        lsn: Any
        ts: Any
        for record in records:
            raw_key = record.key
            # Debezium sends a truncate without a key; one with a key is recognised below.
            truncate = _truncate(record) if raw_key is None else None
            if truncate is not None:
                out.truncates.append(truncate)
                continue
            try:
                key, key_raw = self._key(raw_key) if raw_key is not None else (None, b"")
                if key is None or not key:
                    raise ValueError(_NO_KEY)
                value = record.value
                if value is None:
                    op, lsn, ts, row, schema = TOMBSTONE, None, record.timestamp_ms, None, -1
                else:
                    payload, schema = self._value(value)
                    op = payload.get("op") if isinstance(payload, dict) else None
                    source = payload.get("source") if op is not None else None
                    if op in _ROW_OPS:
                        row = payload.get("after")
                    elif op == "d":
                        row = None
                        if not isinstance(payload.get("before"), dict):
                            raise _InvalidEventError
                    elif op == "t":
                        raise _TruncateEventError
                    else:
                        raise _InvalidEventError
                    if not isinstance(source, dict) or (op != "d" and not isinstance(row, dict)):
                        raise _InvalidEventError
                    lsn = source.get("lsn")
                    if not isinstance(lsn, int) or isinstance(lsn, bool):
                        lsn = None
                    ts = source.get("ts_ms")
                    if not isinstance(ts, int) or isinstance(ts, bool):
                        ts = payload.get("ts_ms")
                        if not isinstance(ts, int) or isinstance(ts, bool):
                            ts = record.timestamp_ms
            except _TruncateEventError:
                found = _truncate(record)
                if found is None:
                    out.skipped.append((record.partition, record.offset, _reason(record)))
                else:
                    out.truncates.append(found)
                continue
            except (_InvalidEventError, orjson.JSONDecodeError, AttributeError, TypeError):
                out.skipped.append((record.partition, record.offset, _reason(record)))
                continue
            except ValueError as exc:
                out.skipped.append((record.partition, record.offset, str(exc)))
                continue
            keys.append(key_raw.decode())
            key_rows.append(key)
            ops.append(op)
            lsns.append(lsn)
            partitions.append(record.partition)
            offsets.append(record.offset)
            stamps.append(ts)
            rows.append(row)
            schemas.append(schema)
        return out


class _InvalidEventError(Exception):
    """A record that is not a valid change event (the reason is worked out by ``decode``)."""


class _TruncateEventError(Exception):
    """A keyed record that is a truncate event (:attr:`ChangeBatch.truncates`, not a row)."""


def _reason(record: Record) -> str:
    try:
        decode(record)
    except DebeziumDecodeError as exc:
        return exc.message
    return f"{record.topic}[{record.partition}]@{record.offset}: not a change event silver can apply"


# --- per-key order -----------------------------------------------------------------------------------


def supersedes(
    lsn: int | None, partition: int, offset: int, ts: int, old_lsn: int | None, old_partition: int,
    old_offset: int, old_ts: int,
) -> bool:  # fmt: skip
    """Whether an event at the first position replaces the state left by one at the second.

    Both with a ``source.lsn`` (Debezium's log position, growing per database): the larger wins,
    so a duplicate (same LSN) and a replayed older event are no-ops. Otherwise the log order of
    the key's partition decides; if the key moved partitions, the later source time.
    """
    if lsn is not None and old_lsn is not None:
        return lsn > old_lsn
    if partition == old_partition:
        return offset > old_offset
    return ts >= old_ts


def reduce_per_key(
    batch: ChangeBatch, excluded: set[int] | None = None
) -> tuple[list[int], dict[int, int | None]]:
    """The events that end up as each key's state after ``batch`` (indices; log order in, any
    order out), skipping ``excluded`` ones (rejected by the checks or malformed).

    A tombstone that follows another event of its key in the batch deletes the state that event
    left and takes over its LSN (the second result maps such tombstones to that LSN); one that
    follows a delete changes nothing.
    """
    best: dict[str, int] = {}
    inherited: dict[int, int | None] = {}
    keys, lsns, parts, offs, stamps, ops = (
        batch.keys, batch.lsns, batch.partitions, batch.offsets, batch.ts_ms, batch.ops,
    )  # fmt: skip
    for i, key in enumerate(keys):
        if excluded and i in excluded:
            continue
        j = best.get(key)
        if j is None:
            best[key] = i
            continue
        if ops[i] == TOMBSTONE:
            if ops[j] in ("d", TOMBSTONE):
                continue
            inherited[i] = inherited.get(j, lsns[j])
            best[key] = i
            continue
        lsn_j = inherited.get(j, lsns[j])
        if supersedes(lsns[i], parts[i], offs[i], stamps[i], lsn_j, parts[j], offs[j], stamps[j]):
            best[key] = i
    winners = list(best.values())
    return winners, {i: inherited[i] for i in winners if i in inherited}


# --- typing ------------------------------------------------------------------------------------------

#: The values of one source column for the rows of a batch being typed: a list of JSON values, or
#: an Arrow array already inferred from them (plain JSON); null where the column does not apply.
Values: TypeAlias = "list[Any] | pa.Array"


def column_pieces(
    batch: ChangeBatch, decoder: ChangeDecoder, indices: Sequence[int], skip: frozenset[str]
) -> list[tuple[SourceColumn, Values]]:
    """The source columns of the after-images of events ``indices`` and their values (one entry
    per position of ``indices``). Columns named in ``skip`` (the key columns) are left out.

    Rows of different declared schemas (a table version change inside the batch) give one piece
    per schema and column, null outside their rows; plain-JSON rows are inferred together.
    """
    n = len(indices)
    by_schema: dict[int, list[int]] = {}
    for pos, i in enumerate(indices):
        by_schema.setdefault(batch.schemas[i], []).append(pos)
    pieces: list[tuple[SourceColumn, Values]] = []
    all_rows = batch.rows
    for schema, positions in by_schema.items():
        rows: list[dict[str, Any]] = [all_rows[indices[p]] for p in positions]  # type: ignore[misc]
        if schema >= 0:
            for column in decoder.schemas[schema]:
                if column.name not in skip:
                    name = column.name
                    pieces.append((column, _scatter([r.get(name) for r in rows], positions, n)))
        else:
            for column, values in infer_plain(rows, skip):
                pieces.append((column, _scatter(values, positions, n)))
    return pieces


def _scatter(values: Values, positions: list[int], n: int) -> Values:
    if len(positions) == n:
        return values
    out: list[Any] = [None] * n
    for p, v in zip(positions, values.to_pylist() if isinstance(values, pa.Array) else values, strict=True):
        out[p] = v
    return out


def infer_plain(
    rows: Sequence[Mapping[str, Any]], skip: frozenset[str] = frozenset()
) -> list[tuple[SourceColumn, Values]]:
    """Columns of plain-JSON rows, inferred from their values.

    Integers → long, numbers (any non-integer in the column) → double, booleans, strings; objects
    and arrays → JSON text; a column with no value yet is left out (nothing to store). A name whose
    values are of several incompatible kinds in one batch (a type change) gives one column per
    kind, each holding the rows of its kind.
    """
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    out: list[tuple[SourceColumn, Values]] = []
    for name in names:
        if name in skip:
            continue
        values = [r.get(name) for r in rows]
        try:
            array = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            out.extend(_split_kinds(name, values))
            continue
        kind = array.type
        if pa.types.is_null(kind):
            continue
        if pa.types.is_boolean(kind):
            out.append((SourceColumn(name, BooleanType()), array))
        elif pa.types.is_integer(kind):
            out.append((SourceColumn(name, LongType()), array))
        elif pa.types.is_floating(kind):
            out.append((SourceColumn(name, DoubleType()), array))
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            out.append((SourceColumn(name, StringType()), array))
        else:
            out.append((SourceColumn(name, StringType(), JSON_TEXT), values))
    return out


def _kind(value: Any) -> SourceColumn:
    if isinstance(value, bool):
        return _BOOLEAN
    if isinstance(value, int):
        return _LONG
    if isinstance(value, float):
        return _DOUBLE
    if isinstance(value, str):
        return _STRING
    return _JSON


_BOOLEAN = SourceColumn("", BooleanType())
_LONG = SourceColumn("", LongType())
_DOUBLE = SourceColumn("", DoubleType())
_STRING = SourceColumn("", StringType())
_JSON = SourceColumn("", StringType(), JSON_TEXT)


def _split_kinds(name: str, values: list[Any]) -> list[tuple[SourceColumn, Values]]:
    kinds = [None if v is None else _kind(v) for v in values]
    present = set(kinds) - {None}
    if present == {_LONG, _DOUBLE}:
        return [(SourceColumn(name, DoubleType()), values)]
    if _LONG in present and _DOUBLE in present:  # integers stored with the other numbers
        kinds = [_DOUBLE if k is _LONG else k for k in kinds]
        present.discard(_LONG)
    out: list[tuple[SourceColumn, Values]] = []
    for kind in sorted(present, key=lambda k: (str(k.type), k.convert)):  # type: ignore[union-attr]
        assert kind is not None
        column = SourceColumn(name, kind.type, kind.convert)
        out.append((column, [v if k is kind else None for v, k in zip(values, kinds, strict=True)]))
    return out


class ConversionError(ValueError):
    """Values of a column that do not fit its type; ``rows`` are their positions."""

    def __init__(self, column: str, rows: list[int], reason: str) -> None:
        super().__init__(f"column {column!r}: {reason}")
        self.column = column
        self.rows = rows


def to_arrow(values: Values, column: SourceColumn, target: pa.DataType) -> pa.Array:
    """The values of one column as an Arrow array of ``target`` (the table column's type).

    Raises :class:`ConversionError` naming the positions whose values do not fit.
    """
    try:
        array = values if isinstance(values, pa.Array) else _convert(values, column)
        return array if array.type == target else array.cast(target)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError, OverflowError) as exc:
        plain = values.to_pylist() if isinstance(values, pa.Array) else values
        bad = []
        for i, v in enumerate(plain):
            if v is None:
                continue
            try:
                single = _convert([v], column)
                if single.type != target:
                    single.cast(target)
            except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError, OverflowError):
                bad.append(i)
        raise ConversionError(column.name, bad, str(exc)) from None


def _convert(values: list[Any], column: SourceColumn) -> pa.Array:
    convert = column.convert
    if convert == PLAIN:
        kind = arrow_type(column.type)
        if kind == pa.large_string() and any(v is not None and not isinstance(v, str) for v in values):
            raise TypeError("expected text")  # a number is not silently turned into text
        return pa.array(values, kind)
    if convert == TS_US:
        return pa.array(values, pa.int64()).cast(_TIMESTAMP)
    if convert == TS_MS:
        return pc.multiply_checked(pa.array(values, pa.int64()), 1000).cast(_TIMESTAMP)
    if convert == TS_NS:
        return pc.divide(pa.array(values, pa.int64()), 1000).cast(_TIMESTAMP)
    if convert == DAYS:
        return pa.array(values, pa.int32()).cast(pa.date32())
    if convert == BASE64:
        return pa.array(
            [None if v is None else base64.b64decode(v, validate=True) for v in values], pa.large_binary()
        )
    if convert == DECIMAL_TEXT:
        return pa.array(
            [None if v is None else _decimal_text(v, column.scale) for v in values], pa.large_string()
        )
    if convert == JSON_TEXT:
        return pa.array(
            [v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values],
            pa.large_string(),
        )
    raise ValueError(f"unknown conversion {convert!r}")


def _decimal_text(value: Any, scale: int) -> str:
    """A Connect ``Decimal`` (base64 of the big-endian two's-complement unscaled value) as text."""
    if isinstance(value, (int, float)):
        return format(Decimal(str(value)), "f")
    unscaled = int.from_bytes(base64.b64decode(value, validate=True), "big", signed=True)
    return format(Decimal(unscaled).scaleb(-scale), "f")


def key_source_of(name: str, decoder: ChangeDecoder, kind: pa.DataType) -> SourceColumn:
    """:func:`key_source` from the Arrow type the key column was read as."""
    for schema in ((decoder.key_schema or ()), *decoder.schemas):
        for column in schema:
            if column.name == name:
                return column
    if pa.types.is_boolean(kind):
        return SourceColumn(name, BooleanType())
    if pa.types.is_integer(kind):
        return SourceColumn(name, LongType())
    if pa.types.is_floating(kind):
        return SourceColumn(name, DoubleType())
    return SourceColumn(name, StringType())


def key_source(name: str, decoder: ChangeDecoder, values: list[Any]) -> SourceColumn:
    """The source column of key column ``name``: declared by the key schema or by a row schema,
    else inferred from its values."""
    for schema in ((decoder.key_schema or ()), *decoder.schemas):
        for column in schema:
            if column.name == name:
                return column
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, str) for v in present):
        return SourceColumn(name, StringType())
    kind = _kind(present[0]) if present else _STRING
    return SourceColumn(name, kind.type, kind.convert)
