"""The event-log port. Every backend (sqlite, kafka) implements it and passes one contract suite.

Semantics follow Kafka, so that code moves between backends by configuration alone:
- a topic has a fixed number of partitions; a keyed record goes to ``partition_for(key)``, so
  per-key order is kept;
- offsets are per partition, start at 0 and grow by one per record;
- a committed offset is the *next* offset the group will read;
- consumers of one group split the partitions of their topics among themselves; a new consumer
  of a group starts at the committed offset, else at ``auto_offset_reset``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from typing import Literal

from shopops.events.model import (
    Headers,
    OutgoingRecord,
    PartitionLag,
    Record,
    TopicInfo,
    TopicPartition,
)

OffsetReset = Literal["earliest", "latest"]


class Consumer(ABC):
    """A member of a consumer group, reading the partitions assigned to it."""

    group_id: str

    @abstractmethod
    def poll(self, max_records: int = 500, timeout_s: float = 1.0) -> list[Record]:
        """Return up to ``max_records`` records, waiting up to ``timeout_s`` for the first one."""

    @abstractmethod
    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit ``offsets`` (next offset to read, per partition) synchronously and durably.

        With ``None``, commit the position after the last record returned by :meth:`poll`.
        """

    @abstractmethod
    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Make the next :meth:`poll` of ``tp`` start at ``offset`` (must be assigned)."""

    @abstractmethod
    def position(self, tp: TopicPartition) -> int | None:
        """The offset the next :meth:`poll` of ``tp`` returns, if known."""

    @abstractmethod
    def assignment(self) -> set[TopicPartition]:
        """The partitions currently assigned to this member."""

    @abstractmethod
    def close(self) -> None:
        """Leave the group (its partitions go to the other members). Does not commit."""

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventLog(ABC):
    """Topics of partitioned, offset-addressed records, with consumer groups."""

    @abstractmethod
    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Create ``name``; creating an existing topic with the same partition count is a no-op,
        with another count a :class:`~shopops.core.errors.ConflictError`."""

    @abstractmethod
    def list_topics(self) -> list[TopicInfo]:
        """All topics, sorted by name."""

    @abstractmethod
    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Headers = (),
        timestamp_ms: int | None = None,
    ) -> None:
        """Queue one record (``value=None`` is a tombstone). Durable after :meth:`flush`.

        Producing to a topic that does not exist creates it with one partition.
        """

    @abstractmethod
    def produce_many(self, records: Iterable[OutgoingRecord]) -> int:
        """Queue many records; returns how many. Durable after :meth:`flush`."""

    @abstractmethod
    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until every queued record is durably written; raise if any failed."""

    @abstractmethod
    def consumer(
        self,
        group_id: str,
        topics: Iterable[str],
        auto_offset_reset: OffsetReset = "earliest",
    ) -> Consumer:
        """Join ``group_id`` and subscribe to ``topics``."""

    @abstractmethod
    def read(self, topic: str, partition: int, offset: int, max_records: int = 500) -> list[Record]:
        """Read up to ``max_records`` records of one partition from ``offset`` on, without a group.

        For inspection (``shopops events tail``) and replays: nothing is committed, no group is
        joined. Returns an empty list at the end of the partition; never waits.
        """

    @abstractmethod
    def end_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the offset the next produced record will get."""

    @abstractmethod
    def committed(self, group_id: str, topic: str) -> dict[int, int | None]:
        """Per partition, the group's committed offset (``None`` where it never committed)."""

    @abstractmethod
    def list_groups(self) -> list[str]:
        """Consumer groups that have committed offsets, sorted."""

    def read_all(self, topic: str, batch: int = 1000) -> Iterator[Record]:
        """Every record of ``topic``, partition by partition, oldest first, up to the end offsets
        read at the start (records produced meanwhile are left for the next reader)."""
        for partition, end in sorted(self.end_offsets(topic).items()):
            offset = 0
            while offset < end:
                records = self.read(topic, partition, offset, min(batch, end - offset))
                if not records:
                    break
                yield from records
                offset = records[-1].offset + 1

    def lag(self, group_id: str, topics: Iterable[str] | None = None) -> list[PartitionLag]:
        """Per partition of ``topics`` (default: every topic the group committed on), the lag."""
        names = list(topics) if topics is not None else self._topics_of_group(group_id)
        result: list[PartitionLag] = []
        for topic in names:
            committed = self.committed(group_id, topic)
            for partition, end in sorted(self.end_offsets(topic).items()):
                result.append(PartitionLag(group_id, topic, partition, committed.get(partition), end))
        return result

    def _topics_of_group(self, group_id: str) -> list[str]:
        return [
            t.name
            for t in self.list_topics()
            if any(v is not None for v in self.committed(group_id, t.name).values())
        ]

    @abstractmethod
    def close(self) -> None:
        """Flush and release connections."""

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
