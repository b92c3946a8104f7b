import orjson
import pytest

from shopops.events.debezium import (
    Column,
    DebeziumDecodeError,
    Op,
    decode,
    decode_batch,
    encode_key,
    encode_value,
    key_schema,
    row_columns,
    value_schema,
)
from shopops.events.model import Record

SOURCE = {"connector": "postgresql", "db": "shop", "table": "orders", "ts_ms": 1}
COLUMNS = [Column("id", "int64"), Column("total", "string"), Column("note", "string", optional=True)]


def rec(value: bytes | None, key: bytes | None = b'{"id": 1}', offset: int = 7) -> Record:
    return Record("vn.shop.orders", 2, offset, key, value, 1000)


def test_round_trip_json_with_schema() -> None:
    schema = orjson.dumps(value_schema("vn.shop.orders", COLUMNS))
    key = encode_key({"id": 1}, key_schema("vn.shop.orders", COLUMNS[:1]))
    value = encode_value(Op.UPDATE, {"id": 1, "total": "1.00"}, {"id": 1, "total": "2.00"}, SOURCE, 5, schema)
    event = decode(rec(value, key))
    assert event.op is Op.UPDATE
    assert event.key == {"id": 1}
    assert event.after == {"id": 1, "total": "2.00"}
    assert event.row == event.after
    assert event.value_schema is not None
    assert [c.name for c in row_columns(event.value_schema)] == ["id", "total", "note"]
    assert (event.topic, event.partition, event.offset, event.ts_ms) == ("vn.shop.orders", 2, 7, 5)


def test_round_trip_plain_json_and_delete_row() -> None:
    value = encode_value(Op.DELETE, {"id": 1, "total": "1.00"}, None, SOURCE, 9)
    event = decode(rec(value))
    assert event.op is Op.DELETE
    assert event.value_schema is None
    assert event.row == {"id": 1, "total": "1.00"}


def test_tombstone() -> None:
    event = decode(rec(None))
    assert event.is_tombstone
    assert event.key == {"id": 1}


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (b"{not json", "value"),
        (b"[1, 2]", "payload"),
        (b'{"op": "x", "after": {}, "source": {}}', "payload.op"),
        (b'{"op": "c", "after": null, "source": {}}', "payload.after"),
        (b'{"op": "d", "before": null, "source": {}}', "payload.before"),
        (b'{"op": "c", "after": {"id": 1}}', "payload.source"),
        (b'{"op": "c", "after": 3, "source": {}}', "payload.after"),
        (b'{"op": "c", "after": {}, "source": {}, "ts_ms": "soon"}', "payload.ts_ms"),
        (b'{"schema": 5, "payload": {}}', "value.schema"),
    ],
)
def test_malformed_events_name_field_and_offset(value: bytes, field: str) -> None:
    with pytest.raises(DebeziumDecodeError) as info:
        decode(rec(value, offset=42))
    assert info.value.field == field
    assert info.value.details["offset"] == 42
    assert f"vn.shop.orders[2]@42: {field}" in info.value.message


def test_malformed_key() -> None:
    with pytest.raises(DebeziumDecodeError) as info:
        decode(rec(b'{"op":"r","after":{},"source":{}}', key=b"[1]"))
    assert info.value.field == "key"


def test_decode_batch_keeps_going_past_bad_records() -> None:
    good = encode_value(Op.CREATE, None, {"id": 1}, SOURCE, 1)
    batch = decode_batch([rec(good, offset=1), rec(b"garbage", offset=2), rec(good, offset=3)])
    assert [e.offset for e in batch.events] == [1, 3]
    assert [f.details["offset"] for f in batch.failures] == [2]


def test_unknown_connect_type_is_rejected() -> None:
    with pytest.raises(Exception, match="unknown Connect type"):
        Column("x", "decimal")
