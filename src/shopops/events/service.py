"""Use cases over the event log: what the CLI and the API show about topics, records and groups."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from shopops.core.errors import InvalidInputError, NotFoundError
from shopops.events.debezium import DebeziumDecodeError, decode
from shopops.events.model import PartitionLag, Record, TopicInfo, is_cdc_topic
from shopops.events.port import EventLog


@dataclass(frozen=True, slots=True)
class RecordView:
    """A record made readable: decoded as a Debezium change event when it is one."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: Any
    value: Any
    op: str | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
            "op": self.op,
            "key": self.key,
            "value": self.value,
            "error": self.error,
        }


def _json_or_text(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", errors="replace")


def view(record: Record) -> RecordView:
    """Decode ``record`` for display; a malformed change event is shown raw with its error.

    Records of other topics (domain events such as ``shopops.inventory.events``) are shown as
    their JSON, with ``op`` null.
    """
    if not is_cdc_topic(record.topic):
        return RecordView(
            record.topic,
            record.partition,
            record.offset,
            record.timestamp_ms,
            _json_or_text(record.key),
            _json_or_text(record.value),
            None,
        )
    try:
        event = decode(record)
    except DebeziumDecodeError as exc:
        return RecordView(
            record.topic,
            record.partition,
            record.offset,
            record.timestamp_ms,
            _json_or_text(record.key),
            _json_or_text(record.value),
            None,
            exc.message,
        )
    value: Any = None
    if not event.is_tombstone:
        value = {"before": event.before, "after": event.after, "source": event.source, "ts_ms": event.ts_ms}
    return RecordView(
        record.topic,
        record.partition,
        record.offset,
        record.timestamp_ms,
        event.key,
        value,
        event.op.value if event.op else "tombstone",
    )


class EventsService:
    """Read-side use cases over one :class:`EventLog`."""

    def __init__(self, log: EventLog) -> None:
        self.log = log

    def topics(self, prefix: str = "") -> list[TopicInfo]:
        return [t for t in self.log.list_topics() if t.name.startswith(prefix)]

    def _require_topic(self, topic: str) -> TopicInfo:
        for info in self.log.list_topics():
            if info.name == topic:
                return info
        raise NotFoundError(
            f"topic {topic!r} does not exist", hint="list topics with `shopops events topics`"
        )

    def tail(self, topic: str, limit: int = 10, partition: int | None = None) -> list[RecordView]:
        """The last ``limit`` records of ``topic`` (of one partition, or of each), oldest first."""
        if limit < 1 or limit > 10_000:
            raise InvalidInputError(f"limit must be between 1 and 10000 (got {limit})")
        info = self._require_topic(topic)
        if partition is not None and not 0 <= partition < info.partitions:
            raise InvalidInputError(
                f"partition {partition} does not exist in {topic!r}",
                hint=f"use 0..{info.partitions - 1}",
            )
        ends = self.log.end_offsets(topic)
        records: list[Record] = []
        for part, end in sorted(ends.items()):
            if partition is not None and part != partition:
                continue
            records.extend(self.log.read(topic, part, max(0, end - limit), limit))
        records.sort(key=lambda r: (r.timestamp_ms, r.partition, r.offset))
        return [view(r) for r in records[-limit:]]

    def follow(self, topic: str, start: dict[int, int], poll_s: float = 0.5) -> Iterator[list[RecordView]]:
        """Yield new records of ``topic`` as they arrive, from ``start`` offsets per partition."""
        self._require_topic(topic)
        positions = dict(start)
        while True:
            batch: list[Record] = []
            for part in sorted(self.log.end_offsets(topic)):
                got = self.log.read(topic, part, positions.get(part, 0), 500)
                if got:
                    positions[part] = got[-1].offset + 1
                    batch.extend(got)
            yield [view(r) for r in batch]
            if not batch:
                time.sleep(poll_s)

    def lag(self, group_id: str) -> list[PartitionLag]:
        if group_id not in self.log.list_groups():
            raise NotFoundError(
                f"consumer group {group_id!r} has no committed offsets",
                hint="list groups with `shopops events groups`",
            )
        return self.log.lag(group_id)

    def groups(self) -> list[str]:
        return self.log.list_groups()
