"""Test helpers of the simulator: an in-memory event log (for tests only) and a finished run."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shopops.core.errors import BackendUnavailableError
from shopops.events.debezium import ChangeEvent, decode
from shopops.events.model import (
    Headers,
    OutgoingRecord,
    Record,
    TopicInfo,
    TopicPartition,
    partition_for,
)
from shopops.events.port import Consumer, EventLog, OffsetReset
from shopops.simulator.service import SimulationConfig, SimulationReport, run_simulation


class MemoryLog(EventLog):
    """Keeps every record in memory, partitioned like the real backends, and their global order."""

    def __init__(self) -> None:
        self.partitions: dict[str, int] = {}
        self.logs: dict[str, list[list[Record]]] = {}
        #: Every record in the order it was produced, across topics, and per topic.
        self.sequence: list[Record] = []
        self.by_topic: dict[str, list[Record]] = defaultdict(list)
        self.flushes = 0

    def create_topic(self, name: str, partitions: int = 1) -> None:
        if name not in self.partitions:
            self.partitions[name] = partitions
            self.logs[name] = [[] for _ in range(partitions)]

    def list_topics(self) -> list[TopicInfo]:
        return [
            TopicInfo(name, n, sum(len(p) for p in self.logs[name]))
            for name, n in sorted(self.partitions.items())
        ]

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Headers = (),
        timestamp_ms: int | None = None,
    ) -> None:
        self.create_topic(topic)
        partition = partition_for(key, self.partitions[topic])
        log = self.logs[topic][partition]
        record = Record(topic, partition, len(log), key, value, timestamp_ms or 0, headers)
        log.append(record)
        self.sequence.append(record)
        self.by_topic[topic].append(record)

    def produce_many(self, records: Iterable[OutgoingRecord]) -> int:
        n = 0
        for r in records:
            self.produce(r.topic, r.value, r.key, r.headers, r.timestamp_ms)
            n += 1
        return n

    def flush(self, timeout_s: float = 30.0) -> None:
        self.flushes += 1

    def consumer(
        self, group_id: str, topics: Iterable[str], auto_offset_reset: OffsetReset = "earliest"
    ) -> Consumer:
        raise NotImplementedError("the simulator tests never consume")

    def read(self, topic: str, partition: int, offset: int, max_records: int = 500) -> list[Record]:
        return self.logs[topic][partition][offset : offset + max_records]

    def end_offsets(self, topic: str) -> dict[int, int]:
        return {p: len(records) for p, records in enumerate(self.logs.get(topic, []))}

    def committed(self, group_id: str, topic: str) -> dict[int, int | None]:
        return {}

    def list_groups(self) -> list[str]:
        return []

    def close(self) -> None:
        self.flush()

    # --- helpers for assertions ---------------------------------------------------------------

    def records(self, topic: str) -> list[Record]:
        """Records of ``topic`` in production order."""
        return self.by_topic.get(topic, [])

    def offsets(self) -> Mapping[TopicPartition, int]:
        return {
            TopicPartition(t, p): len(recs) for t, parts in self.logs.items() for p, recs in enumerate(parts)
        }


class FailingLog(MemoryLog):
    """A log whose broker went away."""

    def produce_many(self, records: Iterable[OutgoingRecord]) -> int:
        raise BackendUnavailableError("the broker went away")


@dataclass
class World:
    """A finished run: its config, the log it wrote, its report and ground truth."""

    config: SimulationConfig
    log: MemoryLog
    report: SimulationReport
    truth_dir: Path
    progress: list[tuple[int, int]]

    @cached_property
    def decoded(self) -> dict[tuple[str, int, int], ChangeEvent]:
        """Every record decoded once, by (topic, partition, offset)."""
        return {(r.topic, r.partition, r.offset): decode(r) for r in self.log.sequence}

    def event(self, record: Record) -> ChangeEvent:
        return self.decoded[(record.topic, record.partition, record.offset)]

    def events(self, topic: str) -> list[ChangeEvent]:
        """Decoded records of ``topic`` in production order (tombstones included)."""
        return [self.event(r) for r in self.log.records(topic)]

    def truth(self, name: str) -> pa.Table:
        return pq.read_table(self.truth_dir / f"{name}.parquet")

    def truth_rows(self, name: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.truth(name).to_pylist()
        return rows

    def pains(self, kind: str) -> list[dict[str, Any]]:
        return [p for p in self.truth_rows("pains") if p["kind"] == kind]

    def rows(self, topic: str) -> list[ChangeEvent]:
        """Decoded change events of ``topic``, without tombstones and without re-delivered duplicates."""
        out: list[ChangeEvent] = []
        previous: dict[int, bytes | None] = {}
        for record in self.log.records(topic):
            if record.value is not None and previous.get(record.partition) != record.value:
                out.append(self.event(record))
            previous[record.partition] = record.value
        return out

    def latest(self, topic: str, key_field: str) -> dict[str, dict[str, Any]]:
        """The last row state per key of ``topic`` (deleted rows: their last state)."""
        out: dict[str, dict[str, Any]] = {}
        for e in self.rows(topic):
            row = e.row
            assert row is not None
            out[row[key_field]] = row
        return out

    def history(self, topic: str, key_field: str) -> dict[str, list[ChangeEvent]]:
        out: dict[str, list[ChangeEvent]] = defaultdict(list)
        for e in self.rows(topic):
            row = e.row
            assert row is not None
            out[row[key_field]].append(e)
        return out


def simulate(config: SimulationConfig, truth_dir: Path) -> World:
    log = MemoryLog()
    progress: list[tuple[int, int]] = []
    report = run_simulation(config, log, truth_dir, progress=lambda d, t: progress.append((d, t)))
    return World(config, log, report, truth_dir, progress)


#: One region, one day, a handful of orders.
TINY = SimulationConfig(regions=["sg"], days=1, orders_per_day=5, seed=1, envelope="plain")

#: Small, but with every pain ten times as frequent so that each shows up.
SMALL = SimulationConfig(
    regions=["vn", "sg", "th"], days=4, orders_per_day=60, seed=7, rate_multiplier=10, envelope="plain"
)
