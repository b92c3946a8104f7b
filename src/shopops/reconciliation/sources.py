"""Where the input tables come from: Parquet files, tables in the engine's own catalog, or the lakehouse."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc
from ibis import BaseBackend

from shopops.core.errors import InvalidInputError, NotFoundError
from shopops.core.registry import BackendConfig
from shopops.reconciliation.engine import Inputs
from shopops.reconciliation.tables import CDC_TOPICS, OPTIONAL, REQUIRED, SCHEMAS


def conform(table: ir.Table, name: str, where: str) -> ir.Table:
    """Select the canonical columns of ``name`` cast to their types; a missing column is an error."""
    schema = ibis.schema({f.name: ibis.dtype(f.type) for f in SCHEMAS[name]})
    missing = [c for c in schema.names if c not in table.columns]
    if missing:
        raise InvalidInputError(
            f"{where}: table {name} lacks column(s) {', '.join(missing)}",
            hint=f"expected columns: {', '.join(schema.names)} (see docs/reconciliation.md)",
        )
    return table.select(**{c: table[c].cast(t) for c, t in schema.items()})


class InputSource(ABC):
    """Gives the input tables of some regions as Ibis tables of one connection."""

    @abstractmethod
    def inputs(self, con: BaseBackend, regions: Iterable[str]) -> Inputs:
        """The orders, payments, ledger entries, FX rates (and duplicates, if any) of ``regions``.

        Payments are read from every region the source has: a payment recorded by another
        region's provider is still a payment of the regions asked for.
        """

    @abstractmethod
    def available_regions(self) -> list[str]:
        """Regions the source holds tables of."""


class ParquetSourceConfig(BackendConfig):
    #: Directory laid out as ``<path>/<region>/<table>.parquet``; relative to the data directory.
    path: Path = Path("reconciliation/input")


class ParquetSource(InputSource):
    """Parquet files, one per region and table (see :mod:`shopops.reconciliation.tables`)."""

    Config = ParquetSourceConfig

    def __init__(self, config: ParquetSourceConfig, *, home: Path) -> None:
        self.root = config.path if config.path.is_absolute() else home / config.path

    def available_regions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(d.name for d in self.root.iterdir() if (d / "orders.parquet").exists())

    def _path(self, region: str, table: str) -> Path:
        return self.root / region / f"{table}.parquet"

    def _read(self, con: BaseBackend, table: str, regions: list[str]) -> ir.Table | None:
        paths = [self._path(r, table) for r in regions if self._path(r, table).exists()]
        if not paths:
            return None
        # One scan per file, unioned: every engine reads one path at a time (Spark takes no lists).
        parts = [conform(con.read_parquet(str(p)), table, str(p)) for p in paths]
        return parts[0] if len(parts) == 1 else ibis.union(*parts, distinct=False)

    def inputs(self, con: BaseBackend, regions: Iterable[str]) -> Inputs:
        wanted = list(regions)
        have = self.available_regions()
        absent = [r for r in wanted if r not in have]
        if absent:
            raise NotFoundError(
                f"no input tables for region(s) {', '.join(absent)} under {self.root}",
                hint="run `shopops reconcile export` to build them from the CDC topics, "
                f"or lay out <region>/<table>.parquet for the tables {', '.join(REQUIRED)}",
            )
        tables: dict[str, ir.Table | None] = {}
        for name in REQUIRED:
            scope = have if name == "payments" else wanted
            tables[name] = self._read(con, name, scope)
            if tables[name] is None:
                raise NotFoundError(f"{self.root}: no {name}.parquet for {', '.join(scope)}")
        for name in OPTIONAL:
            tables[name] = self._read(con, name, wanted)
        return Inputs(
            orders=tables["orders"],
            payments=tables["payments"],
            ledger=tables["ledger_entries"],
            fx=tables["fx_rates"],
            duplicates=tables["duplicates"],
        )


class CatalogSourceConfig(BackendConfig):
    #: Table name per input table; ``{table}`` is replaced (e.g. ``silver_{table}``).
    table_template: str = "{table}"
    #: Database (schema) of the tables in the engine's catalog, if not the default one.
    database: str | None = None
    #: Regions the tables hold (they carry a ``region`` column).
    regions: list[str] = ["vn", "sg", "th"]


class CatalogSource(InputSource):
    """Tables already in the engine's catalog (a Trino or Spark catalog, the lakehouse)."""

    Config = CatalogSourceConfig

    def __init__(self, config: CatalogSourceConfig, *, home: Path) -> None:
        self.config = config

    def available_regions(self) -> list[str]:
        return list(self.config.regions)

    def _table(self, con: BaseBackend, name: str) -> ir.Table:
        full = self.config.table_template.format(table=name)
        try:
            table = con.table(full, database=self.config.database)
        except Exception as exc:  # each engine raises its own "table not found"
            raise NotFoundError(f"table {full} not found in the engine's catalog ({exc})") from None
        return conform(table, name, full)

    def inputs(self, con: BaseBackend, regions: Iterable[str]) -> Inputs:
        # The catalog's tables hold every region (a ``region`` column); the plan picks ``regions``.
        try:
            duplicates: ir.Table | None = self._table(con, "duplicates")
        except NotFoundError:
            duplicates = None
        return Inputs(
            orders=self._table(con, "orders"),
            payments=self._table(con, "payments"),
            ledger=self._table(con, "ledger_entries"),
            fx=self._table(con, "fx_rates"),
            duplicates=duplicates,
        )


