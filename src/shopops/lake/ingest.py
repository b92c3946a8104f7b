"""The ingestion worker: every CDC topic of the event log into its bronze and silver Iceberg tables.

One read of the log feeds both stages: each batch of a topic is read once, from the lower of the
two tables' committed positions, and each table gets the records past its own position (they
differ only after a crash between the two commits, or when one stage is new). Each table commits
its part with the position it reached, so each is exactly-once on its own.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException

from shopops.core.errors import InvalidInputError
from shopops.core.logging import get_logger
from shopops.core.settings import CDC_TOPICS
from shopops.events.model import Record
from shopops.events.port import EventLog
from shopops.lake.bronze import BronzeTable
from shopops.lake.checks import BatchChecker
from shopops.lake.silver import SilverTable, topic_parts

log = get_logger("shopops.lake")


class Sink(Protocol):
    """A table fed from one topic, with its own committed position."""

    name: str

    def committed_offsets(self) -> dict[int, int]: ...

    def write(self, records: list[Record], offsets: dict[int, int]) -> int:
        """Write ``records`` and move the position to ``offsets`` in one commit (raise
        ``CommitFailedException`` if another worker committed first)."""
        ...

    def refresh(self) -> None: ...


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One batch of one topic: records read, the position reached, rows written per table."""

    topic: str
    records: int
    offsets: dict[int, int]
    written: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Batch:
    records: list[Record]
    offsets: dict[int, int]


def read_batch(log: EventLog, topic: str, start: dict[int, int], max_records: int) -> _Batch:
    """Up to ``max_records`` records of ``topic`` from ``start`` on, partition by partition."""
    ends = log.end_offsets(topic)
    records: list[Record] = []
    offsets = dict(start)
    for partition in sorted(ends):
        position = start.get(partition, 0)
        while position < ends[partition] and len(records) < max_records:
            chunk = log.read(topic, partition, position, min(5_000, max_records - len(records)))
            if not chunk:
                break
            records.extend(chunk)
            position = chunk[-1].offset + 1
        offsets[partition] = position
    return _Batch(records, offsets)


def _lowest(positions: Sequence[dict[int, int]]) -> dict[int, int]:
    partitions = {p for position in positions for p in position}
    return {p: min(position.get(p, 0) for position in positions) for p in sorted(partitions)}


def ingest_topic(
    log: EventLog,
    sinks: Sequence[Sink],
    topic: str,
    max_records: int,
    on_batch: Callable[[BatchResult], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Catch every sink of ``topic`` up with the log, one commit per sink and batch; returns the
    records read.

    The next batch is read while the current one is written and committed (Parquet encoding and
    the catalog commit release the GIL, so the two overlap on two cores). A sink only ever
    commits on top of the position its records were read from: after a lost commit (another
    worker moved the table) the prefetched batch is dropped and reading starts again from the
    new positions.
    """
    total = 0
    conflicts = 0
    positions = {sink.name: sink.committed_offsets() for sink in sinks}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lake-read") as pool:
        start = _lowest(list(positions.values()))
        batch = read_batch(log, topic, start, max_records)
        while batch.records and not stop():
            ahead = pool.submit(read_batch, log, topic, batch.offsets, max_records)
            lost = False
            written: dict[str, int] = {}
            for sink in sinks:
                position = positions[sink.name]
                target = {p: max(o, position.get(p, 0)) for p, o in batch.offsets.items()}
                if position == target:
                    continue  # this table is already past the batch
                if all(position.get(p, 0) == start.get(p, 0) for p in batch.offsets):
                    records = batch.records
                else:  # this table is ahead of the other one in some partition
                    records = [r for r in batch.records if r.offset >= position.get(r.partition, 0)]
                try:
                    written[sink.name] = sink.write(records, target)
                except CommitFailedException:
                    lost = True
                    sink.refresh()
                    positions[sink.name] = sink.committed_offsets()
                    continue
                positions[sink.name] = target
            if lost:
                ahead.result()
                conflicts += 1
                if conflicts > 100:
                    raise CommitFailedException(f"{topic}: 100 commits lost to other workers") from None
                # Start again from the winners' positions, after a short random pause so that
                # racing workers spread out.
                time.sleep(random.random() * 0.02 * min(conflicts, 10))
                start = _lowest(list(positions.values()))
                batch = read_batch(log, topic, start, max_records)
                continue
            total += len(batch.records)
            if on_batch is not None:
                on_batch(BatchResult(topic, len(batch.records), batch.offsets, written))
            start = batch.offsets
            batch = ahead.result()
    return total


class LakeIngestor:
    """Moves change events of the topics matching ``topics`` into bronze and silver tables.

    A batch is up to ``batch_records`` records of one topic; each table commits its part of it
    with the position it reached (one Iceberg commit per table and batch). Silver (``silver``,
    on by default) is built for CDC topics (``<region>.<database>.<table>``); ``checker`` checks
    each silver batch's rows before they are applied. ``run_once`` catches every topic up;
    ``start`` keeps doing so every ``interval_s`` in a thread until ``stop``.
    """

    def __init__(
        self,
        event_log: EventLog,
        catalog: Catalog,
        *,
        topics: str = CDC_TOPICS,
        batch_records: int = 50_000,
        interval_s: float = 2.0,
        silver: bool = True,
        bronze: bool = True,
        checker: BatchChecker | None = None,
    ) -> None:
        self.event_log = event_log
        self.catalog = catalog
        try:
            self.pattern = re.compile(topics)
        except re.error as exc:
            raise InvalidInputError(
                f"topics {topics!r} is not a regular expression ({exc})", hint="e.g. '^vn\\.shop\\.'"
            ) from None
        self.batch_records = batch_records
        self.interval_s = interval_s
        self.silver = silver
        self.bronze = bronze
        self.checker = checker
        self._sinks: dict[str, list[Sink]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def topics(self) -> list[str]:
        return [t.name for t in self.event_log.list_topics() if self.pattern.match(t.name)]

    def sinks(self, topic: str) -> list[Sink]:
        """The tables ``topic`` feeds (opened, or created, on first use)."""
        if topic not in self._sinks:
            sinks: list[Sink] = []
            if self.bronze:
                sinks.append(BronzeTable(self.catalog, topic))
            if self.silver and topic_parts(topic) is not None:
                sinks.append(SilverTable(self.catalog, topic, checker=self.checker))
            self._sinks[topic] = sinks
        return self._sinks[topic]

    def run_once(self, progress: Callable[[BatchResult], None] | None = None) -> int:
        """Ingest until every topic is caught up; returns the records read."""
        total = 0
        for topic in self.topics():
            if self._stop.is_set():
                break
            sinks = self.sinks(topic)
            if sinks:
                total += ingest_topic(
                    self.event_log, sinks, topic, self.batch_records, progress, self._stop.is_set
                )
        return total

    def start(self) -> LakeIngestor:
        self._thread = threading.Thread(target=self._loop, name="lake-ingest", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                read = self.run_once()
                if read:
                    log.info("lake ingest", records=read)
            except Exception as exc:  # keep the worker alive; the next round retries from the commit
                log.error("lake ingest failed", error=str(exc))
                self._sinks.clear()  # reopen the tables: another worker may have changed them
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
