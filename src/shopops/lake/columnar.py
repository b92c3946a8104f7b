"""The fast path of silver decoding: a whole batch parsed at once by Arrow's JSON reader. No I/O.

The per-record decoder (:class:`shopops.lake.changes.ChangeDecoder`) parses each envelope with
orjson and builds the columns in Python: about four microseconds per event, all of it holding the
GIL. Most batches are plain: one declared schema (or plain JSON), inserts and updates only, every
event with its ``source.lsn``. For those, the payloads (the envelope's remembered schema prefix
cut off) are joined into newline-delimited JSON and parsed by ``pyarrow.json.read_json`` — in C++,
on two threads, outside the GIL — straight into typed columns; the winner per key is found by a
sort. Anything else (deletes, tombstones, several schemas or a new one, a record the reader
refuses, a missing LSN, nested values) returns ``None`` and the batch takes the per-record path,
which gives the same result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import cast

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
from pyiceberg.types import BooleanType, DoubleType, LongType, StringType

from shopops.events.model import Record
from shopops.lake.changes import (
    BASE64,
    DAYS,
    DECIMAL_TEXT,
    JSON_TEXT,
    PLAIN,
    TS_MS,
    TS_NS,
    TS_US,
    ChangeDecoder,
    RowSchema,
    SourceColumn,
    arrow_type,
)

#: How a declared column is read by the JSON reader (its conversion happens afterwards).
_READ_AS = {TS_US: pa.int64(), TS_MS: pa.int64(), TS_NS: pa.int64(), DAYS: pa.int32()}
_ENVELOPE = [
    ("op", pa.string()),
    ("ts_ms", pa.int64()),
    ("source", pa.struct([("lsn", pa.int64()), ("ts_ms", pa.int64())])),
]
_ROW_OPS = pa.array(["c", "u", "r"])
_PARTITION, _OFFSET, _KEY, _VALUE, _TIMESTAMP = (itemgetter(i) for i in (1, 2, 3, 4, 5))


@dataclass(frozen=True, slots=True)
class ColumnBatch:
    """The events of one batch as columns (one row per event, log order)."""

    keys: pa.Array  # _key: the key payload text
    key_rows: pa.Table  # the key's columns
    ops: pa.Array
    lsns: pa.Array
    partitions: pa.Array
    offsets: pa.Array
    ts_ms: pa.Array
    after: pa.Table  # the after-image's columns, as read
    columns: tuple[SourceColumn, ...]  # the source column of each ``after`` column
    #: The declared row schema of every event (an index into ``ChangeDecoder.schemas``); -1: plain JSON.
    schema: int = -1

    def __len__(self) -> int:
        return len(self.keys)


def _read_type(column: SourceColumn) -> pa.DataType | None:
    if column.convert in (BASE64, DECIMAL_TEXT, JSON_TEXT):
        return None
    return _READ_AS.get(column.convert) or arrow_type(column.type)


@dataclass(frozen=True, slots=True)
class RecordColumns:
    """The log fields of a batch of records (one topic, log order) as Arrow arrays.

    Built once per batch and shared by the stages that write it: bronze stores them, silver's
    fast path parses the values; neither walks the records in Python again.
    """

    partitions: pa.Array  # int32
    offsets: pa.Array  # int64
    timestamps: pa.Array  # int64
    keys: pa.Array  # binary; null for an unkeyed record
    values: pa.Array  # binary; null for a tombstone

    def __len__(self) -> int:
        return len(self.offsets)


def record_columns(records: Sequence[Record]) -> RecordColumns:
    """``records`` as :class:`RecordColumns`.

    Each field is pulled out by a C-level loop (``map`` with an item getter into NumPy), not by
    Python code per record; this runs on the reading thread, where it competes for the GIL.
    """
    n = len(records)
    if not n:
        empty = pa.array([], pa.binary())
        return RecordColumns(
            pa.array([], pa.int32()), pa.array([], pa.int64()), pa.array([], pa.int64()), empty, empty
        )
    return RecordColumns(
        partitions=pa.array(np.fromiter(map(_PARTITION, records), np.int32, count=n)),
        offsets=pa.array(np.fromiter(map(_OFFSET, records), np.int64, count=n)),
        timestamps=pa.array(np.fromiter(map(_TIMESTAMP, records), np.int64, count=n)),
        keys=pa.array(list(map(_KEY, records)), pa.binary()),
        values=_binary(list(map(_VALUE, records))),
    )


def _binary(values: list[bytes | None]) -> pa.Array:
    """``values`` as a binary array. Without nulls, the data buffer is one ``bytes.join`` (one
    allocation of the exact size) and the offsets a cumulative sum of the lengths: Arrow's builder
    grows its buffer by doubling, copying tens of megabytes per batch and touching fresh memory
    each time, which cost several times more CPU in the ingestion pipeline than in isolation."""
    if None in values:
        return pa.array(values, pa.binary())
    present = cast("list[bytes]", values)
    data = b"".join(present)
    if len(data) >= 2**31:
        return pa.array(present, pa.binary())  # past 32-bit offsets: Arrow chunks it
    ends = np.zeros(len(present) + 1, np.int32)
    np.cumsum(np.fromiter(map(len, present), np.int32, count=len(present)), out=ends[1:])
    return pa.Array.from_buffers(pa.binary(), len(present), [None, pa.py_buffer(ends), pa.py_buffer(data)])


def row_numbers(n: int) -> pa.Array:
    """``0 .. n-1`` as an int64 array (from NumPy, without a Python int per row)."""
    return pa.array(np.arange(n, dtype=np.int64))


def _all(mask: pa.Array) -> bool:
    return bool(pc.all(mask).as_py())


def _any(mask: pa.Array) -> bool:
    return bool(pc.any(mask).as_py())


def _newline_delimited(values: pa.Array) -> pa.Buffer:
    """The (non-null) binary ``values`` as one newline-delimited buffer, joined by Arrow."""
    joined = pc.binary_join_element_wise(values, pa.scalar(b"", pa.binary()), b"\n")
    # The offsets into the data buffer: int32, or int64 for large binary.
    bounds = memoryview(joined.buffers()[1]).cast("q" if pa.types.is_large_binary(joined.type) else "i")
    first, last = bounds[joined.offset], bounds[joined.offset + len(joined)]
    return joined.buffers()[2][first:last]


def decode_columns(
    records: Sequence[Record], decoder: ChangeDecoder, columns: RecordColumns | None = None
) -> ColumnBatch | None:
    """The batch as columns, or ``None`` if it needs the per-record decoder. ``columns`` are the
    records' :class:`RecordColumns` when the caller has them already."""
    if not records:
        return None
    prefix: bytes | None = None
    schema_index = -1
    first_value = records[0].value
    if first_value is None:
        return None
    if first_value.startswith(b'{"schema":'):
        known = decoder.value_prefix(first_value)
        if known is not None:
            prefix, schema_index = known
        if prefix is None or schema_index < 0:
            return None  # a schema not seen yet: the per-record decoder learns it
    if columns is None:
        columns = record_columns(records)
    raw_values, raw_keys = columns.values, columns.keys
    if not isinstance(raw_values, pa.Array) or not isinstance(raw_keys, pa.Array):
        return None  # over 2 GiB in one batch (chunked): the per-record path
    if raw_values.null_count or raw_keys.null_count:
        return None  # tombstones (and unkeyed records) take the per-record path
    values: pa.Array
    if prefix is not None:
        if not (_all(pc.starts_with(raw_values, prefix)) and _all(pc.ends_with(raw_values, b"}"))):
            return None
        values = pc.binary_slice(raw_values, len(prefix), -1)
    else:
        if _any(pc.starts_with(raw_values, b'{"schema":')):
            return None
        values = raw_values
    keys = _key_texts(raw_keys, decoder)
    if keys is None:
        return None
    declared: RowSchema | None = decoder.schemas[schema_index] if schema_index >= 0 else None
    try:
        if declared is not None:
            read_types = [(c.name, _read_type(c)) for c in declared]
            if any(t is None for _, t in read_types):
                return None
            explicit = pa.schema([*_ENVELOPE, ("after", pa.struct(read_types))])
            options = pj.ParseOptions(explicit_schema=explicit, unexpected_field_behavior="ignore")
        else:
            options = pj.ParseOptions(explicit_schema=pa.schema(_ENVELOPE), unexpected_field_behavior="infer")
        parsed = pj.read_json(pa.BufferReader(_newline_delimited(values)), parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    if parsed.num_rows != len(records) or "after" not in parsed.column_names:
        return None
    ops = parsed.column("op").combine_chunks()
    source = parsed.column("source").combine_chunks()
    after_struct = parsed.column("after").combine_chunks()
    if not pa.types.is_struct(after_struct.type) or after_struct.null_count or source.null_count:
        return None
    if not pc.all(pc.is_in(ops, value_set=_ROW_OPS)).as_py():
        return None  # deletes take the per-record path (tombstones and markers)
    lsns = source.field("lsn")
    if lsns.null_count:
        return None
    after = pa.Table.from_arrays(after_struct.flatten(), names=[f.name for f in after_struct.type])
    key_rows = _key_rows(keys, after)
    if key_rows is None or any(pa.types.is_nested(f.type) for f in key_rows.schema):
        return None
    if declared is not None:
        source_columns = tuple(declared)
    else:
        inferred = _inferred_columns(after)
        if inferred is None:
            return None
        source_columns, after = inferred
    stamps = pc.coalesce(source.field("ts_ms"), parsed.column("ts_ms").combine_chunks(), columns.timestamps)
    try:
        key_texts = keys.cast(pa.large_binary()).cast(pa.large_string())
    except pa.ArrowInvalid:
        return None  # not UTF-8: the per-record path decides
    return ColumnBatch(
        keys=key_texts,
        key_rows=key_rows,
        ops=ops,
        lsns=lsns,
        partitions=columns.partitions,
        offsets=columns.offsets,
        ts_ms=stamps,
        after=after,
        columns=source_columns,
        schema=schema_index,
    )


def _key_texts(raw: pa.Array, decoder: ChangeDecoder) -> pa.Array | None:
    """The keys' payload texts (as ``ChangeDecoder.key_text``), if they all have the same shape."""
    first = raw[0].as_py()
    if first.startswith(b'{"schema":'):
        prefix = decoder.key_prefix(first)
        if prefix is None or not (_all(pc.starts_with(raw, prefix)) and _all(pc.ends_with(raw, b"}"))):
            return None
        return pc.binary_slice(raw, len(prefix), -1)
    if _any(pc.starts_with(raw, b'{"schema":')):
        return None
    return raw


def _key_rows(keys: pa.Array, after: pa.Table) -> pa.Table | None:
    """The key columns of every event. Debezium's after-image holds the primary key's columns
    with the key's values, so they are taken from there when it has them all (the key's names
    come from the first key); otherwise the keys are parsed."""
    try:
        first = orjson.loads(keys[0].as_py())
    except orjson.JSONDecodeError:
        return None
    if not isinstance(first, dict) or not first:
        return None
    if all(name in after.column_names for name in first):
        return after.select(list(first))
    try:
        parsed = pj.read_json(pa.BufferReader(_newline_delimited(keys)))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    return parsed if parsed.num_rows == len(keys) else None


def _inferred_columns(after: pa.Table) -> tuple[tuple[SourceColumn, ...], pa.Table] | None:
    """Source columns of plain-JSON after-images as the reader typed them (the per-record path
    infers the same: integer → long, number → double, boolean, string); columns without a value
    are left out; nested values send the batch to the per-record path."""
    columns: list[SourceColumn] = []
    keep: list[str] = []
    for field in after.schema:
        kind = field.type
        if pa.types.is_null(kind):
            continue
        if pa.types.is_boolean(kind):
            column = SourceColumn(field.name, BooleanType())
        elif pa.types.is_integer(kind):
            column = SourceColumn(field.name, LongType())
        elif pa.types.is_floating(kind):
            column = SourceColumn(field.name, DoubleType())
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            column = SourceColumn(field.name, StringType())
        else:
            return None
        columns.append(column)
        keep.append(field.name)
    return tuple(columns), after.select(keep)


def latest_per_key(batch: ColumnBatch, keep: pa.Array | None = None) -> pa.Array:
    """Row numbers of each key's newest event (the largest LSN; a duplicate with the same LSN is
    the same change) among the rows ``keep`` allows."""
    rows = pa.table(
        {
            "_key": batch.keys,
            "_lsn": batch.lsns,
            "_offset": batch.offsets,
            "__row": row_numbers(len(batch)),
        }
    )
    if keep is not None:
        rows = rows.filter(keep)
    if rows.num_rows == 0:
        return pa.array([], pa.int64())
    ordered = rows.take(
        pc.sort_indices(
            rows, sort_keys=[("_key", "ascending"), ("_lsn", "descending"), ("_offset", "ascending")]
        )
    )
    keys = ordered.column("_key").combine_chunks()
    first = pc.not_equal(keys.slice(1), keys.slice(0, len(keys) - 1))
    starts = pa.concat_arrays([pa.array([True]), first.fill_null(True) if first.null_count else first])
    return ordered.column("__row").filter(starts).combine_chunks()


def to_target(values: pa.Array, column: SourceColumn, target: pa.DataType) -> pa.Array:
    """A column as read, converted to the table column's type (as ``changes.to_arrow`` does)."""
    if column.convert == TS_MS:
        values = pc.multiply_checked(values, 1000)
    elif column.convert == TS_NS:
        values = pc.divide(values, 1000)
    if column.convert in (TS_US, TS_MS, TS_NS):
        values = values.cast(pa.timestamp("us", tz="UTC"))
    elif column.convert == DAYS:
        values = values.cast(pa.date32())
    elif column.convert != PLAIN:
        raise ValueError(f"conversion {column.convert!r} is not on the fast path")
    return values if values.type == target else values.cast(target)