class LakeSourceConfig(BackendConfig):
    #: SQL catalog of the lakehouse (default: the embedded one under the data directory, as
    #: ``lake.catalog_uri``).
    catalog_uri: str | None = None
    #: Its warehouse (default as ``lake.warehouse``).
    warehouse: str | None = None


#: Canonical input table -> the lake dataset (``<db>.<table>``) it is read from.
_LAKE_DATASETS = {name: suffix for name, (suffix, _id) in CDC_TOPICS.items()}


class LakeSource(InputSource):
    """The lakehouse: silver tables (current state per key) for orders, payments, ledger entries and
    FX rates; the change events delivered twice, from bronze (every event as received)."""

    Config = LakeSourceConfig

    def __init__(self, config: LakeSourceConfig, *, home: Path) -> None:
        from shopops.lake.catalog import open_catalog

        self.catalog = open_catalog(config.catalog_uri, config.warehouse, home)

    def available_regions(self) -> list[str]:
        from shopops.lake.silver import dataset_tables

        return sorted(dataset_tables(self.catalog, _LAKE_DATASETS["orders"]))

    def _silver(self, name: str, regions: list[str]) -> pa.Table:
        from shopops.lake.silver import read_silver

        dataset = _LAKE_DATASETS[name]
        try:
            rows = read_silver(self.catalog, dataset, regions)
        except NotFoundError as exc:
            raise NotFoundError(
                f"the lake has no silver table of {dataset} for {', '.join(regions)} ({exc.message})",
                hint="let the lake worker catch up (`shopops lake ingest`) or use the parquet source",
            ) from None
        return canonical(name, rows)

    def inputs(self, con: BaseBackend, regions: Iterable[str]) -> Inputs:
        wanted = list(regions)
        have = self.available_regions()
        absent = [r for r in wanted if r not in have]
        if absent:
            raise NotFoundError(
                f"the lake has no silver orders for region(s) {', '.join(absent)}",
                hint="let the lake worker catch up (`shopops lake ingest`) or use the parquet source",
            )
        tables = {
            name: self._silver(name, have if name == "payments" else wanted)
            for name in ("orders", "payments", "ledger_entries", "fx_rates")
        }
        duplicates = duplicates_from_bronze(self.catalog, wanted)

        def table(name: str, data: pa.Table) -> ir.Table:
            return conform(con.create_table(f"_lake_{name}", data, temp=True, overwrite=True), name, name)

        return Inputs(
            orders=table("orders", tables["orders"]),
            payments=table("payments", tables["payments"]),
            ledger=table("ledger_entries", tables["ledger_entries"]),
            fx=table("fx_rates", tables["fx_rates"]),
            duplicates=table("duplicates", duplicates),
        )


