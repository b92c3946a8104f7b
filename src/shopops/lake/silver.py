"""Silver: the current state of every CDC table per primary key, one Iceberg table per region.

``silver.<region>__<db>__<table>`` holds one row per key: the latest after-image of inserts,
updates and snapshot reads, typed from the Debezium Connect schema, plus metadata columns
``_region``, ``_key`` (the record key's payload as JSON text), ``_op``, ``_lsn`` (``source.lsn``),
``_source_ts_ms``, ``_partition`` and ``_offset`` (where the event sits in the log). A delete (or
a tombstone) leaves a *delete marker*: the key with ``_op = 'd'`` and no data, so that a late,
older event cannot bring the row back; readers (:func:`read_silver`, the Ibis views, ``shopops
lake show``) leave markers out.

Order per key: an event replaces a key's state only if it is newer — by ``source.lsn`` when both
carry one (a duplicate with the same LSN, or a replayed older event, is a no-op), else by offset
in the key's partition (a key always lands in one partition), else by source time. This holds
inside a batch and against what the table already holds.

A truncate event removes every row (and delete marker) whose event came before it, in the
commit that applies its batch, and stays recorded in the snapshot summary
(:data:`TRUNCATED_PROPERTY`) so that an event from before it read later does not apply.

Exactly once, as for bronze: the table is built from the event log in micro-batches, and the
next offset of every partition is written in the summary of the snapshot that applied the batch
(``shopops.offsets``), in the same catalog commit as the data. The merge is copy-on-write on
Iceberg commits: the data files holding keys the batch changes are rewritten without those rows,
together with the batch's new rows, into one file; files no key of the batch is in stay. The
keys and positions of every live data file are kept in memory (data files never change), so a
batch finds the files it touches without reading them.

Schema changes follow the schema registry when a :class:`~shopops.lake.decisions.SchemaDecisions`
is given: events whose schema the registry refuses are not applied but quarantined with
``_check = "schema"`` (see :mod:`shopops.lake.decisions`).

Checks: before a batch is applied, the typed after-images of its ``c``/``u``/``r`` events go to an
optional :class:`~shopops.lake.checks.BatchChecker`; only the rows it passes are applied, the
rows it rejects go to ``quarantine.<region>__<db>__<table>`` (see :mod:`shopops.lake.quarantine`).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import Counter
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import AlwaysTrue, NotEqualTo
from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files, schema_to_pyarrow
from pyiceberg.manifest import DataFile
from pyiceberg.schema import Schema
from pyiceberg.table import FileScanTask, Table
from pyiceberg.types import IcebergType, NestedField

from shopops.core.errors import BackendUnavailableError, InvalidInputError, NotFoundError
from shopops.core.logging import get_logger
from shopops.events.model import Record
from shopops.lake.changes import (
    TOMBSTONE,
    ChangeBatch,
    ChangeDecoder,
    ConversionError,
    SourceColumn,
    Truncate,
    arrow_type,
    column_pieces,
    key_source,
    key_source_of,
    reduce_per_key,
    to_arrow,
)
from shopops.lake.checks import CHECK_COLUMN, REASON_COLUMN, BatchChecker
from shopops.lake.columnar import (
    ColumnBatch,
    RecordColumns,
    decode_columns,
    latest_per_key,
    row_numbers,
    to_target,
)
from shopops.lake.decisions import (
    ACCEPTED_SCHEMAS_PROPERTY,
    SCHEMA_CHECK,
    SchemaDecision,
    SchemaDecisions,
    is_declared,
    undecided,
)
from shopops.lake.evolution import FIRST_METADATA, METADATA, METADATA_NAMES, Evolution, resolve_all
from shopops.lake.tables import (
    OFFSETS_PROPERTY,
    TABLE_PROPERTIES,
    Transaction,
    expire_old_snapshots,
    offsets_of,
    offsets_property,
    open_or_create,
)

if TYPE_CHECKING:
    from shopops.lake.quarantine import QuarantineTable

log = get_logger("shopops.lake.silver")

NAMESPACE = "silver"
#: Columns of the in-memory index of a data file.
INDEX_COLUMNS = ("_key", "_lsn", "_partition", "_offset", "_source_ts_ms", "_op")
#: Snapshot summary property: the last truncate applied (JSON of :class:`Truncate`), carried by
#: every later snapshot, so that an event from before it that arrives late does not apply.
TRUNCATED_PROPERTY = "shopops.truncated"
_ROW_OPS = ("c", "u", "r")
#: Up to this size, the content of the data file a worker wrote last stays in memory.
KEEP_WRITTEN_BYTES = 64 << 20
_DATASET = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")

APPLIED = Counter(
    "shopops_lake_silver_events_total",
    "Change events read into silver, by table and outcome (applied, superseded, skipped, quarantined)",
    ["table", "outcome"],
)
SCHEMA_CHANGES = Counter(
    "shopops_lake_schema_changes_total", "Silver schema changes (columns added or promoted)", ["table"]
)
SCHEMA_REFUSED = Counter(
    "shopops_lake_schema_refused_total",
    "Change events not applied to silver because the schema registry refused their schema (quarantined)",
    ["table"],
)


@dataclass(frozen=True, slots=True)
class TopicParts:
    region: str
    database: str
    table: str

    @property
    def dataset(self) -> str:
        return f"{self.database}.{self.table}"


def topic_parts(topic: str) -> TopicParts | None:
    """``vn.shop.orders`` -> region ``vn``, dataset ``shop.orders``; ``None`` if not a CDC topic."""
    parts = topic.split(".")
    if len(parts) != 3 or not all(parts):
        return None
    return TopicParts(*parts)


def table_name(topic: str, namespace: str = NAMESPACE) -> str:
    """``vn.shop.orders`` -> ``silver.vn__shop__orders`` (Iceberg identifiers take no dots)."""
    return f"{namespace}.{topic.replace('.', '__')}"


def _metadata_schema() -> Schema:
    return Schema(
        *(
            NestedField(i, name, kind, required=name == "_key")
            for i, (name, kind) in enumerate(METADATA, start=1)
        )
    )


class SilverTable:
    """The silver table of one CDC topic: its committed position, and batches merged into it."""

    def __init__(
        self,
        catalog: Catalog,
        topic: str,
        *,
        checker: BatchChecker | None = None,
        schemas: SchemaDecisions | None = None,
        max_files: int = 16,
        keep_snapshots: int = 10,
        fast: bool = True,
    ) -> None:
        parts = topic_parts(topic)
        if parts is None:
            raise InvalidInputError(
                f"topic {topic!r} is not a CDC topic <region>.<database>.<table>",
                hint="silver tables are built from CDC topics only",
            )
        self.catalog = catalog
        self.topic = topic
        self.parts = parts
        self.name = table_name(topic)
        self.checker = checker
        #: The registry's verdicts on new schemas; ``None``: schema changes follow Iceberg's rules alone.
        self.schemas = schemas
        self.max_files = max_files
        self.keep_snapshots = keep_snapshots
        self.decoder = ChangeDecoder()
        #: Decode plain batches as columns (:mod:`shopops.lake.columnar`); off: always per record.
        self.fast = fast
        self.table: Table = open_or_create(catalog, self.name, _metadata_schema())
        if any(self.table.properties.get(k) != v for k, v in TABLE_PROPERTIES.items()):
            with self.table.transaction() as tx:
                tx.set_properties(TABLE_PROPERTIES)
        self._quarantine: QuarantineTable | None = None
        #: Fingerprints of the declared schemas the table accepted (committed), and those accepted
        #: since the last commit (written with the next one).
        self._accepted = _accepted_schemas(self.table)
        self._accepting: set[str] = set()
        #: Schemas refused so far (each is logged once).
        self._refused: set[str] = set()
        self._files: list[DataFile] = []
        self._files_snapshot: int | None = -1
        self._index: dict[str, pa.Table] = {}
        #: The content of the data file this worker wrote last (the next batch often rewrites it).
        self._written: dict[str, pa.Table] = {}

    @property
    def quarantine(self) -> QuarantineTable:
        """The quarantine table of this topic (opened on first use)."""
        if self._quarantine is None:
            from shopops.lake.quarantine import QuarantineTable

            self._quarantine = QuarantineTable(self.catalog, self.topic)
        return self._quarantine

    def committed_offsets(self) -> dict[int, int]:
        """Per partition, the next offset to apply (what the current snapshot says)."""
        return offsets_of(self.table)

    def refresh(self) -> None:
        self.table = self.catalog.load_table(self.name)
        self._accepted = _accepted_schemas(self.table)

    # -- one batch --

    def write(
        self, records: Sequence[Record], offsets: dict[int, int], columns: RecordColumns | None = None
    ) -> int:
        """Apply ``records`` (one topic, log order) and move the position to ``offsets``, in one
        commit. Returns the rows written (new states and delete markers). ``columns``: the
        records' :class:`~shopops.lake.columnar.RecordColumns`, when the caller has them.

        Raises ``CommitFailedException`` when another worker committed first; the caller then
        refreshes and reads again from the new position.
        """
        decoded = decode_columns(records, self.decoder, columns) if self.fast else None
        if decoded is not None:
            done = self._write_columns(decoded, offsets)
            if done is not None:
                return done
        batch = self.decoder.decode(records)
        self._report_skipped(batch.skipped)
        stored = self.truncated()
        truncate = stored
        for event in batch.truncates:
            truncate = event.later(truncate)
        # Events from before the last truncate are gone with it: neither applied nor checked.
        stale: set[int] = set()
        if truncate is not None:
            stale = {
                i
                for i in range(len(batch))
                if truncate.precedes(batch.lsns[i], batch.partitions[i], batch.offsets[i], batch.ts_ms[i])
            }
        excluded: set[int] = set()
        refused: dict[int, str] = {}
        if self.schemas is not None:
            refused = {i: r for i, r in self._decide(batch, records).items() if i not in stale}
            excluded.update(refused)
        rejected: pa.Table | None = None
        if self.checker is not None:
            failed, rejected = self._check(batch, excluded | stale)
            excluded.update(failed)
        while True:
            winners, inherited = reduce_per_key(batch, excluded | stale)
            try:
                rows, tombstone = self._typed(batch, winners, inherited)
            except ConversionError as exc:
                excluded.update(self._bad(batch, winners, exc))
                continue
            break
        # Quarantined rows are committed first (see shopops.lake.quarantine); refused events are
        # typed after silver took the batch's accepted changes, so that both tables name columns alike.
        held = [rejected] if rejected is not None else []
        if refused:
            SCHEMA_REFUSED.labels(self.name).inc(len(refused))
            typed = self._refused_rows(batch, refused)
            if typed is not None:
                held.append(typed)
        if held:
            quarantined = held[0] if len(held) == 1 else pa.concat_tables(held, promote_options="permissive")
            self.quarantine.append(quarantined, offsets)
            APPLIED.labels(self.name, "quarantined").inc(quarantined.num_rows)
        newer = truncate if truncate is not None and truncate != stored else None
        written = self._merge(rows, tombstone, offsets, truncate, newer)
        APPLIED.labels(self.name, "applied").inc(written + (newer is not None))
        superseded = len(batch) - written - len(excluded) + len(batch.truncates) - (newer is not None)
        APPLIED.labels(self.name, "superseded").inc(superseded)
        return written

    def truncated(self) -> Truncate | None:
        """The last truncate event applied to the table (from its current snapshot), if any."""
        snapshot = self.table.current_snapshot()
        raw = (
            snapshot.summary.additional_properties.get(TRUNCATED_PROPERTY)
            if snapshot and snapshot.summary
            else None
        )
        return Truncate.from_json(raw) if raw else None

    def _report_skipped(self, skipped: list[tuple[int, int, str]]) -> None:
        if not skipped:
            return
        APPLIED.labels(self.name, "skipped").inc(len(skipped))
        for partition, offset, reason in skipped[:3]:
            log.warning(
                "change event skipped", table=self.name, partition=partition, offset=offset, reason=reason
            )

    def _bad(self, batch: ChangeBatch, indices: list[int], exc: ConversionError) -> set[int]:
        """Events whose values do not fit their column: skipped (they stay in bronze), reported."""
        bad = {indices[p] for p in exc.rows} if exc.rows else set(indices)
        self._report_skipped([(batch.partitions[i], batch.offsets[i], str(exc)) for i in sorted(bad)])
        return bad

    def _check(self, batch: ChangeBatch, skip: set[int]) -> tuple[set[int], pa.Table | None]:
        """Run the checker on the batch's after-images (but ``skip``). Returns the rejected (and
        malformed) events, which are then not applied, and the rows for the quarantine."""
        assert self.checker is not None
        excluded: set[int] = set()
        rows_at = [i for i, op in enumerate(batch.ops) if op in _ROW_OPS and i not in skip]
        while True:
            indices = [i for i in rows_at if i not in excluded]
            if not indices:
                return excluded, None
            try:
                rows, _ = self._typed(batch, indices, {})
            except ConversionError as exc:
                excluded.update(self._bad(batch, indices, exc))
                continue
            break
        verdict = self.checker.check_batch(self.parts.dataset, rows)
        rejected = verdict.rejected
        if rejected.num_rows == 0:
            return excluded, None
        at = {(batch.partitions[i], batch.offsets[i]): i for i in indices}
        for p, o in zip(
            rejected.column("_partition").to_pylist(), rejected.column("_offset").to_pylist(), strict=True
        ):
            if (p, o) in at:
                excluded.add(at[(p, o)])
        return excluded, rejected

    # -- the registry's verdicts --

    def _decide(self, batch: ChangeBatch, records: Sequence[Record]) -> dict[int, str]:
        """Ask the registry about every schema of the batch the table has not accepted yet (one
        event each). Returns the events whose schema it refused, with its reason."""
        assert self.schemas is not None
        columns: dict[str, IcebergType] = {f.name: f.field_type for f in self.table.schema().fields}
        rows_at = [i for i, op in enumerate(batch.ops) if op in _ROW_OPS]
        keys = self._key_names(batch, rows_at) if rows_at else []
        empty = self._row_count() == 0
        verdicts: dict[str, SchemaDecision] = {}
        refused: dict[int, str] = {}
        located: dict[tuple[int, int], Record] | None = None
        while True:
            accepted = self._accepted | {k for k, v in verdicts.items() if v.accepted and is_declared(k)}
            questions = undecided(
                batch, self.decoder, columns, keys, accepted=accepted, excluded=refused.keys(), empty=empty
            )
            new = [q for q in questions.values() if q.identity not in verdicts]
            if not new:
                break
            if located is None:
                located = {(r.partition, r.offset): r for r in records}
            for question in new:
                first = question.events[0]
                record = located[(batch.partitions[first], batch.offsets[first])]
                verdicts[question.identity] = self._ask(record)
            for question in questions.values():
                verdict = verdicts[question.identity]
                if verdict.accepted:
                    continue
                refused.update(dict.fromkeys(question.events, verdict.reason))
                if question.identity not in self._refused:
                    self._refused.add(question.identity)
                    log.warning(
                        "schema refused by the registry: its events go to quarantine",
                        table=self.name,
                        events=len(question.events),
                        reason=verdict.reason,
                    )
        self._accepting.update(k for k, v in verdicts.items() if v.accepted and is_declared(k))
        return refused

    def _ask(self, record: Record) -> SchemaDecision:
        assert self.schemas is not None
        try:
            return self.schemas.decide(record)
        except BackendUnavailableError as exc:
            # Without the registry's verdict nothing of the batch is applied: no guessing.
            log.error(
                "schema registry unreachable: the silver batch is not applied, the next round retries it",
                table=self.name,
                error=str(exc),
            )
            raise

    def _refused_rows(self, batch: ChangeBatch, refused: dict[int, str]) -> pa.Table | None:
        """The refused events as quarantine rows, with ``_check = "schema"`` and the registry's
        reason. Their columns are resolved against silver's and the quarantine's columns (a type
        change becomes ``<col>__vN`` there too, so rows of both kinds fit the quarantine table),
        and only the quarantine table changes."""
        indices = sorted(refused)
        into = {f.name: f.field_type for f in self.table.schema().fields} | self.quarantine.columns()
        while True:
            if not indices:
                return None
            try:
                rows, _ = self._typed(batch, indices, {}, into=into)
            except ConversionError as exc:
                bad = self._bad(batch, indices, exc)
                indices = [i for i in indices if i not in bad]
                continue
            break
        n = len(indices)
        return rows.append_column(
            CHECK_COLUMN, pa.repeat(pa.scalar(SCHEMA_CHECK, pa.string()), n)
        ).append_column(REASON_COLUMN, pa.array([refused[i] for i in indices], pa.string()))

    # -- typing --

    def _key_names(self, batch: ChangeBatch, indices: list[int]) -> list[str]:
        schema = self.table.schema()
        names = list(schema.identifier_field_names())
        if names:
            # identifier_field_names is a set: keep the table's column order.
            return [f.name for f in schema.fields if f.name in names]
        seen: dict[str, None] = {}
        for i in indices:
            seen.update(dict.fromkeys(batch.key_rows[i]))
        return list(seen)

    def _typed(
        self,
        batch: ChangeBatch,
        indices: list[int],
        inherited: dict[int, int | None],
        into: dict[str, IcebergType] | None = None,
    ) -> tuple[pa.Table, pa.Array]:
        """Events ``indices`` as rows of the table's Arrow schema (evolving the table's schema
        first if they need it), and which of them are tombstones to resolve against the table.
        ``into``: type them against these columns instead (the quarantine's), changing nothing."""
        n = len(indices)
        keys = self._key_names(batch, indices)
        row_positions = [p for p, i in enumerate(indices) if batch.ops[i] in _ROW_OPS]
        pieces = column_pieces(batch, self.decoder, [indices[p] for p in row_positions], frozenset(keys))
        key_values = {name: [batch.key_rows[i].get(name) for i in indices] for name in keys}
        key_sources = {name: key_source(name, self.decoder, key_values[name]) for name in keys}
        targets, arrow_schema = self._resolve(key_sources, [c for c, _ in pieces], into)
        columns: dict[str, pa.Array] = {}
        for name in keys:
            target = targets[(name, key_sources[name].type)]
            columns[target] = _key_array(key_values[name], key_sources[name], arrow_schema.field(target).type)
        for column, values in pieces:
            target = targets[(column.name, column.type)]
            array = to_arrow(values, column, arrow_schema.field(target).type)
            if len(row_positions) != n:
                array = _spread(array, row_positions, n)
            columns[target] = pc.coalesce(columns[target], array) if target in columns else array
        ops = [batch.ops[i] for i in indices]
        meta = {
            "_region": pa.repeat(pa.scalar(self.parts.region, pa.large_string()), n),
            "_key": pa.array([batch.keys[i] for i in indices], pa.large_string()),
            "_op": pa.array(["d" if op == TOMBSTONE else op for op in ops], pa.large_string()),
            "_lsn": pa.array([inherited.get(i, batch.lsns[i]) for i in indices], pa.int64()),
            "_source_ts_ms": pa.array([batch.ts_ms[i] for i in indices], pa.int64()),
            "_partition": pa.array([batch.partitions[i] for i in indices], pa.int32()),
            "_offset": pa.array([batch.offsets[i] for i in indices], pa.int64()),
        }
        columns.update(meta)
        arrays = [columns[f.name] if f.name in columns else pa.nulls(n, f.type) for f in arrow_schema]
        table = pa.Table.from_arrays(arrays, schema=arrow_schema)
        tombstone = pa.array(
            [op == TOMBSTONE and i not in inherited for op, i in zip(ops, indices, strict=True)]
        )
        return table, tombstone

    def _resolve(
        self,
        key_sources: dict[str, SourceColumn],
        sources: Sequence[SourceColumn],
        into: dict[str, IcebergType] | None = None,
    ) -> tuple[dict[tuple[str, Any], str], pa.Schema]:
        """The table column of every source column, after evolving the table's schema as needed.
        ``into``: the columns of another table (the quarantine) to resolve against instead; the
        Arrow schema then has the resolved columns only, and nothing is evolved."""
        if into is not None:
            targets, evolution = resolve_all(
                into, [(k, c.type) for k, c in key_sources.items()], [(c.name, c.type) for c in sources],
                empty=False,
            )  # fmt: skip
            kinds = {**into, **dict([*evolution.keys, *evolution.add, *evolution.widen])}
            names = [n for n in dict.fromkeys(targets.values()) if n not in METADATA_NAMES]
            fields = [pa.field(n, schema_to_pyarrow(kinds[n], include_field_ids=False)) for n in names]
            fields += [pa.field(n, arrow_type(kind)) for n, kind in METADATA]
            return targets, pa.schema(fields)
        schema = self.table.schema()
        current: dict[str, Any] = {f.name: f.field_type for f in schema.fields}
        targets, evolution = resolve_all(
            current,
            [(k, c.type) for k, c in key_sources.items()],
            [(c.name, c.type) for c in sources],
            empty=self._row_count() == 0,
        )
        if evolution:
            self._evolve(evolution)
        return targets, schema_to_pyarrow(self.table.schema(), include_field_ids=False)

    # -- the fast path --

    def _write_columns(self, batch: ColumnBatch, offsets: dict[int, int]) -> int | None:
        """:meth:`write` for a batch decoded as columns; ``None`` if a value does not fit its
        column (the per-record path then skips just those events)."""
        keep: pa.Array | None = None
        checked: pa.Table | None = None
        truncate = self.truncated()
        if (
            truncate is not None
            and pc.any(_before(truncate, batch.lsns, batch.partitions, batch.offsets, batch.ts_ms)).as_py()
        ):
            return None  # events from before the last truncate, arriving late: the per-record path drops them
        try:
            if self.schemas is not None and not self._settled(batch):
                return None  # the registry has a schema to judge: the per-record path asks it
            if self.checker is not None:
                everything = row_numbers(len(batch))
                checked = self._typed_columns(batch, everything)
                verdict = self.checker.check_batch(self.parts.dataset, checked)
                rejected = verdict.rejected
                if rejected.num_rows:
                    position = pc.add(pc.multiply(batch.partitions.cast(pa.int64()), 1 << 40), batch.offsets)
                    bad = pc.add(
                        pc.multiply(rejected.column("_partition").cast(pa.int64()), 1 << 40),
                        rejected.column("_offset"),
                    )
                    keep = pc.invert(pc.is_in(position, value_set=bad.combine_chunks()))
                    self.quarantine.append(rejected, offsets)
                    APPLIED.labels(self.name, "quarantined").inc(rejected.num_rows)
            winners = latest_per_key(batch, keep)
            # Every event was typed for the checks already (the table's schema with it).
            rows = checked.take(winners) if checked is not None else self._typed_columns(batch, winners)
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, OverflowError):
            return None
        written = self._merge(rows, pa.repeat(pa.scalar(False), rows.num_rows), offsets, truncate)
        excluded = len(batch) - (keep.true_count if keep is not None else len(batch))
        APPLIED.labels(self.name, "applied").inc(written)
        APPLIED.labels(self.name, "superseded").inc(len(batch) - written - excluded)
        return written

    def _settled(self, batch: ColumnBatch) -> bool:
        """Whether the table has the batch's schema already: a declared schema it accepted, or
        plain-JSON columns it holds as they are."""
        if batch.schema >= 0:
            return self.decoder.schema_keys[batch.schema] in self._accepted
        key_sources, sources = self._column_sources(batch)
        _, evolution = resolve_all(
            {f.name: f.field_type for f in self.table.schema().fields},
            [(k, c.type) for k, c in key_sources.items()],
            [(c.name, c.type) for c in sources],
            empty=self._row_count() == 0,
        )
        return not evolution

    def _column_sources(self, batch: ColumnBatch) -> tuple[dict[str, SourceColumn], list[SourceColumn]]:
        """The key columns (in the table's order) and the other source columns of a column batch."""
        schema = self.table.schema()
        identifiers = schema.identifier_field_names()
        keys = (
            [f.name for f in schema.fields if f.name in identifiers]
            if identifiers
            else list(batch.key_rows.column_names)
        )
        if any(k not in batch.key_rows.column_names for k in keys):
            raise ValueError("the batch's keys have other columns than the table's")
        key_sources = {
            name: key_source_of(name, self.decoder, batch.key_rows.schema.field(name).type) for name in keys
        }
        return key_sources, [c for c in batch.columns if c.name not in key_sources]

    def _typed_columns(self, batch: ColumnBatch, rows: pa.Array) -> pa.Table:
        """Events ``rows`` of a column batch as rows of the table's Arrow schema."""
        n = len(rows)
        key_sources, sources = self._column_sources(batch)
        targets, arrow_schema = self._resolve(key_sources, sources)
        columns: dict[str, pa.Array] = {}
        for name, source in key_sources.items():
            target = arrow_schema.field(targets[(name, source.type)]).type
            values = batch.key_rows.column(name).take(rows).combine_chunks()
            if values.type == target or (
                pa.types.is_string(values.type) and pa.types.is_large_string(target)
            ):
                columns[name] = values.cast(target)
            else:
                columns[name] = _key_array(values.to_pylist(), source, target)
        for source in sources:
            target = targets[(source.name, source.type)]
            values = batch.after.column(source.name).take(rows).combine_chunks()
            columns[target] = to_target(values, source, arrow_schema.field(target).type)
        columns.update(
            {
                "_region": pa.repeat(pa.scalar(self.parts.region, pa.large_string()), n),
                "_key": batch.keys.take(rows),
                "_op": batch.ops.take(rows).cast(pa.large_string()),
                "_lsn": batch.lsns.take(rows),
                "_source_ts_ms": batch.ts_ms.take(rows),
                "_partition": batch.partitions.take(rows),
                "_offset": batch.offsets.take(rows),
            }
        )
        arrays = [columns[f.name] if f.name in columns else pa.nulls(n, f.type) for f in arrow_schema]
        return pa.Table.from_arrays(arrays, schema=arrow_schema)

    def _row_count(self) -> int:
        snapshot = self.table.current_snapshot()
        if snapshot is None or snapshot.summary is None:
            return 0
        return int(snapshot.summary.additional_properties.get("total-records", 0) or 0)

    def _evolve(self, evolution: Evolution) -> None:
        """Apply schema changes in one commit (a concurrent identical change fails the commit:
        the batch is then retried from the new state)."""
        with self.table.update_schema(allow_incompatible_changes=bool(evolution.keys)) as update:
            for name, kind in evolution.keys:
                update.add_column(name, kind, required=True)
            for name, _ in reversed(evolution.keys):
                update.move_first(name)
            if evolution.keys:
                update.set_identifier_fields(*[n for n, _ in evolution.keys])
            for name, kind in evolution.add:
                update.add_column(name, kind)
                update.move_before(name, FIRST_METADATA)
            for name, kind in evolution.widen:
                update.update_column(name, kind)
        SCHEMA_CHANGES.labels(self.name).inc()
        # A table's first columns (its keys among them) are its creation, not a change worth a line.
        report = log.debug if evolution.keys else log.info
        report("silver schema evolved", table=self.name, changes=evolution.describe())

    # -- merge --

    def _live_files(self) -> list[DataFile]:
        snapshot = self.table.current_snapshot()
        snapshot_id = snapshot.snapshot_id if snapshot else None
        if snapshot_id != self._files_snapshot:
            self._files = [t.file for t in self.table.scan().plan_files()] if snapshot else []
            self._files_snapshot = snapshot_id
            live = {f.file_path for f in self._files}
            self._index = {p: t for p, t in self._index.items() if p in live}
        return self._files

    def _file_index(self, files: list[DataFile]) -> pa.Table | None:
        """Keys and positions of every row of ``files`` (cached per file), with ``__file``."""
        parts = []
        projection = self.table.schema().select(*INDEX_COLUMNS)
        for number, data_file in enumerate(files):
            index = self._index.get(data_file.file_path)
            if index is None:
                index = ArrowScan(self.table.metadata, self.table.io, projection, AlwaysTrue()).to_table(
                    [FileScanTask(data_file)]
                )
                index = index.select(list(INDEX_COLUMNS))
                self._index[data_file.file_path] = index
            parts.append(
                index.append_column("__file", pa.repeat(pa.scalar(number, pa.int32()), index.num_rows))
            )
        if not parts:
            return None
        return pa.concat_tables(parts).rename_columns(
            ["_key", "e_lsn", "e_partition", "e_offset", "e_ts", "e_op", "__file"]
        )

    def _merge(
        self,
        rows: pa.Table,
        tombstone: pa.Array,
        offsets: dict[int, int],
        truncate: Truncate | None = None,
        newer: Truncate | None = None,
    ) -> int:
        """Merge the batch's ``rows`` into the table and commit. ``truncate``: the last truncate,
        recorded with the commit; ``newer``: a truncate this batch brings, whose rows from before
        it are removed (the files holding them rewritten)."""
        files = self._live_files()
        index = self._file_index(files)
        cleared: list[int] = []
        if newer is not None and index is not None:
            gone = _before(newer, index["e_lsn"], index["e_partition"], index["e_offset"], index["e_ts"])
            cleared = pc.unique(index["__file"].filter(gone)).to_pylist()
            removed = pc.sum(gone).as_py() or 0
            index = index.filter(pc.invert(gone))
            log.info("silver table truncated", table=self.name, lsn=newer.lsn, rows_removed=removed)
        if rows.num_rows and index is not None and index.num_rows:
            applied, lsn, touched = _decide(rows, tombstone, index)
            rows = rows.take(applied)
            rows = rows.set_column(rows.schema.get_field_index("_lsn"), "_lsn", lsn)
        elif rows.num_rows:
            keep = pc.invert(tombstone)  # a tombstone of a key the table never held changes nothing
            rows = rows.filter(keep)
            touched = []
        else:
            touched = []
        affected = [files[i] for i in sorted(set(touched) | set(cleared))]
        if len(files) - len(affected) + 1 > self.max_files:
            affected = list(files)  # compaction: everything into one file
        content = rows
        if affected:
            changed = rows.column("_key")
            kept = []
            for data_file in affected:
                stays = pc.invert(pc.is_in(self._read_keys(data_file), value_set=changed))
                if newer is not None:
                    position = self._index[data_file.file_path]
                    stays = pc.and_(
                        stays,
                        pc.invert(
                            _before(
                                newer, position["_lsn"], position["_partition"], position["_offset"],
                                position["_source_ts_ms"],
                            )
                        ),
                    )  # fmt: skip
                kept.append(self._read(data_file).filter(stays))
            content = pa.concat_tables([*kept, rows])
        self._commit(content, affected, offsets, truncate)
        return int(rows.num_rows)

    def _read(self, data_file: DataFile) -> pa.Table:
        schema = self.table.schema()
        written = self._written.get(data_file.file_path)
        if written is not None and written.schema == schema_to_pyarrow(schema, include_field_ids=False):
            return written  # what this worker wrote last: no need to read it back
        table = ArrowScan(self.table.metadata, self.table.io, schema, AlwaysTrue()).to_table(
            [FileScanTask(data_file)]
        )
        return table.cast(schema_to_pyarrow(schema, include_field_ids=False))

    def _read_keys(self, data_file: DataFile) -> pa.ChunkedArray:
        return self._index[data_file.file_path].column("_key")

    def _commit(
        self, content: pa.Table, affected: list[DataFile], offsets: dict[int, int], truncate: Truncate | None
    ) -> None:
        written: list[DataFile] = []
        summary = offsets_property(offsets)
        if truncate is not None:
            summary[TRUNCATED_PROPERTY] = truncate.to_json()
        accepted = self._accepted | self._accepting | _accepted_schemas(self.table)
        try:
            with Transaction(self.table) as tx:
                if accepted != _accepted_schemas(self.table):
                    # The schemas accepted with this batch, committed with it.
                    tx.set_properties({ACCEPTED_SCHEMAS_PROPERTY: orjson.dumps(sorted(accepted)).decode()})
                snapshot = tx.update_snapshot(snapshot_properties=summary)
                producer = snapshot.overwrite() if affected else snapshot.fast_append()
                with producer:
                    for data_file in affected:
                        producer.delete_data_file(data_file)
                    if content.num_rows:
                        written = list(
                            _dataframe_to_data_files(
                                self.table.metadata, content, self.table.io, write_uuid=uuid.uuid4()
                            )
                        )
                    for data_file in written:
                        data_file.spec_id = self.table.metadata.default_spec_id
                        producer.append_data_file(data_file)
        except CommitFailedException:
            for data_file in written:  # never referenced by any snapshot
                with contextlib.suppress(OSError):
                    self.table.io.delete(data_file.file_path)
            raise
        self._accepted, self._accepting = accepted, set()
        snapshot_now = self.table.current_snapshot()
        gone = {f.file_path for f in affected}
        self._files = [f for f in self._files if f.file_path not in gone] + written
        self._files_snapshot = snapshot_now.snapshot_id if snapshot_now else None
        for path in gone:
            self._index.pop(path, None)
        self._written = {}
        if len(written) == 1:
            self._index[written[0].file_path] = content.select(list(INDEX_COLUMNS))
            if content.nbytes <= KEEP_WRITTEN_BYTES:
                self._written = {written[0].file_path: content}
        expire_old_snapshots(self.table, self.keep_snapshots)


