"""The ingestion worker: every CDC topic of the event log into its bronze and silver Iceberg tables.

One read of the log feeds both stages: each batch of a topic is read once, from the lower of the
two tables' committed positions, and each table gets the records past its own position (they
differ only after a crash between the two commits, or when one stage is new). Each table commits
its part with the position it reached, so each is exactly-once on its own.
"""

from __future__ import annotations

import contextlib
import gc
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import Counter
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException

from shopops.core.errors import InvalidInputError
from shopops.core.logging import get_logger
from shopops.core.settings import CDC_TOPICS
from shopops.events.model import Record
from shopops.events.port import EventLog
from shopops.lake.bronze import BronzeTable
from shopops.lake.checks import BatchChecker
from shopops.lake.columnar import RecordColumns, record_columns
from shopops.lake.decisions import SchemaDecisions
from shopops.lake.maintenance import DEFAULT_KEEP_SNAPSHOTS, DEFAULT_OLDER_THAN_S, CleanReport, clean_lake
from shopops.lake.silver import SilverTable, topic_parts

log = get_logger("shopops.lake")

CLEANED_FILES = Counter(
    "shopops_lake_clean_deleted_files_total", "Warehouse files deleted by the worker's cleanings"
)
CLEANED_BYTES = Counter(
    "shopops_lake_clean_deleted_bytes_total", "Bytes of the warehouse files the worker's cleanings deleted"
)


