"""Where the input tables come from: Parquet files, or tables in the engine's own catalog."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path

import ibis
import ibis.expr.types as ir
from ibis import BaseBackend

from shopops.core.errors import InvalidInputError, NotFoundError
from shopops.core.registry import BackendConfig
from shopops.reconciliation.engine import Inputs
from shopops.reconciliation.tables import OPTIONAL, REQUIRED, SCHEMAS


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
