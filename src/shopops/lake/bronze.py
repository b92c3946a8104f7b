"""Bronze: every change event of a topic appended to an Iceberg table as received, exactly once.

Exactly once across crashes without a consumer group: the next offset of every partition is
stored in the summary of the snapshot that appended the records (``shopops.offsets``), so the
data and the position move in one atomic catalog commit. A worker starts from the current
snapshot's offsets; a crash before a commit leaves nothing behind, a crash after it leaves the
position with the data. Two workers on one table conflict at commit time (the catalog's
compare-and-swap); the loser re-reads the position and goes on from there.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import orjson
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.table import Table

from shopops.events.model import Record
from shopops.events.port import EventLog

NAMESPACE = "bronze"
OFFSETS_PROPERTY = "shopops.offsets"
#: pyiceberg re-applies an append on top of a concurrent commit by default; here a concurrent
#: commit must fail instead, so that the loser re-reads the position (else both append the same
#: records).
NO_RETRY = {"commit.retry.num-retries": "0"}

#: One row per change event: where it sits in the log, and the record as received.
SCHEMA = pa.schema(
    [
        pa.field("topic", pa.string(), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("timestamp_ms", pa.int64(), nullable=False),
        pa.field("key", pa.string()),
        pa.field("value", pa.string()),
        pa.field("ingested_at_ms", pa.int64(), nullable=False),
    ]
)


def table_name(topic: str) -> str:
    """``vn.shop.orders`` -> ``bronze.vn__shop__orders`` (Iceberg identifiers take no dots)."""
    return f"{NAMESPACE}.{topic.replace('.', '__')}"


@dataclass(frozen=True, slots=True)
class BatchResult:
    topic: str
    records: int
    offsets: dict[int, int]


class BronzeTable:
    """The bronze table of one topic and its committed position."""

    def __init__(self, catalog: Catalog, topic: str) -> None:
        self.catalog = catalog
        self.topic = topic
        self.name = table_name(topic)
        self.table: Table = self._open()
        if self.table.properties.get("commit.retry.num-retries") != "0":
            with self.table.transaction() as tx:
                tx.set_properties(NO_RETRY)
            self.refresh()

    def _open(self) -> Table:
        for attempt in range(10):
            try:
                return self.catalog.load_table(self.name)
            except NoSuchTableError:
                try:
                    self.catalog.create_namespace_if_not_exists(NAMESPACE)
                    return self.catalog.create_table_if_not_exists(
                        self.name, schema=SCHEMA, properties=NO_RETRY
                    )
                except Exception:  # another worker created it at the same moment: load it
                    time.sleep(0.02 * (attempt + 1))
        return self.catalog.load_table(self.name)

    def committed_offsets(self) -> dict[int, int]:
        """Per partition, the next offset to ingest (what the current snapshot says)."""
        snapshot = self.table.current_snapshot()
        if snapshot is None:
            return {}
        raw = snapshot.summary.additional_properties.get(OFFSETS_PROPERTY) if snapshot.summary else None
        return {int(p): int(o) for p, o in orjson.loads(raw).items()} if raw else {}

    def append(self, records: list[Record], offsets: dict[int, int]) -> None:
        """Append ``records`` and move the position to ``offsets`` in one commit."""
        now = int(time.time() * 1000)
        batch = pa.table(
            {
                "topic": pa.array([r.topic for r in records], pa.string()),
                "partition": pa.array([r.partition for r in records], pa.int32()),
                "offset": pa.array([r.offset for r in records], pa.int64()),
                "timestamp_ms": pa.array([r.timestamp_ms for r in records], pa.int64()),
                "key": pa.array([_text(r.key) for r in records], pa.string()),
                "value": pa.array([_text(r.value) for r in records], pa.string()),
                "ingested_at_ms": pa.array([now] * len(records), pa.int64()),
            },
            schema=SCHEMA,
        )
        payload = orjson.dumps({str(p): o for p, o in sorted(offsets.items())}).decode()
        self.table.append(batch, snapshot_properties={OFFSETS_PROPERTY: payload})

    def refresh(self) -> None:
        self.table = self.catalog.load_table(self.name)


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", errors="replace")


def ingest_batch(log: EventLog, bronze: BronzeTable, max_records: int) -> BatchResult:
    """Read up to ``max_records`` past the committed position and append them; retry on conflict."""
    for attempt in range(100):
        start = bronze.committed_offsets()
        ends = log.end_offsets(bronze.topic)
        records: list[Record] = []
        offsets = dict(start)
        for partition in sorted(ends):
            position = start.get(partition, 0)
            while position < ends[partition] and len(records) < max_records:
                chunk = log.read(bronze.topic, partition, position, min(5_000, max_records - len(records)))
                if not chunk:
                    break
                records.extend(chunk)
                position = chunk[-1].offset + 1
            offsets[partition] = position
        if not records:
            return BatchResult(bronze.topic, 0, start)
        try:
            bronze.append(records, offsets)
        except CommitFailedException:
            # Another worker moved the table: start again from its position (after a short,
            # random pause, so that racing workers spread out).
            time.sleep(random.random() * 0.02 * min(attempt + 1, 10))
            bronze.refresh()
            continue
        return BatchResult(bronze.topic, len(records), offsets)
    raise CommitFailedException(f"{bronze.name}: 100 commits in a row lost to other workers")