class Sink(Protocol):
    """A table fed from one topic, with its own committed position."""

    name: str

    def committed_offsets(self) -> dict[int, int]: ...

    def write(
        self, records: list[Record], offsets: dict[int, int], columns: RecordColumns | None = None
    ) -> int:
        """Write ``records`` and move the position to ``offsets`` in one commit (raise
        ``CommitFailedException`` if another worker committed first). ``columns``: the records'
        :class:`RecordColumns`, when the reader built them."""
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
    #: The batch reached the end of every partition (as the log stood when it was read).
    caught_up: bool = True
    #: Where it was read from.
    start: dict[int, int] | None = None
    #: The records' log fields as Arrow arrays, built once for every sink.
    columns: RecordColumns | None = None


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
    caught_up = all(offsets[p] >= end for p, end in ends.items())
    # The columns are built here, on the reading thread, while the previous batch is written.
    columns = record_columns(records) if records else None
    return _Batch(records, offsets, caught_up, dict(start), columns)


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often while batches are processed.

    A batch holds tens of thousands of records and decoded rows, none of them in cycles;
    reference counting frees them. At the default thresholds the collector scans that large heap
    again and again — half of bronze's CPU time in the benchmark. It still runs, about a hundred
    times less often; the previous thresholds come back afterwards (unless someone else changed
    them meanwhile: the thresholds are the process's).
    """
    previous = gc.get_threshold()
    wanted = (max(previous[0], 70_000), *previous[1:])
    gc.set_threshold(*wanted)
    try:
        yield
    finally:
        if gc.get_threshold() == wanted:
            gc.set_threshold(*previous)


def _lowest(positions: Sequence[dict[int, int]]) -> dict[int, int]:
    partitions = {p for position in positions for p in position}
    return {p: min(position.get(p, 0) for position in positions) for p in sorted(partitions)}


def start_of(sinks: Sequence[Sink]) -> dict[int, int]:
    """Where a read for ``sinks`` starts: the lowest of their committed positions."""
    return _lowest([sink.committed_offsets() for sink in sinks])


def _write(
    sink: Sink, records: list[Record], offsets: dict[int, int], columns: RecordColumns | None
) -> int | None:
    """``sink.write``; ``None`` when another worker committed first."""
    try:
        return sink.write(records, offsets, columns)
    except CommitFailedException:
        return None


def ingest_topic(
    log: EventLog,
    sinks: Sequence[Sink],
    topic: str,
    max_records: int,
    on_batch: Callable[[BatchResult], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
    *,
    reader: ThreadPoolExecutor | None = None,
    writer: ThreadPoolExecutor | None = None,
    first: Future[_Batch] | None = None,
    after: Callable[[], None] | None = None,
) -> int:
    """Catch every sink of ``topic`` up with the log, one commit per sink and batch; returns the
    records read.

    The next batch is read (``reader``) while the current one is written and committed; when the
    topic is caught up, ``after`` is called instead, so that the caller can start reading the next
    topic. The sinks write a batch side by side (all but the last one on ``writer``): Parquet
    encoding, compression and the catalog commit release the GIL, so bronze's writing overlaps
    silver's decoding on two cores. ``first`` is the topic's first batch, already being read.

    A sink only ever commits on top of the position its records were read from: after a lost
    commit (another worker moved the table) the prefetched batch is dropped and reading starts
    again from the new positions.
    """
    own_pools: list[ThreadPoolExecutor] = []
    if reader is None:
        reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lake-read")
        own_pools.append(reader)
    if writer is None and len(sinks) > 1:
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lake-write")
        own_pools.append(writer)
    try:
        return _ingest(log, sinks, topic, max_records, on_batch, stop, reader, writer, first, after)
    finally:
        for pool in own_pools:
            pool.shutdown()


def _ingest(
    log: EventLog,
    sinks: Sequence[Sink],
    topic: str,
    max_records: int,
    on_batch: Callable[[BatchResult], None] | None,
    stop: Callable[[], bool],
    reader: ThreadPoolExecutor,
    writer: ThreadPoolExecutor | None,
    first: Future[_Batch] | None,
    after: Callable[[], None] | None,
) -> int:
    total = 0
    conflicts = 0
    positions = {sink.name: sink.committed_offsets() for sink in sinks}
    start = _lowest(list(positions.values()))
    batch = first.result() if first is not None else read_batch(log, topic, start, max_records)
    if batch.start is not None and {p: o for p, o in batch.start.items() if o} != {
        p: o for p, o in start.items() if o
    }:
        batch = read_batch(log, topic, start, max_records)  # another worker moved the tables meanwhile
    while batch.records and not stop():
        ahead: Future[_Batch] | None = None
        if not batch.caught_up:
            ahead = reader.submit(read_batch, log, topic, batch.offsets, max_records)
        elif after is not None:
            after()
            after = None
        jobs: list[tuple[Sink, dict[int, int], Future[int | None] | None, int | None]] = []
        for n, sink in enumerate(sinks):
            position = positions[sink.name]
            target = {p: max(o, position.get(p, 0)) for p, o in batch.offsets.items()}
            if position == target:
                continue  # this table is already past the batch
            columns = batch.columns
            if all(position.get(p, 0) == start.get(p, 0) for p in batch.offsets):
                records = batch.records
            else:  # this table is ahead of the other one in some partition
                records = [r for r in batch.records if r.offset >= position.get(r.partition, 0)]
                columns = None
            if writer is not None and n < len(sinks) - 1:
                jobs.append((sink, target, writer.submit(_write, sink, records, target, columns), None))
            else:
                jobs.append((sink, target, None, _write(sink, records, target, columns)))
        lost = False
        written: dict[str, int] = {}
        for sink, target, job, result in jobs:
            done = job.result() if job is not None else result
            if done is None:
                lost = True
                sink.refresh()
                positions[sink.name] = sink.committed_offsets()
            else:
                written[sink.name] = done
                positions[sink.name] = target
        if lost:
            if ahead is not None:
                ahead.result()
            conflicts += 1
            if conflicts > 100:
                raise CommitFailedException(f"{topic}: 100 commits lost to other workers") from None
            # Start again from the winners' positions, after a short random pause so that racing
            # workers spread out.
            time.sleep(random.random() * 0.02 * min(conflicts, 10))
            start = _lowest(list(positions.values()))
            batch = read_batch(log, topic, start, max_records)
            continue
        total += len(batch.records)
        if on_batch is not None:
            on_batch(BatchResult(topic, len(batch.records), batch.offsets, written))
        start = batch.offsets
        batch = ahead.result() if ahead is not None else _Batch([], batch.offsets)
    return total


class LakeIngestor:
    """Moves change events of the topics matching ``topics`` into bronze and silver tables.

    A batch is up to ``batch_records`` records of one topic; each table commits its part of it
    with the position it reached (one Iceberg commit per table and batch). Silver (``silver``,
    on by default) is built for CDC topics (``<region>.<database>.<table>``); ``checker`` checks
    each silver batch's rows before they are applied; ``schemas`` (the schema registry's verdicts)
    decides whether silver follows a new schema or quarantines its events (``None``: silver
    follows every change Iceberg can represent). ``run_once`` catches every topic up;
    ``start`` keeps doing so every ``interval_s`` in a thread until ``stop``, calling
    ``on_round(topics, records)`` after each round that moved records (lineage, for one).
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
        schemas: SchemaDecisions | None = None,
        on_round: Callable[[list[str], int], None] | None = None,
        clean_interval_s: float = 0.0,
        clean_keep_snapshots: int = DEFAULT_KEEP_SNAPSHOTS,
        clean_older_than_s: float = DEFAULT_OLDER_THAN_S,
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
        self.schemas = schemas
        self.on_round = on_round
        self.clean_interval_s = clean_interval_s
        self.clean_keep_snapshots = clean_keep_snapshots
        self.clean_older_than_s = clean_older_than_s
        self._last_clean = time.monotonic()
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
                sinks.append(SilverTable(self.catalog, topic, checker=self.checker, schemas=self.schemas))
            self._sinks[topic] = sinks
        return self._sinks[topic]

    def run_once(self, progress: Callable[[BatchResult], None] | None = None) -> int:
        """Ingest until every topic is caught up; returns the records read.

        Topics are taken one after the other; the first batch of the next topic is read while the
        last batch of the current one is written.
        """
        total = 0
        topics = [t for t in self.topics() if self.sinks(t)]
        with (
            fewer_collections(),
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="lake-read") as reader,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="lake-write") as writer,
        ):
            upcoming: dict[str, Future[_Batch]] = {}

            def prefetch(topic: str) -> Callable[[], None]:
                def start() -> None:
                    if topic not in upcoming:
                        sinks = self.sinks(topic)
                        upcoming[topic] = reader.submit(
                            read_batch, self.event_log, topic, start_of(sinks), self.batch_records
                        )

                return start

            for n, topic in enumerate(topics):
                if self._stop.is_set():
                    break
                total += ingest_topic(
                    self.event_log,
                    self.sinks(topic),
                    topic,
                    self.batch_records,
                    progress,
                    self._stop.is_set,
                    reader=reader,
                    writer=writer,
                    first=upcoming.pop(topic, None),
                    after=prefetch(topics[n + 1]) if n + 1 < len(topics) else None,
                )
            for pending in upcoming.values():
                pending.result()
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
            else:
                if read and self.on_round is not None:
                    try:
                        self.on_round(self.topics(), read)
                    except Exception as exc:  # a listener never stops ingestion
                        log.error("lake round listener failed", error=str(exc))
            try:
                self.clean_if_due()
            except Exception as exc:  # cleaning never stops ingestion; it is tried again later
                log.error("lake clean failed", error=str(exc))
            self._stop.wait(self.interval_s)

    def clean_if_due(self, now: float | None = None) -> list[CleanReport] | None:
        """Clean the warehouse (:func:`~shopops.lake.maintenance.clean_lake`) if ``clean_interval_s``
        (monotonic seconds) passed since the worker started or last cleaned; ``None`` if not due.

        The worker runs it between two rounds, so it never races its own commits; the age guard
        (``clean_older_than_s``) protects the files another worker is about to commit."""
        now = time.monotonic() if now is None else now
        if self.clean_interval_s <= 0 or now - self._last_clean < self.clean_interval_s:
            return None
        self._last_clean = now
        reports = clean_lake(
            self.catalog, keep_snapshots=self.clean_keep_snapshots, older_than_s=self.clean_older_than_s
        )
        files = sum(len(r.deleted) for r in reports)
        size = sum(r.deleted_bytes for r in reports)
        CLEANED_FILES.inc(files)
        CLEANED_BYTES.inc(size)
        self._sinks.clear()  # reopen the tables on their cleaned metadata
        log.info(
            "lake clean",
            tables=len(reports),
            expired=sum(r.expired for r in reports),
            files=files,
            bytes=size,
        )
        return reports

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