def _before(
    truncate: Truncate,
    lsn: pa.Array | pa.ChunkedArray,
    partition: pa.Array | pa.ChunkedArray,
    offset: pa.Array | pa.ChunkedArray,
    ts_ms: pa.Array | pa.ChunkedArray,
) -> pa.Array:
    """Which of the events (or states) at these positions come before ``truncate`` (vectorised
    :meth:`Truncate.precedes`)."""
    by_log = pc.if_else(
        pc.equal(partition, truncate.partition),
        pc.less(offset, truncate.offset),
        pc.less(ts_ms, truncate.ts_ms),
    )
    if truncate.lsn is None:
        return pc.fill_null(by_log, False)
    by_lsn = pc.less_equal(lsn, truncate.lsn)
    return pc.fill_null(pc.if_else(pc.is_valid(lsn), by_lsn, by_log), False)


def _accepted_schemas(table: Table) -> set[str]:
    """The declared schemas ``table`` accepted (:data:`ACCEPTED_SCHEMAS_PROPERTY`)."""
    raw = table.properties.get(ACCEPTED_SCHEMAS_PROPERTY)
    return set(orjson.loads(raw)) if raw else set()


def _spread(array: pa.Array, positions: list[int], n: int) -> pa.Array:
    """``array`` (one value per position) placed at ``positions`` of an ``n``-long array of nulls."""
    index: list[int | None] = [None] * n
    for value_at, p in enumerate(positions):
        index[p] = value_at
    return array.take(pa.array(index, pa.int64()))


