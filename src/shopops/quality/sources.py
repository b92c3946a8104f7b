"""Where whole-table checks read a dataset from.

- ``silver``: the lake's silver tables (current state per key), through
  ``shopops.lake.silver.read_silver(catalog, dataset, regions=None)``;
- ``parquet``: ``<dir>/<dataset>.parquet`` or every ``*.parquet`` under ``<dir>/<dataset>/``;
- ``events``: the current state per key rebuilt from the CDC topics of the event log
  (``<region>.<dataset>``), typed by the contract: what the silver tables hold, without the lake.

Rows are typed as the silver stage types them: integers, floats, booleans and strings as such,
``timestamp`` columns as ``timestamp(us, UTC)``, ``date`` columns as ``date32``, and a ``_region``
column naming the region each row comes from.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shopops.core.errors import ConfigError, InvalidInputError, NotFoundError
from shopops.domain.regions import REGIONS
from shopops.quality.model import Contract, Property

_EPOCH = dt.date(1970, 1, 1)
_INT_TYPES = {"int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64()}


def arrow_type(prop: Property) -> pa.DataType:
    """The Arrow type of a contract column, as the silver stage writes it."""
    logical = prop.logical_type
    if logical == "integer":
        return _INT_TYPES.get((prop.physical_type or "").lower(), pa.int64())
    if logical == "number":
        return pa.float32() if (prop.physical_type or "").lower() == "float32" else pa.float64()
    if logical == "boolean":
        return pa.bool_()
    if logical == "timestamp":
        return pa.timestamp("us", tz="UTC")
    if logical == "date":
        return pa.date32()
    return pa.string()


def _coerce(value: Any, logical: str | None) -> Any:
    """A CDC value (JSON) as the column's Python value; ``None`` when it cannot be one."""
    if value is None:
        return None
    try:
        if logical == "integer":
            return int(value) if not isinstance(value, bool) else None
        if logical == "number":
            return float(value)
        if logical == "boolean":
            return value if isinstance(value, bool) else None
        if logical == "timestamp":
            return (
                dt.datetime.fromtimestamp(int(value) / 1_000_000, dt.UTC)
                if not isinstance(value, str)
                else None
            )
        if logical == "date":
            return _EPOCH + dt.timedelta(days=int(value)) if not isinstance(value, str) else None
    except (TypeError, ValueError, OverflowError):
        return None
    return value if isinstance(value, str) else str(value)


def typed_table(
    contract: Contract, rows: Sequence[Mapping[str, Any]], regions: Sequence[str] | None = None
) -> pa.Table:
    """CDC after-images as an Arrow table with the contract's columns (and ``_region``)."""
    arrays: dict[str, pa.Array] = {}
    for prop in contract.properties:
        values = [_coerce(r.get(prop.name), prop.logical_type) for r in rows]
        arrays[prop.name] = pa.array(values, type=arrow_type(prop))
    if regions is not None:
        arrays["_region"] = pa.array(list(regions), type=pa.string())
    return pa.table(arrays)


class TableSource(ABC):
    """Reads whole datasets for the scheduled checks."""

    name: str = ""

    @abstractmethod
    def read(self, contract: Contract, regions: Sequence[str] | None = None) -> pa.Table:
        """The current rows of ``contract``'s dataset (``NotFoundError`` when there are none)."""


class ParquetSource(TableSource):
    """``<dir>/<dataset>.parquet`` or the Parquet files under ``<dir>/<dataset>/``."""

    name = "parquet"

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, contract: Contract, regions: Sequence[str] | None = None) -> pa.Table:
        single = self.root / f"{contract.dataset}.parquet"
        folder = self.root / contract.dataset
        if single.is_file():
            table = pq.read_table(single)
        elif folder.is_dir() and any(folder.rglob("*.parquet")):
            table = pq.read_table(folder)
        else:
            raise NotFoundError(
                f"no Parquet data for {contract.dataset} under {self.root}",
                hint=f"write {single} or Parquet files under {folder}/",
            )
        if regions and "_region" in table.column_names:
            import pyarrow.compute as pc

            table = table.filter(pc.is_in(table["_region"], pa.array(list(regions))))
        return table


class SilverSource(TableSource):
    """The lake's silver tables (``shopops.lake.silver.read_silver``)."""

    name = "silver"

    def __init__(self, catalog: Any) -> None:
        self.catalog = catalog

    def read(self, contract: Contract, regions: Sequence[str] | None = None) -> pa.Table:
        try:
            from shopops.lake.silver import read_silver  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise ConfigError(
                "the lake has no silver tables in this installation",
                hint="check with --source events (the CDC topics) or --source parquet --path DIR",
            ) from exc
        table: pa.Table = read_silver(
            self.catalog, contract.dataset, regions=list(regions) if regions else None
        )
        return table


class EventsSource(TableSource):
    """The current state per key, rebuilt from the CDC topics ``<region>.<dataset>`` of the event log."""

    name = "events"

    def __init__(self, event_log: Any, batch: int = 5_000) -> None:
        self.log = event_log
        self.batch = batch

    def read(self, contract: Contract, regions: Sequence[str] | None = None) -> pa.Table:
        from shopops.events.debezium import DebeziumDecodeError, Op, decode

        known = {t.name for t in self.log.list_topics()}
        wanted = list(regions) if regions else list(REGIONS)
        topics = [(r, f"{r}.{contract.dataset}") for r in wanted if f"{r}.{contract.dataset}" in known]
        if not topics:
            raise NotFoundError(
                f"no CDC topic of {contract.dataset} in the event log",
                hint="run `shopops simulate` or point the event log at the CDC topics",
            )
        rows: list[dict[str, Any]] = []
        row_regions: list[str] = []
        for region, topic in topics:
            state: dict[bytes, dict[str, Any]] = {}
            for record in self.log.read_all(topic, self.batch):
                if record.key is None:
                    continue
                try:
                    event = decode(record)
                except DebeziumDecodeError:
                    continue  # malformed events are the schema check's to quarantine
                if event.op is Op.DELETE:
                    state.pop(record.key, None)
                elif event.after is not None:
                    state[record.key] = event.after
            rows += state.values()
            row_regions += [region] * len(state)
        return typed_table(contract, rows, row_regions)


def open_source(
    kind: str, *, event_log: Any = None, catalog: Any = None, path: Path | None = None
) -> TableSource:
    """The source named ``kind`` (``silver``, ``parquet``, ``events``)."""
    if kind == "parquet":
        if path is None:
            raise InvalidInputError("--source parquet needs --path DIR (Parquet files per dataset)")
        return ParquetSource(path)
    if kind == "events":
        return EventsSource(event_log)
    if kind == "silver":
        return SilverSource(catalog)
    raise InvalidInputError(f"unknown source {kind!r}", hint="use silver, parquet or events")


def regions_of(values: Iterable[str] | None) -> list[str] | None:
    """Validated region codes (``None``: all)."""
    if not values:
        return None
    out = [v.strip().lower() for v in values if v.strip()]
    unknown = [v for v in out if v not in REGIONS]
    if unknown:
        raise InvalidInputError(
            f"unknown region(s): {', '.join(unknown)}", hint=f"known: {', '.join(REGIONS)}"
        )
    return out
