"""What every lake table shares: its committed position, creation by racing workers, snapshot expiry."""

from __future__ import annotations

import contextlib
import time

import orjson
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table import Transaction as _IcebergTransaction
from pyiceberg.table.metadata import TableMetadata

#: Snapshot-summary property holding the next offset of every partition the snapshot reached.
OFFSETS_PROPERTY = "shopops.offsets"
#: Table properties: a concurrent commit fails instead of being re-applied on top (the loser
#: re-reads the position, as for bronze), and old metadata files are cleaned up.
TABLE_PROPERTIES = {
    "commit.retry.num-retries": "0",
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "20",
}


def offsets_of(table: Table) -> dict[int, int]:
    """The position (next offset per partition) the table's current snapshot carries."""
    snapshot = table.current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return {}
    raw = snapshot.summary.additional_properties.get(OFFSETS_PROPERTY)
    return {int(p): int(o) for p, o in orjson.loads(raw).items()} if raw else {}


def offsets_property(offsets: dict[int, int]) -> dict[str, str]:
    return {OFFSETS_PROPERTY: orjson.dumps({str(p): o for p, o in sorted(offsets.items())}).decode()}


def open_or_create(catalog: Catalog, name: str, schema: Schema | pa.Schema) -> Table:
    """Load table ``name``, creating it (and its namespace) if missing; concurrent creators agree."""
    namespace = name.split(".")[0]
    for attempt in range(10):
        try:
            return catalog.load_table(name)
        except NoSuchTableError:
            try:
                catalog.create_namespace_if_not_exists(namespace)
                return catalog.create_table_if_not_exists(name, schema=schema, properties=TABLE_PROPERTIES)
            except Exception:  # another worker created it at the same moment: load it
                time.sleep(0.02 * (attempt + 1))
    return catalog.load_table(name)


def expire_old_snapshots(table: Table, keep: int) -> None:
    """Drop all but the newest ``keep`` snapshots from the table's metadata (which every commit
    rewrites, so it would otherwise grow with every batch). Data files are not deleted."""
    snapshots = sorted(table.metadata.snapshots, key=lambda s: s.sequence_number or 0)
    if len(snapshots) <= 2 * keep:
        return
    current = table.current_snapshot()
    old = [
        s.snapshot_id for s in snapshots[:-keep] if current is None or s.snapshot_id != current.snapshot_id
    ]
    # Another worker may commit meanwhile: then the next batch tries again.
    with contextlib.suppress(CommitFailedException):
        table.maintenance.expire_snapshots().by_ids(old).commit()


class Transaction(_IcebergTransaction):
    """pyiceberg's transaction, with its table metadata worked out once per change.

    pyiceberg re-applies the pending updates and deep-copies the whole table metadata every time
    a transaction's ``table_metadata`` is read — about fifteen times per append or overwrite, which
    cost more than writing the Parquet file. The metadata models are frozen, so the result is
    kept until the table or the pending updates change.
    """

    _cached: tuple[object, object, TableMetadata] | None = None

    @property
    def table_metadata(self) -> TableMetadata:
        cached = self._cached
        if cached is None or cached[0] is not self._table.metadata or cached[1] is not self._updates:
            cached = self._cached = (self._table.metadata, self._updates, super().table_metadata)
        return cached[2]