def _key_array(values: list[Any], source: SourceColumn, target: pa.DataType) -> pa.Array:
    """Key values as the key column's type. Plain-JSON keys carry no logical type: an integer
    goes into a date column as days, into a timestamp column as microseconds."""
    if source.convert == "" and pa.types.is_date32(target) and all(isinstance(v, int) for v in values):
        return pa.array(values, pa.int32()).cast(target)
    if source.convert == "" and pa.types.is_timestamp(target) and all(isinstance(v, int) for v in values):
        return pa.array(values, pa.int64()).cast(target)
    array = to_arrow(values, source, arrow_type(source.type))
    return array if array.type == target else array.cast(target)


def _decide(rows: pa.Table, tombstone: pa.Array, index: pa.Table) -> tuple[pa.Array, pa.Array, list[int]]:
    """Which rows of the batch replace the table's state (row numbers), the ``_lsn`` each then
    carries (a tombstone takes over its key's LSN), and the data files holding replaced keys.

    A key is at most once in the batch's rows and once in the table, so a hash lookup of the
    batch's keys in the table's (``index_in``) pairs them up.
    """
    at = pc.index_in(rows.column("_key"), value_set=index.column("_key").combine_chunks())

    def existing(name: str) -> pa.Array:
        return index.column(name).combine_chunks().take(at)

    e_file, e_lsn = existing("__file"), existing("e_lsn")
    has_e = pc.is_valid(at)
    lsn = rows.column("_lsn").combine_chunks()
    both = pc.and_kleene(pc.is_valid(lsn), pc.is_valid(e_lsn))
    newer = pc.if_else(
        both,
        pc.greater(lsn, e_lsn),
        pc.if_else(
            pc.equal(rows.column("_partition"), existing("e_partition")),
            pc.greater(rows.column("_offset"), existing("e_offset")),
            pc.greater_equal(rows.column("_source_ts_ms"), existing("e_ts")),
        ),
    )
    live = pc.and_kleene(has_e, pc.not_equal(existing("e_op"), "d"))
    apply = pc.if_else(has_e, newer, pc.invert(tombstone))
    apply = pc.fill_null(pc.and_kleene(apply, pc.or_kleene(pc.invert(tombstone), live)), False)
    chosen = pc.indices_nonzero(apply)
    fixed_lsn = pc.if_else(tombstone, e_lsn, lsn).take(chosen)
    touched = pc.unique(e_file.take(chosen).drop_null()).to_pylist()
    return chosen, fixed_lsn, sorted(touched)


