"""Decoding and typing change events for silver, and the per-key order — no I/O."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import orjson
import pyarrow as pa
import pytest
from pyiceberg.types import DateType, DoubleType, IntegerType, LongType, StringType, TimestamptzType

from shopops.events.debezium import Column, Op, encode_key, encode_value, key_schema, value_schema
from shopops.events.model import Record
from shopops.lake.changes import (
    TOMBSTONE,
    ChangeDecoder,
    ConversionError,
    SourceColumn,
    Truncate,
    column_pieces,
    connect_column,
    infer_plain,
    reduce_per_key,
    supersedes,
    to_arrow,
)

TOPIC = "vn.shop.orders"
COLUMNS = [
    Column("order_id", "string"),
    Column("item_count", "int32"),
    Column("weight_kg", "float64", optional=True),
    Column("paid", "boolean"),
    Column("created_at", "int64", logical="io.debezium.time.MicroTimestamp"),
    Column("promised_date", "int32", logical="io.debezium.time.Date"),
]
SCHEMA = orjson.dumps(value_schema(TOPIC, COLUMNS))
KEY_SCHEMA = key_schema(TOPIC, [Column("order_id", "string")])


def _row(i: int, **changes: Any) -> dict[str, Any]:
    return {
        "order_id": f"o-{i}",
        "item_count": i,
        "weight_kg": 1.5,
        "paid": False,
        "created_at": 1_767_229_596_175_285,
        "promised_date": 20_455,
        **changes,
    }


def _record(
    offset: int,
    op: Op | None,
    row: dict[str, Any] | None,
    lsn: int,
    *,
    schema: bool = True,
    key: str | None = None,
    partition: int = 0,
) -> Record:
    key_doc = {"order_id": key or (row or {}).get("order_id", "o-1")}
    raw_key = encode_key(key_doc, KEY_SCHEMA if schema else None)
    if op is None:
        return Record(TOPIC, partition, offset, raw_key, None, 1_000 + offset)
    source = {"name": "vn", "db": "shop", "table": "orders", "ts_ms": 1_000 + offset, "lsn": lsn}
    before = row if op is Op.DELETE else None
    after = None if op is Op.DELETE else row
    value = encode_value(op, before, after, source, 1_000 + offset, SCHEMA if schema else None)
    return Record(TOPIC, partition, offset, raw_key, value, 1_000 + offset)


def test_schema_envelopes_decode_through_the_remembered_prefix() -> None:
    decoder = ChangeDecoder()
    records = [_record(i, Op.CREATE, _row(i), 100 + i) for i in range(3)]
    batch = decoder.decode(records)
    assert batch.keys == ['{"order_id":"o-0"}', '{"order_id":"o-1"}', '{"order_id":"o-2"}']
    assert batch.ops == ["c", "c", "c"]
    assert batch.lsns == [100, 101, 102]
    assert batch.schemas == [0, 0, 0]
    assert batch.rows[1] == _row(1)
    assert len(decoder._value_prefixes) == 1
    assert len(decoder._key_prefixes) == 1
    assert decoder.key_schema == (SourceColumn("order_id", StringType()),)
    # Decoding again goes through the prefixes and gives the same result.
    again = decoder.decode(records)
    assert again.rows == batch.rows
    assert again.keys == batch.keys


def test_plain_envelopes_tombstones_and_bad_records() -> None:
    records = [
        _record(0, Op.CREATE, _row(1), 10, schema=False),
        _record(1, Op.DELETE, _row(1), 11, schema=False),
        _record(2, None, None, 0, schema=False, key="o-1"),
        Record(TOPIC, 0, 3, b'{"order_id": "o-2"}', b"not json", 5),
        Record(TOPIC, 0, 4, None, encode_value(Op.CREATE, None, _row(3), {"lsn": 1}, 5), 5),
        Record(TOPIC, 0, 5, b'{"order_id": "o-3"}', b'{"op": "x", "source": {}}', 5),
        Record(TOPIC, 0, 6, b'{"order_id": "o-3"}', encode_value(Op.TRUNCATE, None, None, {"lsn": 40}, 5), 5),
        # Debezium sends truncates without a key.
        Record(TOPIC, 0, 7, None, encode_value(Op.TRUNCATE, None, None, {"lsn": 41, "ts_ms": 7}, 6), 9),
        Record(TOPIC, 0, 8, None, encode_value(Op.TRUNCATE, None, None, {}, 8, SCHEMA), 9),
    ]
    batch = ChangeDecoder().decode(records)
    assert batch.ops == ["c", "d", TOMBSTONE]
    assert batch.schemas == [-1, -1, -1]
    assert batch.rows[0] == _row(1)
    assert batch.rows[1] is None
    assert batch.lsns == [10, 11, None]
    reasons = {offset: reason for _, offset, reason in batch.skipped}
    assert set(reasons) == {3, 4, 5}
    assert "value: not valid JSON" in reasons[3]
    assert "no key" in reasons[4]
    assert "payload.op" in reasons[5]
    # Truncates, keyed or not, plain or in a schema envelope: their position (source time, else
    # the event's, else the record's).
    assert batch.truncates == [Truncate(40, 0, 6, 5), Truncate(41, 0, 7, 7), Truncate(None, 0, 8, 8)]


def test_a_truncate_is_later_than_another_and_precedes_events_by_lsn_then_log_order() -> None:
    first, second = Truncate(20, 0, 3, 500), Truncate(30, 1, 0, 400)
    assert second.later(first) == second
    assert first.later(second) == second
    assert first.later(None) == first
    assert first.later(first) == first
    assert first.precedes(19, 1, 9, 900)
    assert first.precedes(20, 1, 9, 900)  # the same LSN: not after it
    assert not first.precedes(21, 0, 0, 0)
    # Without an LSN: the offset in the truncate's partition, else the source time.
    assert first.precedes(None, 0, 2, 999)
    assert not first.precedes(None, 0, 4, 1)
    assert first.precedes(None, 1, 0, 499)
    assert not first.precedes(None, 1, 0, 500)


def test_duplicates_and_replayed_events_change_nothing_and_tombstones_follow_deletes() -> None:
    records = [
        _record(0, Op.CREATE, _row(1), 10),
        _record(1, Op.UPDATE, _row(1, paid=True), 11),
        _record(2, Op.UPDATE, _row(1, paid=True), 11),  # duplicate: same LSN
        _record(3, Op.UPDATE, _row(1, item_count=9), 10),  # replayed older event
        _record(4, Op.CREATE, _row(2), 12),
        _record(5, Op.DELETE, _row(2), 13),
        _record(6, None, None, 0, key="o-2"),  # tombstone after a delete: nothing more
        _record(7, Op.CREATE, _row(3), 14),
        _record(8, None, None, 0, key="o-3"),  # tombstone with no delete (compacted away)
    ]
    batch = ChangeDecoder().decode(records)
    winners, inherited = reduce_per_key(batch)
    assert sorted(winners) == [1, 5, 8]
    assert inherited == {8: 14}
    # The checks rejected the update and its duplicate: the insert stands.
    winners, _ = reduce_per_key(batch, excluded={1, 2})
    assert 0 in winners


def test_supersedes_uses_lsn_then_partition_order_then_time() -> None:
    assert supersedes(11, 0, 5, 0, 10, 0, 9, 0)
    assert not supersedes(10, 0, 9, 0, 10, 0, 5, 0)  # same LSN: a duplicate
    assert supersedes(None, 0, 6, 0, 10, 0, 5, 0)  # no LSN: later in the partition
    assert not supersedes(None, 1, 6, 100, None, 0, 50, 200)  # moved partition: older source time


def test_typing_follows_the_connect_schema() -> None:
    decoder = ChangeDecoder()
    batch = decoder.decode([_record(0, Op.CREATE, _row(1, weight_kg=None), 10)])
    pieces = dict((c.name, (c, v)) for c, v in column_pieces(batch, decoder, [0], frozenset({"order_id"})))
    assert set(pieces) == {"item_count", "weight_kg", "paid", "created_at", "promised_date"}
    assert pieces["item_count"][0].type == IntegerType()
    assert pieces["weight_kg"][0].type == DoubleType()
    column, values = pieces["created_at"]
    assert column.type == TimestamptzType()
    stamp = to_arrow(values, column, pa.timestamp("us", tz="UTC")).to_pylist()[0]
    assert stamp == dt.datetime(2026, 1, 1, 1, 6, 36, 175_285, tzinfo=dt.UTC)
    column, values = pieces["promised_date"]
    assert column.type == DateType()
    assert to_arrow(values, column, pa.date32()).to_pylist() == [dt.date(2026, 1, 2)]
    # An int column into a long column is widened without loss.
    column, values = pieces["item_count"]
    assert to_arrow(values, column, pa.int64()).type == pa.int64()


def test_connect_decimals_and_bytes_keep_their_exact_value() -> None:
    decimal = connect_column(
        {
            "field": "amount",
            "type": "bytes",
            "name": "org.apache.kafka.connect.data.Decimal",
            "parameters": {"scale": "2"},
        }
    )
    raw = base64.b64encode((-12345).to_bytes(2, "big", signed=True)).decode()
    assert to_arrow([raw, None], decimal, pa.large_string()).to_pylist() == ["-123.45", None]
    blob = connect_column({"field": "blob", "type": "bytes"})
    assert to_arrow([base64.b64encode(b"\x00\x01").decode()], blob, pa.large_binary()).to_pylist() == [
        b"\x00\x01"
    ]


def test_values_that_do_not_fit_are_named() -> None:
    column = SourceColumn("item_count", IntegerType())
    with pytest.raises(ConversionError) as caught:
        to_arrow([1, "two", 3, 2**40], column, pa.int32())
    assert caught.value.rows == [1, 3]
    with pytest.raises(ConversionError):
        to_arrow([1], SourceColumn("name", StringType()), pa.large_string())  # no silent number -> text


def test_plain_rows_are_inferred_and_a_type_change_splits_the_column() -> None:
    rows = [
        {"id": "a", "n": 1, "x": 1.5, "flag": True, "doc": {"k": 1}, "none": None, "w": 1.25},
        {"id": "b", "n": 2, "x": 2, "flag": False, "doc": [1], "none": None, "w": "1.250"},
    ]
    inferred = infer_plain(rows, frozenset({"id"}))
    kinds = [(c.name, c.type, c.convert) for c, _ in inferred]
    assert ("n", LongType(), "") in kinds
    assert ("x", DoubleType(), "") in kinds
    assert ("doc", StringType(), "json") in kinds
    assert all(name != "none" and name != "id" for name, _, _ in kinds)
    split = {str(c.type): v for c, v in inferred if c.name == "w"}
    assert split == {"double": [1.25, None], "string": [None, "1.250"]}
    doc = next((c, v) for c, v in inferred if c.name == "doc")
    assert to_arrow(doc[1], doc[0], pa.large_string()).to_pylist() == ['{"k":1}', "[1]"]
