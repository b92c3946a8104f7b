"""Pure tests of the event-log data model: partitioning, topic names, lag."""

from __future__ import annotations

import zlib

import pytest

from shopops.core.errors import InvalidInputError
from shopops.events.model import PartitionLag, Record, TopicPartition, partition_for, validate_topic_name


@pytest.mark.parametrize("partitions", [1, 2, 3, 7, 64])
def test_keyed_partition_is_crc32_of_the_key(partitions: int) -> None:
    for i in range(500):
        key = f"customer-{i}".encode()
        assert partition_for(key, partitions) == zlib.crc32(key) % partitions
        assert 0 <= partition_for(key, partitions) < partitions


def test_known_values_match_librdkafka_consistent_partitioner() -> None:
    # CRC-32 (IEEE) of these keys, as librdkafka's rd_crc32 computes it.
    assert zlib.crc32(b"") == 0
    assert zlib.crc32(b"123456789") == 0xCBF43926
    assert partition_for(b"", 5) == 0
    assert partition_for(b"123456789", 10) == 0xCBF43926 % 10


def test_same_key_same_partition_and_unkeyed_records_use_the_fallback() -> None:
    assert partition_for(b"order-42", 12) == partition_for(b"order-42", 12)
    assert partition_for(None, 4) == 0
    assert partition_for(None, 4, fallback=6) == 2


@pytest.mark.parametrize("name", ["orders", "vn.shop.orders", "a", "A-b_c.9", "x" * 249])
def test_valid_topic_names(name: str) -> None:
    assert validate_topic_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "has space", "slash/ed", "ünïcode", "x" * 250, "tab\t"])
def test_invalid_topic_names_are_refused_with_a_hint(name: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        validate_topic_name(name)
    assert caught.value.hint is not None
    assert "letters, digits" in caught.value.hint


def test_lag_is_end_minus_committed_and_everything_when_never_committed() -> None:
    assert PartitionLag("g", "t", 0, 40, 100).lag == 60
    assert PartitionLag("g", "t", 1, 100, 100).lag == 0
    never = PartitionLag("g", "t", 2, None, 100)
    assert never.committed is None
    assert never.lag == 100


def test_record_is_an_immutable_value_with_its_topic_partition() -> None:
    record = Record("t", 3, 17, b"k", None, 1_000)
    assert record.tp == TopicPartition("t", 3)
    assert str(record.tp) == "t[3]"
    assert record.headers == ()
    assert record == Record(topic="t", partition=3, offset=17, key=b"k", value=None, timestamp_ms=1_000)
    with pytest.raises(AttributeError):
        record.offset = 18  # type: ignore[misc]
    assert hash(record) == hash(Record("t", 3, 17, b"k", None, 1_000))
