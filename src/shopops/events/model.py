"""Event-log records and offsets: pure data, shared by every backend."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from shopops.core.errors import InvalidInputError

Headers = tuple[tuple[str, bytes], ...]

_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
#: CDC topics are named ``<region>.<database>.<table>``, as Debezium names them.
CDC_TOPIC = re.compile(r"^[a-z]{2}\.[a-z0-9_]+\.[a-z0-9_]+$")


def is_cdc_topic(name: str) -> bool:
    return CDC_TOPIC.match(name) is not None


def validate_topic_name(name: str) -> str:
    """Kafka's topic-name rules, enforced on every backend so that topics move between them."""
    if not _TOPIC_RE.match(name) or name in (".", ".."):
        raise InvalidInputError(
            f"invalid topic name {name!r}",
            hint="use 1-249 characters from letters, digits, '.', '_' and '-'",
        )
    return name


def validate_partition_count(partitions: object) -> int:
    """A topic's partition count: a whole number of at least 1."""
    if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
        raise InvalidInputError(
            f"a topic needs at least 1 partition (got {partitions!r})", hint="pass partitions >= 1"
        )
    return partitions


def validate_subscription(group_id: str, topics: Iterable[str], auto_offset_reset: str) -> list[str]:
    """Check a consumer's arguments; returns the topic names, sorted and without repeats."""
    if not isinstance(group_id, str) or not group_id.strip():
        raise InvalidInputError("a consumer needs a non-empty group id")
    names = sorted({validate_topic_name(t) for t in ([topics] if isinstance(topics, str) else topics)})
    if not names:
        raise InvalidInputError("a consumer needs at least one topic to subscribe to")
    if auto_offset_reset not in ("earliest", "latest"):
        raise InvalidInputError(
            f"auto_offset_reset must be 'earliest' or 'latest' (got {auto_offset_reset!r})"
        )
    return names


def partition_for(key: bytes | None, partitions: int, fallback: int = 0) -> int:
    """Partition of a keyed record: CRC32 of the key, as librdkafka's default partitioner does.

    Keyed records always land in the same partition, so per-key order is kept, and a key maps to
    the same partition on the sqlite and kafka backends. Unkeyed records go to ``fallback``.
    """
    if key is None:
        return fallback % partitions
    return zlib.crc32(key) % partitions


@dataclass(frozen=True, slots=True)
class TopicPartition:
    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]"


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """A record to produce. ``value=None`` is a tombstone."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    headers: Headers = ()
    timestamp_ms: int | None = None


class Record(NamedTuple):
    """A record as stored in the log, with its position.

    A named tuple rather than a frozen dataclass: consumers build hundreds of thousands of these a
    second, and a tuple is built several times faster (it is just as immutable).
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: Headers = ()

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    partitions: int
    #: Sum over partitions of the end offset (records ever written, minus any compaction).
    messages: int = 0


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """How far a consumer group is behind one partition. Offsets follow Kafka: ``committed`` is
    the next offset the group will read; ``None`` when the group never committed there."""

    group: str
    topic: str
    partition: int
    committed: int | None
    end_offset: int
    lag: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lag", self.end_offset - (self.committed or 0))
