"""Quarantine: the rows a data-contract check rejected, and the events whose schema the schema
registry refused, one Iceberg table per CDC table and region.

``quarantine.<region>__<db>__<table>`` holds each rejected row as silver would have stored it
(typed columns and metadata, including ``_partition`` and ``_offset``, where the event sits in
the log) plus ``_check`` (the failed check; ``schema`` for a refused schema) and ``_reason`` (why).
A refused schema's columns are placed in this table's columns by silver's rules (a type change
Iceberg cannot apply becomes ``<col>__vN`` here), so silver's own schema does not change.

Exactly once without a multi-table transaction: a batch's rejected rows are committed to the
quarantine table *before* the batch is committed to silver, with the quarantine table's own
position in the snapshot summary (``shopops.offsets``, the batch's end). Before appending, rows
at or past that position only are kept. So:

- a crash before the quarantine commit leaves both tables as they were: the batch is read again;
- a crash between the two commits leaves quarantine ahead of silver: the batch is read and
  checked again, and its rejected rows, already behind the quarantine position, are dropped
  instead of appended twice — whatever the new batch boundaries;
- two workers racing on one topic: the second one's rows are behind the first one's position.

The stated guarantee needs a deterministic checker (the same row gets the same verdict).
"""

from __future__ import annotations

import random
import time

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table
from pyiceberg.types import IcebergType

from shopops.lake.checks import CHECK_COLUMN, REASON_COLUMN
from shopops.lake.silver import table_name
from shopops.lake.tables import (
    TABLE_PROPERTIES,
    Transaction,
    expire_old_snapshots,
    offsets_of,
    offsets_property,
    open_or_create,
)

NAMESPACE = "quarantine"


class QuarantineTable:
    """The quarantine table of one CDC topic."""

    def __init__(self, catalog: Catalog, topic: str, *, keep_snapshots: int = 10) -> None:
        self.catalog = catalog
        self.topic = topic
        self.name = table_name(topic, NAMESPACE)
        self.keep_snapshots = keep_snapshots
        self._table: Table | None = None

    def _open(self, schema: pa.Schema) -> Table:
        if self._table is None:
            self._table = open_or_create(self.catalog, self.name, schema)
        return self._table

    def exists(self) -> bool:
        return self.catalog.table_exists(self.name)

    def columns(self) -> dict[str, IcebergType]:
        """The table's columns and their types (none before the first quarantined row)."""
        if self._table is None:
            if not self.exists():
                return {}
            self._table = self.catalog.load_table(self.name)
        return {f.name: f.field_type for f in self._table.schema().fields}

    def committed_offsets(self) -> dict[int, int]:
        """Per partition, the offset before which every rejected row is in the table."""
        if self._table is None:
            if not self.exists():
                return {}
            self._table = self.catalog.load_table(self.name)
        return offsets_of(self._table)

    def append(self, rejected: pa.Table, offsets: dict[int, int]) -> int:
        """Append the ``rejected`` rows of a batch that ends at ``offsets``; rows already behind
        the table's position (an earlier attempt of the same batch) are left out. Returns the rows
        appended."""
        rejected = _with_reason_columns(rejected)
        for attempt in range(50):
            table = self._open(rejected.schema)
            position = offsets_of(table)
            fresh = _at_or_after(rejected, position)
            if fresh.num_rows == 0:
                return 0  # all of them are in already (the position did not move: nothing to say)
            target = {p: max(o, position.get(p, 0)) for p, o in {**position, **offsets}.items()}
            try:
                self._append(table, fresh, target)
            except CommitFailedException:
                time.sleep(random.random() * 0.02 * min(attempt + 1, 10))
                self._table = self.catalog.load_table(self.name)
                continue
            return int(fresh.num_rows)
        raise CommitFailedException(f"{self.name}: 50 commits lost to other workers")

    def _append(self, table: Table, rows: pa.Table, offsets: dict[int, int]) -> None:
        current = table.schema().as_arrow()
        missing = [f for f in rows.schema if f.name not in current.names]
        promoted = [
            f for f in rows.schema if f.name in current.names and current.field(f.name).type != f.type
        ]
        if missing or promoted:
            with table.update_schema() as update:
                update.union_by_name(
                    pa.schema([pa.field(f.name, f.type, nullable=True) for f in rows.schema])
                )
        schema = table.schema().as_arrow()
        arrays = [
            rows.column(f.name).cast(f.type)
            if f.name in rows.column_names
            else pa.nulls(rows.num_rows, f.type)
            for f in schema
        ]
        data = pa.Table.from_arrays(arrays, schema=schema)
        with Transaction(table) as tx:
            tx.append(data, snapshot_properties=offsets_property(offsets))
        expire_old_snapshots(table, self.keep_snapshots)

    def read(self) -> pa.Table:
        """Every quarantined row."""
        if not self.exists():
            return pa.table({})
        return self.catalog.load_table(self.name).scan().to_arrow()


def _with_reason_columns(rejected: pa.Table) -> pa.Table:
    for name in (CHECK_COLUMN, REASON_COLUMN):
        if name not in rejected.column_names:
            rejected = rejected.append_column(name, pa.nulls(rejected.num_rows, pa.large_string()))
    # Quarantine columns are all optional: a checker may send nulls anywhere.
    return rejected.cast(pa.schema([pa.field(f.name, f.type, nullable=True) for f in rejected.schema]))


def _at_or_after(rows: pa.Table, position: dict[int, int]) -> pa.Table:
    """Rows whose ``(_partition, _offset)`` is at or past ``position``."""
    if not position or rows.num_rows == 0:
        return rows
    floor = pa.array([position.get(p, 0) for p in rows.column("_partition").to_pylist()], pa.int64())
    return rows.filter(pc.greater_equal(rows.column("_offset"), floor))


def read_quarantine(catalog: Catalog, dataset: str, regions: list[str] | None = None) -> pa.Table:
    """The quarantined rows of ``dataset`` (``<db>.<table>``) over ``regions`` (default: all),
    with ``_region``, ``_check`` and ``_reason``; an empty table if nothing was rejected."""
    from shopops.lake.silver import dataset_tables, unify

    tables = dataset_tables(catalog, dataset, NAMESPACE)
    wanted = [r for r in (sorted(set(regions)) if regions is not None else tables) if r in tables]
    parts = [catalog.load_table(tables[r]).scan().to_arrow() for r in wanted]
    if not parts:
        return pa.table({"_region": pa.array([], pa.large_string())})
    return parts[0] if len(parts) == 1 else unify(parts)


__all__ = ["NAMESPACE", "TABLE_PROPERTIES", "QuarantineTable", "read_quarantine"]
