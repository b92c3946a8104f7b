"""The columnar fast path of silver decoding, and when it hands a batch to the per-record path."""

from __future__ import annotations

import pyarrow as pa
from pyiceberg.types import DoubleType, IntegerType, LongType, StringType, TimestamptzType
from tests.unit.lake.test_changes import SCHEMA, TOPIC, _record, _row

from shopops.events.debezium import Op, encode_value
from shopops.events.model import Record
from shopops.lake.changes import ChangeDecoder
from shopops.lake.columnar import decode_columns, latest_per_key, to_target


def _learnt() -> ChangeDecoder:
    decoder = ChangeDecoder()
    decoder.decode([_record(0, Op.CREATE, _row(0), 1)])  # the per-record path learns the prefix
    return decoder


def test_a_plain_batch_of_a_known_schema_is_read_as_columns() -> None:
    decoder = _learnt()
    records = [
        _record(1, Op.CREATE, _row(1), 10),
        _record(2, Op.UPDATE, _row(1, paid=True), 12),
        _record(3, Op.UPDATE, _row(1, paid=True), 12),  # duplicate
        _record(4, Op.UPDATE, _row(1, item_count=7), 11),  # replayed, older
        _record(5, Op.CREATE, _row(2), 13),
    ]
    batch = decode_columns(records, decoder)
    assert batch is not None
    assert batch.keys.to_pylist() == ['{"order_id":"o-1"}'] * 4 + ['{"order_id":"o-2"}']
    assert batch.lsns.to_pylist() == [10, 12, 12, 11, 13]
    assert [c.type for c in batch.columns][:2] == [StringType(), IntegerType()]
    assert batch.after.column("item_count").type == pa.int32()
    assert sorted(latest_per_key(batch).to_pylist()) == [1, 4]  # newest LSN; the first of duplicates
    stamps = to_target(
        batch.after.column("created_at").combine_chunks(), batch.columns[4], pa.timestamp("us", "UTC")
    )
    assert stamps.type == pa.timestamp("us", "UTC")
    # Rows a check rejected do not count.
    keep = pa.array([True, False, False, True, True])
    assert sorted(latest_per_key(batch, keep).to_pylist()) == [3, 4]


def test_plain_json_is_inferred_like_the_per_record_path() -> None:
    records = [_record(i, Op.CREATE, _row(i, weight_kg=1 + i / 2), 10 + i, schema=False) for i in range(3)]
    batch = decode_columns(records, ChangeDecoder())
    assert batch is not None
    kinds = {c.name: c.type for c in batch.columns}
    assert kinds["item_count"] == LongType()
    assert kinds["weight_kg"] == DoubleType()
    assert kinds["created_at"] == LongType()  # plain JSON has no logical types
    assert kinds["order_id"] == StringType()
    assert "promised_date" in kinds
    assert TimestamptzType() not in kinds.values()


def test_anything_unusual_takes_the_per_record_path() -> None:
    decoder = _learnt()
    fine = _record(1, Op.CREATE, _row(1), 10)
    cases = {
        "unknown schema": [_record(1, Op.CREATE, _row(1), 10)],  # a fresh decoder
        "delete": [fine, _record(2, Op.DELETE, _row(1), 11)],
        "tombstone": [fine, _record(2, None, None, 0, key="o-1")],
        "plain among schema": [fine, _record(2, Op.CREATE, _row(2), 11, schema=False)],
        "no lsn": [
            fine,
            Record(TOPIC, 0, 2, fine.key, encode_value(Op.CREATE, None, _row(2), {}, 5, SCHEMA), 5),
        ],
        "bad value": [fine, Record(TOPIC, 0, 2, fine.key, fine.value[:-2] + b"}", 5)],  # type: ignore[index]
        "wrong type": [fine, _record(2, Op.CREATE, _row(2, item_count="many"), 11)],
    }
    for name, records in cases.items():
        decoder_used = ChangeDecoder() if name == "unknown schema" else decoder
        assert decode_columns(records, decoder_used) is None, name
    assert decode_columns([fine], decoder) is not None
    nested = [_record(1, Op.CREATE, _row(1, doc={"a": 1}), 10, schema=False)]
    assert decode_columns(nested, ChangeDecoder()) is None