# --- readers -------------------------------------------------------------------------------------------


def dataset_tables(catalog: Catalog, dataset: str, namespace: str = NAMESPACE) -> dict[str, str]:
    """Region -> table name of the ``dataset`` (``<db>.<table>``) tables in ``namespace``."""
    if not _DATASET.match(dataset):
        raise InvalidInputError(
            f"dataset {dataset!r} is not <database>.<table>", hint="e.g. shop.orders or payments.payments"
        )
    suffix = "__" + dataset.replace(".", "__")
    if namespace not in {n[0] for n in catalog.list_namespaces()}:
        return {}
    out: dict[str, str] = {}
    for identifier in catalog.list_tables(namespace):
        name = identifier[-1]
        if name.endswith(suffix) and name.count("__") == 2:
            out[name[: -len(suffix)]] = f"{namespace}.{name}"
    return dict(sorted(out.items()))


def read_silver(catalog: Catalog, dataset: str, regions: list[str] | None = None) -> pa.Table:
    """The current rows of ``dataset`` (``<db>.<table>``, e.g. ``shop.orders``) over ``regions``
    (default: every region with a silver table), one table with a ``_region`` column.

    Delete markers are left out. Regions may differ in columns (one region's table may have
    evolved further): missing columns are null, and a column promoted in one region is promoted
    in the result. Raises :class:`NotFoundError` if none of the asked regions has the dataset.
    """
    tables = dataset_tables(catalog, dataset)
    wanted = sorted(set(regions)) if regions is not None else list(tables)
    present = [r for r in wanted if r in tables]
    if not present:
        known = ", ".join(tables) or "none"
        asked = f" for region(s) {', '.join(wanted)}" if regions is not None else ""
        raise NotFoundError(
            f"no silver table of {dataset}{asked} (regions with one: {known})",
            hint="run `shopops lake ingest` to build silver from the CDC topics",
            dataset=dataset,
        )
    parts = [
        catalog.load_table(tables[region]).scan(row_filter=NotEqualTo(term="_op", value="d")).to_arrow()
        for region in present
    ]
    if len(parts) == 1:
        return parts[0]
    return unify(parts)


