"""Bronze: every change event of a topic appended to an Iceberg table as received, exactly once.

Exactly once across crashes without a consumer group: the next offset of every partition is
stored in the summary of the snapshot that appended the records (``shopops.offsets``), so the
data and the position move in one atomic catalog commit. A worker starts from the current
snapshot's offsets; a crash before a commit leaves nothing behind, a crash after it leaves the
position with the data. Two workers on one table conflict at commit time (the catalog's
compare-and-swap); the loser re-reads the position and goes on from there. The read loop that
feeds bronze (and silver) is :func:`shopops.lake.ingest.ingest_topic`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import orjson
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table

from shopops.events.model import Record
from shopops.lake.columnar import RecordColumns, record_columns
from shopops.lake.tables import Transaction, expire_old_snapshots

NAMESPACE = "bronze"
#: Snapshots kept in a table's metadata (older ones are expired; their data stays).
KEEP_SNAPSHOTS = 10
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

    def append(
        self, records: Sequence[Record], offsets: dict[int, int], columns: RecordColumns | None = None
    ) -> None:
        """Append ``records`` and move the position to ``offsets`` in one commit (``columns``:
        the records' :class:`~shopops.lake.columnar.RecordColumns`, when the caller has them)."""
        if columns is None:
            columns = record_columns(records)
        n = len(columns)
        batch = pa.table(
            {
                "topic": pa.repeat(pa.scalar(self.topic, pa.string()), n),
                "partition": columns.partitions,
                "offset": columns.offsets,
                "timestamp_ms": columns.timestamps,
                "key": _as_text(columns.keys),
                "value": _as_text(columns.values),
                "ingested_at_ms": pa.repeat(pa.scalar(int(time.time() * 1000), pa.int64()), n),
            },
            schema=SCHEMA,
        )
        payload = orjson.dumps({str(p): o for p, o in sorted(offsets.items())}).decode()
        with Transaction(self.table) as tx:
            tx.append(batch, snapshot_properties={OFFSETS_PROPERTY: payload})
        # Only the current snapshot's position matters; every commit rewrites (and pyiceberg
        # copies) the metadata holding all snapshots, so it must not grow with every batch.
        expire_old_snapshots(self.table, KEEP_SNAPSHOTS)

    def write(
        self, records: Sequence[Record], offsets: dict[int, int], columns: RecordColumns | None = None
    ) -> int:
        """:meth:`append` as an ingestion sink: returns the rows appended."""
        self.append(records, offsets, columns)
        return len(records)

    def refresh(self) -> None:
        self.table = self.catalog.load_table(self.name)


def _as_text(raw: pa.Array) -> pa.Array:
    """Record bytes as UTF-8 text, validated in C; the rare invalid record is decoded with U+FFFD."""
    try:
        return raw.cast(pa.string())
    except pa.ArrowInvalid:
        return pa.array(
            [None if b is None else b.decode("utf-8", errors="replace") for b in raw.to_pylist()],
            pa.string(),
        )