def canonical(name: str, rows: pa.Table) -> pa.Table:
    """Silver rows (typed from the Connect schema: times as timestamps, dates as dates, amounts as
    decimal strings, the region in ``_region``) as the canonical input table ``name``."""
    schema = SCHEMAS[name]
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for field in schema:
        source = "_region" if field.name == "region" else field.name
        if source not in rows.column_names:
            columns[field.name] = pa.nulls(rows.num_rows, field.type)
            continue
        column = rows.column(source)
        if pa.types.is_timestamp(column.type):
            column = pc.cast(column, pa.timestamp("us", tz=column.type.tz)).cast(pa.int64())
        elif pa.types.is_date32(column.type):
            column = column.cast(pa.int32())
        columns[field.name] = pc.cast(column, field.type)
    return pa.table(columns, schema=schema)


def duplicates_from_bronze(catalog: Any, regions: list[str]) -> pa.Table:
    """Change events of the input topics delivered more than once (same key, same source LSN and
    operation), read from the bronze tables: the source of the ``duplicate`` exceptions."""
    import duckdb
    from pyiceberg.exceptions import NoSuchTableError

    from shopops.lake.bronze import table_name

    parts: list[pa.Table] = []
    db = duckdb.connect()
    for region in regions:
        for name, (suffix, id_column) in CDC_TOPICS.items():
            if not id_column:
                continue
            topic = f"{region}.{suffix}"
            try:
                events = (
                    catalog.load_table(table_name(topic))
                    .scan(selected_fields=("partition", "offset", "timestamp_ms", "key", "value"))
                    .to_arrow()
                )
            except NoSuchTableError:  # no bronze table (yet): nothing delivered, nothing duplicated
                continue
            db.register("events", events)
            found = db.sql(
                f"""
                WITH e AS (
                    SELECT key, "partition", "offset", timestamp_ms,
                           coalesce(value::JSON -> 'payload', value::JSON) AS p
                    FROM events WHERE value IS NOT NULL AND key IS NOT NULL
                ), d AS (
                    SELECT key, p ->> '$.source.lsn' AS lsn, p ->> '$.op' AS op,
                           coalesce(p ->> '$.after.{id_column}', p ->> '$.before.{id_column}') AS record_id,
                           coalesce(TRY_CAST(p ->> '$.source.ts_ms' AS BIGINT), timestamp_ms) AS ts_ms,
                           "partition", "offset",
                           row_number() OVER (PARTITION BY key, p ->> '$.source.lsn', p ->> '$.op'
                                              ORDER BY "partition", "offset") AS copy
                    FROM e WHERE p ->> '$.source.lsn' IS NOT NULL
                )
                SELECT '{region}' AS region, '{name}' AS "table", record_id, copy AS copies,
                       ts_ms * 1000 AS event_at,
                       json_object('topic', '{topic}', 'partition', "partition", 'offset', "offset",
                                   'lsn', TRY_CAST(lsn AS BIGINT), 'op', op)::VARCHAR AS detail
                FROM d WHERE copy > 1
                ORDER BY "partition", "offset"
                """  # noqa: S608 - identifiers from the fixed CDC_TOPICS map
            ).to_arrow_table()
            db.unregister("events")
            parts.append(found.cast(SCHEMAS["duplicates"]))
    db.close()
    if not parts:
        return SCHEMAS["duplicates"].empty_table()
    return pa.concat_tables(parts)