def unify(parts: list[pa.Table]) -> pa.Table:
    """One table from tables of the same dataset whose columns may differ in type.

    Regions' tables differ when one topic carries Connect schemas and another plain JSON (no
    logical types: timestamps and dates stay integers), or when one has been promoted further:
    an integer meets a timestamp as microseconds (Debezium's ``MicroTimestamp``) and a date as
    days; integers meet floating point as double; anything else meets as text.
    """
    kinds: dict[str, list[pa.DataType]] = {}
    for part in parts:
        for f in part.schema:
            kinds.setdefault(f.name, []).append(f.type)
    common = {name: _common_type(types) for name, types in kinds.items()}
    cast = []
    for part in parts:
        arrays = []
        for name, kind in common.items():
            if name not in part.column_names:
                arrays.append(pa.nulls(part.num_rows, kind))
                continue
            column = part.column(name)
            if column.type != kind:
                if pa.types.is_integer(column.type) and pa.types.is_date32(kind):
                    column = column.cast(pa.int32())
                column = column.cast(kind)
            arrays.append(column)
        cast.append(pa.Table.from_arrays(arrays, names=list(common)))
    return pa.concat_tables(cast)


def _common_type(types: list[pa.DataType]) -> pa.DataType:
    distinct = list(dict.fromkeys(types))
    if len(distinct) == 1:
        return distinct[0]
    if all(pa.types.is_integer(t) for t in distinct):
        return pa.int64()
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in distinct):
        return pa.float64()
    for special in (pa.types.is_timestamp, pa.types.is_date32):
        chosen = [t for t in distinct if special(t)]
        if chosen and all(special(t) or pa.types.is_integer(t) for t in distinct):
            return chosen[0]
    return pa.large_string()


def region_and_dataset(table: str) -> tuple[str, str] | None:
    """``vn__shop__orders`` (a table's name, without namespace) -> ``("vn", "shop.orders")``."""
    parts = table.split("__")
    return (parts[0], f"{parts[1]}.{parts[2]}") if len(parts) == 3 else None


def list_datasets(catalog: Catalog, namespace: str = NAMESPACE) -> dict[str, list[str]]:
    """Dataset -> regions of the tables in ``namespace``."""
    if namespace not in {n[0] for n in catalog.list_namespaces()}:
        return {}
    out: dict[str, list[str]] = {}
    for identifier in catalog.list_tables(namespace):
        split = region_and_dataset(identifier[-1])
        if split is not None:
            out.setdefault(split[1], []).append(split[0])
    return {k: sorted(v) for k, v in sorted(out.items())}


__all__ = [
    "NAMESPACE",
    "OFFSETS_PROPERTY",
    "SilverTable",
    "dataset_tables",
    "list_datasets",
    "read_silver",
    "region_and_dataset",
    "table_name",
    "topic_parts",
]
